// The small MoE LM and `moetb train`'s loop: causality of the model, an end-to-end run on
// a tiny dataset (run directory, traces the metric suite can read, eval.json), --resume
// ending with exactly the weights of an uninterrupted run (topk and the stateful random
// router), and a NaN loss stopping the run with the last good checkpoint kept.
#include "tests/torch/torch_catch.h"

#include <ATen/ops/equal.h>
#include <ATen/ops/randint.h>
#include <torch/cuda.h>
#include <torch/serialize/input-archive.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/config_binder.h"
#include "datagen/dataset.h"
#include "datagen/dataset_writer.h"
#include "metrics/trace.h"
#include "metrics/trace_metrics.h"
#include "models/trainer.h"
#include "models/transformer.h"
#include "tests/torch/training_test_util.h"

using namespace moetb;
using namespace training_test;
namespace fs = std::filesystem;

namespace {

// Loads a run's final weights into a fresh model.
std::vector<at::Tensor> final_weights(const TrainConfig& cfg, const fs::path& run) {
  std::ifstream latest(run / "checkpoints" / "latest");
  std::string name;
  latest >> name;
  torch::serialize::InputArchive archive;
  archive.load_from((run / "checkpoints" / name / "model.pt").string());
  const Dataset data(cfg.data_dir);
  ModelConfig mc;
  mc.vocab_size = data.vocab_size();
  mc.max_seq_len = data.seq_len();
  mc.d_model = cfg.d_model;
  mc.n_heads = cfg.n_heads;
  mc.n_layers = cfg.n_layers;
  mc.moe.n_experts = cfg.n_experts;
  mc.moe.top_k = cfg.top_k;
  mc.moe.d_ff = cfg.d_ff;
  mc.moe.router.name = "topk";  // the router does not change the parameter set
  MoETransformer model(mc);
  model->load(archive);
  return model->parameters();
}

}  // namespace

TEST_CASE("the MoE LM is causal: a later token never changes earlier logits", "[training]") {
  ModelConfig mc;
  mc.vocab_size = 50;
  mc.max_seq_len = 12;
  mc.d_model = 16;
  mc.n_heads = 2;
  mc.n_layers = 2;
  mc.first_k_dense = 1;
  mc.moe.n_experts = 4;
  mc.moe.top_k = 2;
  mc.moe.d_ff = 8;
  MoETransformer model(mc);
  at::Tensor tokens = at::randint(50, {2, 12}, at::kLong);
  const LMOutput a = model->forward(tokens, {}, false);
  REQUIRE(a.logits.sizes() == at::IntArrayRef({2, 12, 50}));
  REQUIRE(a.decisions.size() == 1);  // one dense block, one MoE block
  at::Tensor changed = tokens.clone();
  changed.index_put_({0, 7}, (tokens.index({0, 7}).item<int64_t>() + 1) % 50);
  const LMOutput b = model->forward(changed, {}, false);
  // Up to float rounding: the grouped expert products see a different set of rows.
  CHECK((a.logits.narrow(1, 0, 7) - b.logits.narrow(1, 0, 7)).abs().max().item<double>() < 1e-5);
  CHECK((a.logits.narrow(1, 7, 1) - b.logits.narrow(1, 7, 1)).abs().max().item<double>() > 1e-3);
}

TEST_CASE("a tiny training run writes its run directory, traces and eval.json", "[training]") {
  ScratchDir dir;
  const TrainConfig cfg = tiny_config(tiny_dataset(dir));
  const fs::path run = dir.path / "run";
  const TrainResult r = train_model(cfg, quiet_options(run));
  REQUIRE(r.finished);
  CHECK(r.last_step == cfg.steps);
  for (const char* f : {"config.toml", "run.json", "train_log.jsonl", "eval.json", "traces/step-000003.safetensors",
                        "traces/step-000006.safetensors", "checkpoints/latest"})
    CHECK(fs::exists(run / f));
  // One line per step and one per evaluation.
  std::ifstream log(run / "train_log.jsonl");
  int steps = 0, evals = 0;
  for (std::string line; std::getline(log, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("eval")) ++evals;
    else ++steps;
  }
  CHECK(steps == cfg.steps);
  CHECK(evals == 2);
  // The trace is a valid v1 trace: one layer per MoE block, the eval tokens, the domains.
  const Trace trace({(run / "traces/step-000006.safetensors").string()});
  CHECK(trace.n_layers() == cfg.n_layers);
  CHECK(trace.meta().domain_names.size() == 3);
  REQUIRE(trace.meta().reference_groups.has_value());
  const TraceMetrics m = compute_trace_metrics(trace);
  CHECK(m.layers.size() == static_cast<std::size_t>(cfg.n_layers));
  const nlohmann::json ev = r.eval["eval"];
  CHECK(ev["n_tokens"].get<int64_t>() == cfg.eval_sequences * 15);
  CHECK(ev["loss_bits"].get<double>() > ev["floor_bits"].get<double>() - 0.5);
  CHECK(ev["domains"].size() == 3);
}

TEST_CASE("--resume ends with exactly the weights of an uninterrupted run", "[training]") {
  ScratchDir dir;
  const std::string data = tiny_dataset(dir);
  for (const char* router : {"topk", "random"}) {
    TrainConfig cfg = tiny_config(data);
    cfg.router.name = router;
    const fs::path whole = dir.path / (std::string("whole-") + router), split = dir.path / (std::string("split-") + router);
    train_model(cfg, quiet_options(whole));
    TrainOptions first = quiet_options(split);
    first.stop_after = 4;
    const TrainResult part = train_model(cfg, first);
    CHECK_FALSE(part.finished);
    CHECK_FALSE(fs::exists(split / "eval.json"));
    TrainOptions rest = quiet_options(split);
    rest.resume = true;
    REQUIRE(train_model(cfg, rest).finished);
    const auto a = final_weights(cfg, whole), b = final_weights(cfg, split);
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(at::equal(a[i], b[i]));
    // The logs agree too: the resumed run rewrote nothing past its checkpoint twice.
    std::ifstream la(whole / "train_log.jsonl"), lb(split / "train_log.jsonl");
    std::stringstream sa, sb;
    sa << la.rdbuf();
    sb << lb.rdbuf();
    const std::string text_a = sa.str(), text_b = sb.str();
    CHECK(std::count(text_a.begin(), text_a.end(), '\n') == std::count(text_b.begin(), text_b.end(), '\n'));
    // Resuming a finished run trains nothing more and reports its evaluation.
    const TrainResult again = train_model(cfg, rest);
    CHECK(again.finished);
    CHECK(again.last_step == cfg.steps);
    CHECK(again.eval["eval"]["loss_bits"].is_number());
    const auto c = final_weights(cfg, split);
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(at::equal(a[i], c[i]));
  }
}

TEST_CASE("a NaN loss stops the run naming the step and keeps the last good checkpoint", "[training]") {
  ScratchDir dir;
  TrainConfig cfg = tiny_config(tiny_dataset(dir));
  cfg.checkpoint_every = 2;
  cfg.nan_at_step = 5;
  const fs::path run = dir.path / "run";
  try {
    train_model(cfg, quiet_options(run));
    FAIL("no error");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("step 5") != std::string::npos);
    CHECK(msg.find("step 4") != std::string::npos);  // the kept checkpoint
    CHECK(msg.find('\n') == std::string::npos);
  }
  CHECK(fs::exists(run / "checkpoints" / "step-000004" / "model.pt"));
  CHECK_FALSE(fs::exists(run / "eval.json"));
}

TEST_CASE("bad training configs are one-line errors naming the key", "[training]") {
  ScratchDir dir;
  const std::string data = tiny_dataset(dir);
  TrainConfig cfg = tiny_config(data);
  cfg.top_k = 9;
  CHECK_THROWS_WITH(train_model(cfg, quiet_options(dir.path / "r1")), Catch::Contains("moe.top_k"));
  cfg = tiny_config(data);
  cfg.router.name = "nope";
  CHECK_THROWS_WITH(train_model(cfg, quiet_options(dir.path / "r2")), Catch::Contains("router.name"));
  cfg = tiny_config(data);
  cfg.n_experts = 2;  // 3 domains need 3 experts for the oracle's groups
  cfg.top_k = 1;
  cfg.router.name = "oracle";
  CHECK_THROWS_WITH(train_model(cfg, quiet_options(dir.path / "r3")), Catch::Contains("oracle"));
  cfg = tiny_config(data);
  cfg.device = "cuda";
  if (!torch::cuda::is_available()) CHECK_THROWS_WITH(train_model(cfg, quiet_options(dir.path / "r4")), Catch::Contains("cuda"));
  ConfigBinder binder;
  bind_train_config(binder, cfg);
  CHECK_THROWS_WITH(binder.load_toml("[train]\nstepz = 3\n", "x.toml"), Catch::Contains("train.stepz"));
  CHECK_FALSE(fs::exists(dir.path / "r1"));
}

TEST_CASE("router keys bind the one RouterConfig: enums by name, one-line errors, defaults of the runs", "[training]") {
  TrainConfig cfg;
  CHECK(cfg.router.z_loss_coef == 0.001);  // the one default; runs have always used it
  ConfigBinder binder;
  bind_train_config(binder, cfg);
  binder.load_toml("[router]\nscore = \"sigmoid\"\nbalance_scope = \"global_batch\"\ndrop_policy = \"position\"\n", "x.toml");
  CHECK(cfg.router.score == Score::kSigmoid);
  CHECK(cfg.router.balance_scope == BalanceScope::kGlobalBatch);
  CHECK(cfg.router.drop_policy == DropPolicy::kPosition);
  binder.set("router.balance_scope=sequence");
  CHECK(cfg.router.balance_scope == BalanceScope::kSequence);
  const std::string toml = binder.to_toml();
  CHECK_THAT(toml, Catch::Contains("score = 'sigmoid'"));
  CHECK_THAT(toml, Catch::Contains("balance_scope = 'sequence'"));
  CHECK(binder.to_json()["router"]["drop_policy"] == "position");
  CHECK_THROWS_WITH(binder.set("router.score=relu"),
                    "--set router.score=relu: key 'router.score': 'relu' is not one of: softmax, sigmoid");
  CHECK_THROWS_WITH(binder.load_toml("[router]\ndrop_policy = 3\n", "y.toml"),
                    "y.toml: key 'router.drop_policy': expected a string, got an integer");
  cfg.data_dir = "d";
  cfg.router.jitter = 2.0;
  CHECK_THROWS_WITH(validate_train_config(cfg), "router.jitter: must be in [0, 1), got 2");
}
