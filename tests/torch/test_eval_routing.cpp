// Evaluation routing (models/evaluation.h, eval.routing; docs/training.md): dropless evaluation
// keeps every token's top-k where training-time evaluation with capacity 1 drops some; the
// trace's experts_before_capacity is the router's undropped choice; expert choice's causal rule
// (docs/routers.md) gives each token k' experts that do not depend on later tokens, where the
// batch-wide rule does; the trainer's eval records and traces for "both"; bad values rejected.
#include <ATen/Context.h>
#include <ATen/ops/mm.h>
#include <c10/core/GradMode.h>
#include "tests/torch/torch_catch.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "metrics/trace_metrics.h"
#include "models/evaluation.h"
#include "models/run_model.h"
#include "models/trainer.h"
#include "routers/router.h"
#include "runs/run_reader.h"
#include "tests/torch/torch_test_util.h"
#include "tests/torch/training_test_util.h"

using namespace moetb;
using namespace training_test;
namespace fs = std::filesystem;

namespace {

struct Model {
  std::unique_ptr<Dataset> data;
  MoETransformer model{nullptr};
};

Model tiny_model(const TrainConfig& cfg) {
  Model m;
  m.data = std::make_unique<Dataset>(cfg.data_dir);
  at::manual_seed(3);
  m.model = MoETransformer(run_model_config(cfg, *m.data, {}));
  return m;
}

// Slots of token t among the first k that are empty (-1).
int64_t empty_in_first_k(const std::vector<int32_t>& experts, int64_t slots, int64_t k) {
  int64_t n = 0;
  for (std::size_t i = 0; i < experts.size(); ++i)
    if (static_cast<int64_t>(i) % slots < k && experts[i] < 0) ++n;
  return n;
}

std::vector<nlohmann::json> eval_lines(const fs::path& run) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run / "train_log.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("eval")) out.push_back(j);
  }
  return out;
}

}  // namespace

TEST_CASE("eval routing: dropless keeps every top-k where capacity 1 drops; the pre-drop tensor is the undropped routing", "[models]") {
  ScratchDir dir;
  TrainConfig cfg = tiny_config(tiny_dataset(dir));
  cfg.router.capacity_factor = 1.0;
  Model m = tiny_model(cfg);
  const at::Device cpu(at::kCPU);
  const EvalResult train = evaluate(*m.model, *m.data, 8, 4, cpu, {}, EvalRouting::kTrain);
  const EvalResult dropless = evaluate(*m.model, *m.data, 8, 4, cpu, {}, EvalRouting::kDropless);
  REQUIRE(train.trace.experts.size() == 2);
  int64_t dropped = 0;
  for (std::size_t l = 0; l < 2; ++l) {
    dropped += empty_in_first_k(train.trace.experts[l], train.trace.k[l], cfg.top_k);
    CHECK(empty_in_first_k(dropless.trace.experts[l], dropless.trace.k[l], cfg.top_k) == 0);  // every token keeps its top-k
  }
  CHECK(dropped > 0);  // capacity 1.0 at evaluation drops some
  // The pre-drop choices: there with capacity, absent dropless; full top-k; in the first MoE
  // layer (same input either way) exactly the dropless routing.
  REQUIRE(train.trace.experts_before_capacity.size() == 2);
  CHECK(dropless.trace.experts_before_capacity.empty());
  for (std::size_t l = 0; l < 2; ++l) CHECK(empty_in_first_k(train.trace.experts_before_capacity[l], train.trace.k[l], cfg.top_k) == 0);
  CHECK(train.trace.experts_before_capacity[0] == dropless.trace.experts[0]);
  CHECK(train.trace.experts_before_capacity[0] != train.trace.experts[0]);
  // Metrics on them differ from those of the kept assignments; the switch is reset after each call.
  MetricsOptions mo;
  mo.threads = 1;
  const TraceMetrics before = compute_trace_metrics(train.trace.before_capacity(), mo);
  const TraceMetrics kept = compute_trace_metrics(train.trace, mo);
  CHECK(before.layers[0].stats.counts.total() > kept.layers[0].stats.counts.total());
  for (MoEFeedForwardImpl* layer : moe_layers(*m.model)) CHECK_FALSE(layer->dropless_eval);
  // A dropless router (no capacity) records no pre-drop tensor: nothing is dropped.
  TrainConfig plain = cfg;
  plain.router.capacity_factor = 0.0;
  Model p = tiny_model(plain);
  CHECK(evaluate(*p.model, *p.data, 8, 4, cpu, {}).trace.experts_before_capacity.empty());
}

TEST_CASE("eval routing: expert choice's causal rule gives each token its own k' experts, independent of later tokens", "[routers]") {
  RouterConfig cfg;
  cfg.name = "expert_choice";
  cfg.n_experts = 6;
  cfg.top_k = 2;
  CHECK(expert_choice_causal_k(cfg) == 2);
  cfg.capacity_factor = 1.4;
  CHECK(expert_choice_causal_k(cfg) == 1);
  cfg.capacity_factor = 9.0;
  CHECK(expert_choice_causal_k(cfg) == 6);
  cfg.capacity_factor = 0.0;
  const auto router = make_router(cfg);
  const int64_t n = 24, early = 12;
  const at::Tensor logits = moetb_test::seeded_randn({n, 6}, 11);  // [n, E]
  at::Tensor changed = logits.clone();
  changed.narrow(0, early, n - early).copy_(moetb_test::seeded_randn({n - early, 6}, 12).mul(3.0));  // later tokens only
  RouteContext eval;
  eval.training = false;
  const RoutingDecision a = router->route_per_token(logits, eval), b = router->route_per_token(changed, eval);
  // Causal: the earlier tokens' experts and weights do not move.
  CHECK(moetb_test::to_longs(a.experts.narrow(0, 0, early)) == moetb_test::to_longs(b.experts.narrow(0, 0, early)));
  CHECK(moetb_test::max_abs_diff(a.weights.narrow(0, 0, early), b.weights.narrow(0, 0, early)) == 0.0);
  // Each token: exactly k' = 2 experts, its two highest scores, weights = those scores.
  const auto ids = moetb_test::to_longs(a.experts);
  const at::Tensor top = std::get<1>(a.probs.topk(2, 1));  // [n, 2]
  const auto want = moetb_test::to_longs(top);
  for (int64_t t = 0; t < n; ++t) {
    CHECK(ids[static_cast<std::size_t>(t * 6)] == want[static_cast<std::size_t>(t * 2)]);
    CHECK(ids[static_cast<std::size_t>(t * 6 + 1)] == want[static_cast<std::size_t>(t * 2 + 1)]);
    for (int64_t s = 2; s < 6; ++s) CHECK(ids[static_cast<std::size_t>(t * 6 + s)] == -1);
  }
  CHECK(moetb_test::max_abs_diff(a.weights.narrow(1, 0, 2), a.probs.gather(1, top)) == 0.0);
  // The training-time rule is not causal: the same change of later tokens moves earlier tokens' experts.
  const RoutingDecision c = router->route(logits, eval), d = router->route(changed, eval);
  CHECK(moetb_test::to_longs(c.experts.narrow(0, 0, early)) != moetb_test::to_longs(d.experts.narrow(0, 0, early)));
}

TEST_CASE("eval routing: dropless expert choice in the model is causal over positions; training ignores the switch", "[models]") {
  ScratchDir dir;
  TrainConfig cfg = tiny_config(tiny_dataset(dir));
  cfg.router.name = "expert_choice";
  Model m = tiny_model(cfg);
  const c10::NoGradGuard no_grad;
  const at::Tensor tokens = moetb_test::seeded_randint(m.data->vocab_size(), {2, 16}, 5);  // [2, 16]
  at::Tensor later = tokens.clone();
  later.narrow(1, 10, 6).copy_(moetb_test::seeded_randint(m.data->vocab_size(), {2, 6}, 6));
  for (MoEFeedForwardImpl* layer : moe_layers(*m.model)) layer->dropless_eval = true;
  const LMOutput a = m.model->forward(tokens, at::Tensor(), false), b = m.model->forward(later, at::Tensor(), false);
  for (std::size_t l = 0; l < a.decisions.size(); ++l) {
    const at::Tensor ea = a.decisions[l].experts.view({2, 16, -1}).narrow(1, 0, 10);  // positions 0..9 of both sequences
    const at::Tensor eb = b.decisions[l].experts.view({2, 16, -1}).narrow(1, 0, 10);
    CHECK(moetb_test::to_longs(ea) == moetb_test::to_longs(eb));
  }
  // Training routes as expert choice does (the switch is for evaluation only): some token gets
  // a number of experts other than k' = 2.
  const LMOutput t = m.model->forward(tokens, at::Tensor(), true);
  CHECK(t.decisions[0].experts.ge(0).sum(1).ne(2).any().item<bool>());
  for (MoEFeedForwardImpl* layer : moe_layers(*m.model)) layer->dropless_eval = false;
}

TEST_CASE("eval routing: the trainer records the dropless evaluation beside the training-time one", "[training]") {
  ScratchDir dir;
  TrainConfig cfg = tiny_config(tiny_dataset(dir));
  cfg.router.capacity_factor = 1.0;  // eval.routing auto -> both
  cfg.accum_steps = 1;
  const fs::path run = dir.path / "cap";
  train_model(cfg, quiet_options(run));
  const auto lines = eval_lines(run);
  REQUIRE(lines.size() == 2);  // steps 3 and 6
  for (const auto& j : lines) {
    CHECK(j["routing"] == "train");
    REQUIRE(j.contains("dropless"));
    const auto& d = j["dropless"];
    CHECK(d["eval"]["loss_bits"].is_number());
    CHECK(d["eval"]["domains"].size() == j["eval"]["domains"].size());
    CHECK(d["metrics_summary"].contains("rs"));
    CHECK(d["rule"].get<std::string>().find("no capacity limit") != std::string::npos);
    CHECK(fs::exists(run / d["trace"].get<std::string>()));
    CHECK(d["trace"].get<std::string>().rfind("traces-dropless/", 0) == 0);
  }
  // The existing fields are unchanged; final_trace and eval.json name the training-time trace.
  CHECK(runs::final_trace(run) == run / "traces/step-000006.safetensors");
  const auto final_eval = runs::read_final_eval(run);
  REQUIRE(final_eval);
  REQUIRE(final_eval->record.dropless);
  CHECK(final_eval->record.dropless->eval.loss_bits.has_value());
  // The training-time trace holds the pre-drop choices; the dropless one has none.
  const Trace main({(run / "traces/step-000006.safetensors").string()}, ExpertsTensor::kBeforeCapacity);
  CHECK(main.n_layers() == 2);
  CHECK_THROWS_AS(Trace({(run / "traces-dropless/step-000006.safetensors").string()}, ExpertsTensor::kBeforeCapacity), TraceError);

  // Expert choice: the causal rule; top-k without capacity: one evaluation, routing "train".
  TrainConfig ec = cfg;
  ec.router.capacity_factor = 0.0;
  ec.router.name = "expert_choice";
  ec.steps = 3;
  train_model(ec, quiet_options(dir.path / "ec"));
  const auto ec_lines = eval_lines(dir.path / "ec");
  REQUIRE(ec_lines.size() == 1);
  CHECK(ec_lines[0]["dropless"]["rule"].get<std::string>().find("causal: each token takes its own 2") != std::string::npos);
  TrainConfig plain = ec;
  plain.router.name = "topk";
  train_model(plain, quiet_options(dir.path / "plain"));
  const auto plain_lines = eval_lines(dir.path / "plain");
  REQUIRE(plain_lines.size() == 1);
  CHECK(plain_lines[0]["routing"] == "train");
  CHECK_FALSE(plain_lines[0].contains("dropless"));
  CHECK_FALSE(fs::exists(dir.path / "plain" / "traces-dropless"));
  // eval.routing = dropless: one evaluation, itself dropless.
  TrainConfig only = cfg;
  only.steps = 3;
  only.eval_routing = "dropless";
  train_model(only, quiet_options(dir.path / "only"));
  const auto only_lines = eval_lines(dir.path / "only");
  REQUIRE(only_lines.size() == 1);
  CHECK(only_lines[0]["routing"] == "dropless");
  CHECK_FALSE(only_lines[0].contains("dropless"));
}

TEST_CASE("eval routing: a bad eval.routing is one line naming the key and the choices", "[training]") {
  TrainConfig cfg;
  cfg.data_dir = "data";
  cfg.eval_routing = "sometimes";
  try {
    validate_train_config(cfg);
    FAIL("no error");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()) == "eval.routing: 'sometimes' is not one of: auto, train, dropless, both");
  }
  for (const char* ok : {"auto", "train", "dropless", "both"}) {
    cfg.eval_routing = ok;
    CHECK_NOTHROW(validate_train_config(cfg));
  }
  cfg.eval_routing = "auto";
  CHECK(resolved_eval_routing(cfg) == "train");
  cfg.router.capacity_factor = 1.25;
  CHECK(resolved_eval_routing(cfg) == "both");
  cfg.router.capacity_factor = 0.0;
  cfg.router.name = "expert_choice";
  CHECK(resolved_eval_routing(cfg) == "both");
  cfg.eval_routing = "train";
  CHECK(resolved_eval_routing(cfg) == "train");
}
