// Evaluation effects, torch-free side (docs/trace-format.md, docs/run-format.md): the optional
// layers.{l}.experts_before_capacity tensor round-trips, is ignored by a plain read and measured
// with ExpertsTensor::kBeforeCapacity / `moetb metrics --before-capacity` (one-line error when a
// trace has none); the eval record's routing and dropless fields round-trip and older records
// read without them; sweep results get dropless.* columns; the capacity and expert-choice
// findings state the dropless numbers beside the training-time ones.
#include <algorithm>
#include <catch2/catch.hpp>
#include <map>

#include "demos/demos.h"
#include "runs/run_format.h"
#include "sweeps/results_table.h"
#include "sweeps/sweep_spec.h"
#include "tests/core/cli_test_util.h"
#include "tests/core/trace_test_util.h"

using namespace moetb;

namespace {

// A trace whose routed experts are the pre-drop ones with some slots emptied (as capacity does).
TraceData dropped_trace() {
  TraceData d = ttu::small_trace_data(40, 8, {2, 2});
  d.meta_data.domain_names = {"a", "b", "c"};
  d.experts_before_capacity = d.experts;
  for (auto& layer : d.experts)
    for (std::size_t i = 0; i < layer.size(); i += 3) layer[i] = -1;
  return d;
}

std::size_t valid(const ShardView& v, int layer) {
  std::size_t n = 0;
  for (int64_t t = 0; t < v.n_tokens; ++t)
    for (int64_t s = 0; s < v.layers[static_cast<std::size_t>(layer)].k; ++s) n += v.layers[static_cast<std::size_t>(layer)].expert(t, s) >= 0;
  return n;
}

}  // namespace

TEST_CASE("before capacity: the optional tensor round-trips, a plain read ignores it, metrics can use it", "[trace]") {
  ttu::TempDir dir("before-cap");
  const TraceData d = dropped_trace();
  for (DType dt : {DType::kI16, DType::kI32}) {
    const std::string path = dir.file(std::string("t-") + dtype_name(dt) + ".safetensors");
    write_trace_file(d, path, dt);
    const Trace routed({path});
    const Trace before({path}, ExpertsTensor::kBeforeCapacity);
    REQUIRE(routed.n_layers() == 2);
    REQUIRE(before.n_layers() == 2);
    CHECK(ttu::metrics_json(routed) == ttu::metrics_json(static_cast<const ShardSource&>(d)));
    CHECK(ttu::metrics_json(before) == ttu::metrics_json(static_cast<const ShardSource&>(d.before_capacity())));
    CHECK(valid(before.shard(0), 0) == static_cast<std::size_t>(std::count_if(d.experts_before_capacity[0].begin(),
                                                                             d.experts_before_capacity[0].end(), [](int32_t x) { return x >= 0; })));
    CHECK(valid(routed.shard(0), 0) < valid(before.shard(0), 0));
  }
  // A trace without it: a plain read works, the pre-drop read is one line naming file and tensor.
  TraceData plain = d;
  plain.experts_before_capacity.clear();
  const std::string path = dir.file("plain.safetensors");
  write_trace_file(plain, path, DType::kI16);
  CHECK_NOTHROW(Trace({path}));
  try {
    Trace t({path}, ExpertsTensor::kBeforeCapacity);
    FAIL("no error");
  } catch (const TraceError& e) {
    const std::string what = e.what();
    CHECK(what.find('\n') == std::string::npos);
    CHECK(ttu::contains(what, path + ": layers.0.experts_before_capacity: this trace has no choices before capacity"));
  }
  CHECK_THROWS_AS(plain.before_capacity(), TraceError);
}

TEST_CASE("before capacity: moetb metrics --before-capacity measures the pre-drop choices, or says there are none", "[cli]") {
  ctu::Cli cli("metrics-before");
  write_trace_file(dropped_trace(), cli.work.file("t.safetensors"), DType::kI16);
  TraceData plain = dropped_trace();
  plain.experts_before_capacity.clear();
  write_trace_file(plain, cli.work.file("plain.safetensors"), DType::kI16);
  const ctu::Result routed = cli.run("metrics --json t.safetensors");
  const ctu::Result before = cli.run("metrics --json --before-capacity t.safetensors");
  REQUIRE(routed.rc == 0);
  REQUIRE(before.rc == 0);
  const auto jr = nlohmann::json::parse(routed.out), jb = nlohmann::json::parse(before.out);
  CHECK(jb == ttu::metrics_json(static_cast<const ShardSource&>(dropped_trace().before_capacity())));
  CHECK(jr != jb);
  const ctu::Result none = cli.run("metrics --before-capacity plain.safetensors");
  CHECK(none.rc == 1);
  CHECK(ctu::one_line(none.err));
  CHECK(ttu::contains(none.err, "layers.0.experts_before_capacity: this trace has no choices before capacity"));
}

TEST_CASE("eval record: routing and the dropless evaluation round-trip; older records read without them", "[runs]") {
  runs::EvalRecord e;
  e.step = 6;
  e.eval.loss_bits = 3.0;
  e.trace = runs::trace_name(6);
  e.routing = "train";
  runs::SecondEval d;
  d.rule = "no capacity limit: every token keeps its router's top-2";
  d.eval.loss_bits = 2.9;
  d.eval.domains = {{"a", 30, 2.9, 2.0, 0.9}};
  d.trace = runs::dropless_trace_name(6);
  d.metrics_summary = {{"rs", 0.4}};
  e.dropless = d;
  const nlohmann::json j = e.to_json();
  CHECK(j["trace"] == "traces/step-000006.safetensors");  // the existing fields as before
  CHECK(j["eval"]["loss_bits"] == 3.0);
  CHECK(j["routing"] == "train");
  CHECK(j["dropless"]["trace"] == "traces-dropless/step-000006.safetensors");
  CHECK(j["dropless"]["eval"]["loss_bits"] == 2.9);
  CHECK(j["dropless"]["metrics_summary"]["rs"] == 0.4);
  CHECK(j["dropless"]["rule"] == d.rule);
  const runs::EvalRecord back = runs::EvalRecord::from_json(j);
  CHECK(back.routing == "train");
  REQUIRE(back.dropless);
  CHECK(back.dropless->eval.loss_bits == 2.9);
  CHECK(back.dropless->eval.domains.at(0).name == "a");
  CHECK(back.dropless->trace == d.trace);
  const runs::EvalRecord old = runs::EvalRecord::from_json({{"step", 2}, {"eval", {{"loss_bits", 3.1}}}, {"trace", "traces/step-000002.safetensors"}});
  CHECK(old.routing.empty());
  CHECK_FALSE(old.dropless);
  CHECK_FALSE(old.to_json().contains("dropless"));
  CHECK_FALSE(old.to_json().contains("routing"));
}

TEST_CASE("sweep results: a run's dropless evaluation gives dropless.* columns", "[sweeps]") {
  sweeps::SweepPlan plan;
  plan.seed_key = "train.seed";
  sweeps::PlanEntry e;
  e.id = "run0";
  e.seed = 1;
  plan.runs.push_back(e);
  const nlohmann::json doc = {{"status", "ok"}, {"eval", {{"loss_bits", 3.0}}}, {"metrics_summary", {{"rs", 0.2}}},
                              {"dropless", {{"eval", {{"loss_bits", 2.8}, {"domains", {{{"name", "a"}, {"loss_bits", 2.7}}}}}},
                                            {"metrics_summary", {{"rs", 0.3}, {"load", {{"max_vio", 0.5}}}}}}}};
  const sweeps::ResultsTable t = sweeps::make_table(plan, {&doc});
  REQUIRE(t.rows.size() == 1);
  const auto& v = t.rows[0].values;
  CHECK(v.at("val_bits") == 3.0);
  CHECK(v.at("dropless.val_bits") == 2.8);
  CHECK(v.at("dropless.val_bits.a") == 2.7);
  CHECK(v.at("rs") == 0.2);
  CHECK(v.at("dropless.rs") == 0.3);
  CHECK(v.at("dropless.load.max_vio") == 0.5);
}

TEST_CASE("demos: capacity and expert choice state the dropless numbers beside the training-time ones", "[sweeps]") {
  using namespace moetb::demos;
  // Rows: label-major as the plan expands (5 seeds each).
  auto table = [](const Demo& demo, const std::vector<std::map<std::string, double>>& per_label, const std::string& varied,
                  const std::vector<double>& offsets) {
    sweeps::ResultsTable t;
    const auto runs = sweeps::expand(sweeps::parse_spec(demo.spec, demo.name));
    for (std::size_t i = 0; i < runs.size(); ++i) {
      sweeps::ResultRow row;
      row.entry.id = runs[i].id;
      row.entry.seed = runs[i].seed;
      row.status = "ok";
      row.values = per_label[i / 5];
      if (i / 5 == 1) row.values[varied] += offsets[i % 5];
      t.rows.push_back(row);
    }
    return t;
  };
  auto joined = [](const DemoFindings& f) {
    std::string s;
    for (const auto& l : f.look_for) s += l + "\n";
    return s + f.meaning;
  };
  const std::vector<double> noise = {0.01, -0.01, 0.02, 0.0, -0.02};
  // Capacity: the training-time RS is lower for capacity, the dropless RS is the same (noise only).
  const Demo& cap = find_demo("capacity");
  const std::string fc = joined(demo_findings(cap, table(cap, {{{"rs", 0.15}, {"dropless.rs", 0.25}, {"val_bits", 3.6}, {"dropless.val_bits", 3.5}},
                                                               {{"rs", 0.25}, {"dropless.rs", 0.25}, {"val_bits", 3.5}, {"dropless.val_bits", 3.5}}},
                                                          "dropless.rs", noise)));
  INFO(fc);
  CHECK(ttu::contains(fc, "Specialization (RS) of the router's own choices, both evaluated dropless: 0.25 ± 0 for capacity 1.0"));
  CHECK(ttu::contains(fc, "Loss (val_bits) with both evaluated dropless"));
  CHECK(ttu::contains(fc, "Loss as each routes in training"));
  CHECK(ttu::contains(fc, "RS as each routes in training (for the capacity run: of the assignments that survived the drops; the dropped "
                          "ones are missing from its trace): 0.15 ± 0 for capacity 1.0"));
  CHECK(ttu::contains(fc, "evaluated with capacity and then dropless"));
  CHECK(ttu::contains(fc, "higher for evaluation with capacity in every seed"));  // 3.6 -> 3.5: dropping at evaluation costs loss
  CHECK(ttu::contains(fc, "With both evaluated dropless, the difference in specialization is within seed noise"));
  CHECK_FALSE(ttu::contains(fc, "specialized less here"));
  CHECK(ttu::contains(fc, "therefore comes from dropping at evaluation"));
  const std::string tc = demo_table(cap, table(cap, {{{"rs", 0.15}, {"dropless.rs", 0.25}}, {{"rs", 0.25}, {"dropless.rs", 0.25}}}, "rs", noise));
  CHECK(ttu::contains(tc, "dropless.rs"));
  CHECK(ttu::contains(tc, "dropless.val_bits: val_bits evaluated dropless"));
  // Expert choice: lower loss over the batch, the same as top-k when causal.
  const Demo& ec = find_demo("expert-choice");
  const std::string fe = joined(demo_findings(ec, table(ec, {{{"val_bits", 3.6}, {"dropless.val_bits", 3.6}},
                                                             {{"val_bits", 3.4}, {"dropless.val_bits", 3.6}}},
                                                        "dropless.val_bits", noise)));
  CHECK(ttu::contains(fe, "evaluated as it trains: each token ranked against the whole evaluation batch"));
  CHECK(ttu::contains(fe, "Loss with expert choice evaluated causally"));
  CHECK(ttu::contains(fe, "does not survive causal evaluation"));
  CHECK(ttu::contains(fe, "Expert choice alone, evaluated over the batch and then causally"));
  CHECK(ttu::contains(fe, "worse on loss than with its own batch-wide routing in every seed"));
  // No difference over the batch, worse causally than top-k: said as such.
  const std::string fe2 = joined(demo_findings(ec, table(ec, {{{"val_bits", 3.6}, {"dropless.val_bits", 3.6}},
                                                              {{"val_bits", 3.6}, {"dropless.val_bits", 3.7}}},
                                                         "val_bits", noise)));
  CHECK(ttu::contains(fe2, "expert choice is worse on loss than top-k in every seed"));
  CHECK_FALSE(ttu::contains(fe2, "does not survive"));
}
