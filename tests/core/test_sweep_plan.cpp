// Sweep specs and plans: grid and zip expansion, run order, id stability under
// reformatting, re-planning an edited spec (only new runs added, indices kept, removed
// runs inactive), the aggregation over seeds against hand-worked values, Slurm scripts,
// and one-line errors for bad specs.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <set>
#include <fstream>

#include "sweeps/results_table.h"
#include "sweeps/slurm.h"
#include "sweeps/sweep_dir.h"
#include "sweeps/sweep_spec.h"
#include "tests/core/trace_test_util.h"

using namespace moetb::sweeps;
namespace fs = std::filesystem;

namespace {

const char* kSpec = R"(
[sweep]
name = "t"
seeds = [1, 2]
[base]
data.dir = "data"
train.steps = 10
[[axes]]
router.name = ["topk"]
router.balance_scope = ["micro_batch", "sequence", "global_batch"]
router.balance_coef = [0.01, 0.1]
[[axes]]
mode = "zip"
router.name = ["oracle", "random"]
train.lr = [0.001, 0.002]
)";

std::string axis(const PlannedRun& r, const std::string& key) {
  for (const auto& [k, v] : r.axes)
    if (k == key) return v.display();
  return "";
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST_CASE("sweep spec: grid and zip blocks expand in spec order, seeds last", "[sweeps]") {
  const SweepSpec spec = parse_spec(kSpec, "spec.toml");
  CHECK(spec.axis_keys == std::vector<std::string>{"router.name", "router.balance_scope", "router.balance_coef", "train.lr"});
  const auto runs = expand(spec);
  REQUIRE(runs.size() == (1 * 3 * 2 + 2) * 2);
  // The first key varies slowest, then seeds fastest.
  CHECK(axis(runs[0], "router.balance_scope") == "micro_batch");
  CHECK(axis(runs[0], "router.balance_coef") == "0.01");
  CHECK(runs[0].seed == 1);
  CHECK(runs[1].seed == 2);
  CHECK(axis(runs[2], "router.balance_coef") == "0.1");
  CHECK(axis(runs[4], "router.balance_scope") == "sequence");
  // Zipped: oracle goes with 0.001, random with 0.002.
  CHECK(axis(runs[12], "router.name") == "oracle");
  CHECK(axis(runs[12], "train.lr") == "0.001");
  CHECK(axis(runs[14], "router.name") == "random");
  CHECK(axis(runs[14], "train.lr") == "0.002");
  // Every run carries base, axes and seed in its config; ids are distinct.
  std::set<std::string> ids;
  for (const auto& r : runs) {
    CHECK(r.config.at("train.steps").text == "10");
    CHECK(r.config.at("train.seed").text == std::to_string(r.seed));
    CHECK(r.id.size() == 12);
    ids.insert(r.id);
  }
  CHECK(ids.size() == runs.size());
}

TEST_CASE("sweep spec: ids depend on the config only, not on how the spec is written", "[sweeps]") {
  const auto a = expand(parse_spec(kSpec, "a"));
  // Same content: quoted dotted keys, tables instead of dotted keys, 0.010 for 0.01, other spacing.
  const auto b = expand(parse_spec(R"(
[sweep]
seeds = [1,2]
name = "renamed"
[base.train]
steps=10
[base.data]
dir="data"
[[axes]]
"router.name" = ["topk"]
router.balance_scope = ["micro_batch", "sequence", "global_batch"]
router.balance_coef = [0.010, 1e-1]
[[axes]]
mode = "zip"
router.name = ["oracle", "random"]
train.lr = [1e-3, 2e-3]
)", "b"));
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].id == b[i].id);
  // A changed value changes the id.
  std::string edited = kSpec;
  edited.replace(edited.find("train.steps = 10"), 16, "train.steps = 11");
  CHECK(expand(parse_spec(edited, "c"))[0].id != a[0].id);
  // The dataset's config is part of the id.
  const auto with_data = [](const std::string& seed) {
    return expand(parse_spec("[sweep]\nseeds=[1]\n[datagen]\nseed = " + seed + "\n", "d"))[0].id;
  };
  CHECK(with_data("1") == with_data("1"));
  CHECK(with_data("1") != with_data("2"));
}

TEST_CASE("sweep plan: re-planning an edited spec adds only new runs and keeps indices", "[sweeps]") {
  ttu::TempDir tmp("sweep-plan");
  const std::string spec = tmp.file("spec.toml");
  write(spec, kSpec);
  const SweepDir dir(tmp.file("sweep"));
  const PlanReport first = dir.plan(spec);
  CHECK(first.added == 16);
  const SweepPlan p1 = dir.load();
  REQUIRE(p1.runs.size() == 16);
  CHECK(fs::exists(dir.config_path(p1.runs[3].id)));
  // The run config is loadable TOML with an absolute data.dir next to the spec.
  const std::string cfg = read_text_file(dir.config_path(p1.runs[0].id));
  CHECK(ttu::contains(cfg, "dir = \"" + fs::path(tmp.file("data")).string() + "\""));
  CHECK(ttu::contains(cfg, "[router]"));
  // Same spec again: nothing new.
  const PlanReport again = dir.plan(spec);
  CHECK(again.added == 0);
  CHECK(again.kept == 16);
  // Add a balance coefficient, drop the random router: 4 new runs (1 x 3 scopes... x 2 seeds), 2 inactive.
  std::string edited = kSpec;
  edited.replace(edited.find("[0.01, 0.1]"), 11, "[0.01, 0.1, 1.0]");
  edited.replace(edited.find("[\"oracle\", \"random\"]"), 20, "[\"oracle\"]");
  edited.replace(edited.find("[0.001, 0.002]"), 14, "[0.001]");
  write(spec, edited);
  const PlanReport third = dir.plan(spec);
  CHECK(third.added == 6);
  CHECK(third.inactive == 2);
  const SweepPlan p3 = dir.load();
  REQUIRE(p3.runs.size() == 22);
  for (std::size_t i = 0; i < 16; ++i) {
    CHECK(p3.runs[i].id == p1.runs[i].id);
    CHECK(p3.runs[i].index == static_cast<int64_t>(i));
  }
  CHECK_FALSE(p3.runs[14].active);  // random, seed 1
  CHECK(p3.runs[16].active);
}

TEST_CASE("sweep spec: bad specs are one-line errors naming the key", "[sweeps]") {
  const auto error_of = [](const std::string& text) {
    try {
      parse_spec(text, "s.toml");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string head = "[sweep]\nseeds = [1]\n[base]\ndata.dir = \"d\"\n";
  CHECK(ttu::contains(error_of("[base]\ndata.dir=\"d\"\n"), "missing [sweep]"));
  CHECK(ttu::contains(error_of("[sweep]\nseeds = []\n[base]\ndata.dir=\"d\"\n"), "sweep.seeds"));
  CHECK(ttu::contains(error_of("[sweep]\nseeds = [1]\n"), "no data"));
  CHECK(ttu::contains(error_of(head + "[datagen]\n"), "not both"));
  CHECK(ttu::contains(error_of(head + "[[axes]]\nmode = \"zip\"\na.b = [1, 2]\nc.d = [1]\n"), "zipped axis 'c.d' has 1 values"));
  CHECK(ttu::contains(error_of(head + "[[axes]]\nmode = \"diagonal\"\na.b = [1]\n"), "'diagonal' is not grid or zip"));
  CHECK(ttu::contains(error_of(head + "[[axes]]\ntrain.seed = [1, 2]\n"), "seeds come from sweep.seeds"));
  CHECK(ttu::contains(error_of(head + "[[axes]]\na.b = 3\n"), "axis 'a.b': expected a non-empty list"));
  CHECK(ttu::contains(error_of(head + "[grid]\n"), "unknown table 'grid'"));
  CHECK(ttu::contains(error_of(head + "x = \n"), "s.toml:5"));
  for (const std::string& e : {error_of(head + "[grid]\n"), error_of("[sweep]\nseeds = [1]\n")}) CHECK(e.find('\n') == std::string::npos);
}

TEST_CASE("sweep aggregation: mean, sd and t interval over seeds, worked by hand", "[sweeps]") {
  SweepPlan plan;
  plan.seed_key = "train.seed";
  plan.axis_keys = {"router.name"};
  std::vector<nlohmann::json> docs;
  const double losses[] = {2.0, 2.2, 2.4, 3.0, 3.5};
  for (int i = 0; i < 6; ++i) {
    PlanEntry e;
    e.index = i;
    e.id = "run" + std::to_string(i);
    e.seed = i % 3 + 1;
    e.axes = {{"router.name", i < 3 ? "topk" : "random"}};
    plan.runs.push_back(e);
    if (i == 5) {
      docs.push_back({{"status", "failed"}, {"exit_code", 3}, {"error", "boom, with a comma"}, {"wall_s", 1.0}});
    } else {
      docs.push_back({{"status", "ok"}, {"exit_code", 0}, {"wall_s", 10.0 + i},
                      {"eval", {{"loss_bits", losses[i]}, {"domains", {{{"name", "a"}, {"loss_bits", losses[i] + 1}}}}}},
                      {"metrics_summary", {{"rs", 0.1 * i}, {"load", {{"utilization", 0.5}}}}}});
    }
  }
  std::vector<const nlohmann::json*> ptrs;
  for (const auto& d : docs) ptrs.push_back(&d);
  const ResultsTable t = make_table(plan, ptrs);
  CHECK(t.columns == std::vector<std::string>{"val_bits", "val_bits.a", "load.utilization", "rs", "wall_s"});
  const auto groups = summarize_groups(t);
  REQUIRE(groups.size() == 2);
  const SampleSummary& topk = groups[0].stats.at("val_bits");
  CHECK(topk.n == 3);
  CHECK(topk.mean == Approx(2.2));
  CHECK(topk.sd == Approx(0.2));
  CHECK(topk.ci95 == Approx(4.302652730 * 0.2 / std::sqrt(3.0)).epsilon(1e-7));  // t_{0.975, 2} = 4.3027
  CHECK(groups[0].stats.at("rs").mean == Approx(0.1));
  // The failed run is counted but not averaged: random has 2 ok of 3.
  CHECK(groups[1].runs == 3);
  CHECK(groups[1].ok == 2);
  CHECK(groups[1].stats.at("val_bits").mean == Approx(3.25));
  CHECK(groups[1].stats.at("val_bits").ci95 == Approx(12.70620474 * std::sqrt(0.125) / std::sqrt(2.0)).epsilon(1e-7));
  const std::string csv = results_csv(t);
  CHECK(ttu::contains(csv, "index,id,router.name,train.seed,router,status,exit_code,val_bits,val_bits.a,load.utilization,rs,wall_s,error\n"));
  CHECK(ttu::contains(csv, "5,run5,random,3,random,failed,3,,,,,1,\"boom, with a comma\"\n"));
  CHECK(ttu::contains(csv, "0,run0,topk,1,topk,ok,0,2,3,0.5,0,10,\n"));
  const std::string sum = summary_csv(t, groups);
  CHECK(ttu::contains(sum, "\ntopk,topk,3,3,"));
  CHECK(ttu::contains(sum, "\nrandom,random,3,2,3.25,"));
  const std::string md = summary_markdown(t, groups, {"val_bits"}, {});
  CHECK(ttu::contains(md, "| topk | 3 | 2.2 ± 0.5 |"));
  CHECK(ttu::contains(md, "| random | 2 of 3 | 3.25 ± 3.2 |"));
  CHECK(ttu::contains(md, "boom, with a comma"));
}

TEST_CASE("sweep slurm: the array script covers the pending runs with the options given", "[sweeps]") {
  CHECK(index_ranges({0, 1, 2, 3, 5, 7, 8, 9}) == "0-3,5,7-9");
  CHECK(index_ranges({4}) == "4");
  ttu::TempDir tmp("sweep-slurm");
  write(tmp.file("spec.toml"), "[sweep]\nname = \"s\"\nseeds = [1, 2, 3]\n[base]\ndata.dir = \"d\"\n");
  const SweepDir dir(tmp.file("sw"));
  dir.plan(tmp.file("spec.toml"));
  const SweepPlan plan = dir.load();
  dir.write_result(plan.runs[1].id, {{"status", "ok"}});
  dir.write_result(plan.runs[2].id, {{"status", "failed"}, {"error", "x"}});
  CHECK(runs_to_submit(dir, plan, false) == std::vector<int64_t>{0});
  CHECK(runs_to_submit(dir, plan, true) == std::vector<int64_t>{0, 2});
  SlurmOptions o;
  o.partition = "debug";
  o.time = "00:05:00";
  o.mem = "1G";
  o.cpus_per_task = 2;
  o.max_parallel = 4;
  o.extra = {"--gres=gpu:1"};
  o.moetb = "/opt/moetb's/moetb";
  const std::string s = sbatch_script(dir, plan, {0, 2}, o);
  for (const char* line : {"#SBATCH --array=0,2%4\n", "#SBATCH --partition=debug\n", "#SBATCH --time=00:05:00\n",
                           "#SBATCH --mem=1G\n", "#SBATCH --cpus-per-task=2\n", "#SBATCH --gres=gpu:1\n", "#SBATCH --job-name=moetb-s\n"})
    CHECK(ttu::contains(s, line));
  CHECK(ttu::contains(s, "exec '/opt/moetb'\\''s/moetb' sweep run-one '"));
  CHECK(ttu::contains(s, "--index \"$SLURM_ARRAY_TASK_ID\" --threads \"${SLURM_CPUS_PER_TASK:-1}\""));
  o.extra = {"gres=gpu:1"};
  CHECK_THROWS_WITH(sbatch_script(dir, plan, {0}, o), Catch::Contains("--sbatch 'gres=gpu:1'"));
}
