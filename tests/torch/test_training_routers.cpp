// Every registered router (routers/registry.cpp) trains the small MoE LM for a few steps
// with a finite loss, and the topk options (global-batch scope, aux-loss-free bias,
// group-limited routing, jitter, capacity with dropping) train too, with the dropped
// fraction in the per-layer load record; the aux-loss-free bias survives --resume.
// MoE Routing Testbed, arXiv 2604.07030; DeepSeek-V3 arXiv 2412.19437.
#include "tests/torch/torch_catch.h"

#include <torch/serialize/input-archive.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "datagen/dataset_writer.h"
#include "models/trainer.h"
#include "routers/router.h"
#include "tests/torch/training_test_util.h"

using namespace moetb;
using namespace training_test;
namespace fs = std::filesystem;

namespace {

std::string small_dataset(const ScratchDir& dir) { return tiny_dataset(dir, 2048, 256); }

TrainConfig small_config(const std::string& data) {
  TrainConfig c = tiny_config(data);
  c.steps = 3;
  c.warmup_steps = 1;
  c.eval_sequences = 4;
  return c;
}

TrainOptions quiet(const fs::path& run) { return quiet_options(run); }

// The step lines of a run's log.
std::vector<nlohmann::json> step_lines(const fs::path& run) {
  std::vector<nlohmann::json> out;
  std::ifstream log(run / "train_log.jsonl");
  for (std::string line; std::getline(log, line);) {
    auto j = nlohmann::json::parse(line);
    if (!j.contains("eval")) out.push_back(j);
  }
  return out;
}

}  // namespace

TEST_CASE("every registered router and the topk options train with a finite loss", "[training]") {
  ScratchDir dir;
  const std::string data = small_dataset(dir);
  std::vector<std::pair<std::string, TrainConfig>> runs;
  for (const std::string& name : router_names()) {
    TrainConfig c = small_config(data);
    c.router.name = name;
    if (name == "oracle") c.top_k = 1;  // 4 experts / 3 domains: groups of one (a larger top_k is refused)
    runs.push_back({name, c});
  }
  TrainConfig options = small_config(data);
  options.router.balance_scope = BalanceScope::kGlobalBatch;
  options.router.bias_update_rate = 0.01;
  options.router.seq_aux_coef = 0.001;
  options.router.n_groups = 2;
  options.router.topk_groups = 1;
  options.router.jitter = 0.01;
  options.router.capacity_factor = 0.5;
  options.router.drop_policy = DropPolicy::kPosition;
  runs.push_back({"topk+options", options});
  TrainConfig eb_seq = small_config(data);  // the per-sequence scopes need the model's sequence ids
  eb_seq.router.bias_update_rate = 0.01;
  eb_seq.router.bias_scope = BalanceScope::kSequence;
  runs.push_back({"topk+bias_scope=sequence", eb_seq});
  for (const char* name : {"sinkhorn", "balanced"}) {
    TrainConfig per_seq = small_config(data);
    per_seq.router.name = name;
    per_seq.router.assign_scope = BalanceScope::kSequence;
    runs.push_back({std::string(name) + "+assign_scope=sequence", per_seq});
  }
  for (const auto& [label, cfg] : runs) {
    INFO(label);
    const fs::path run = dir.path / label;
    const TrainResult r = train_model(cfg, quiet(run));
    REQUIRE(r.finished);
    const auto lines = step_lines(run);
    REQUIRE(lines.size() == static_cast<std::size_t>(cfg.steps));
    for (const auto& j : lines) {
      CHECK(std::isfinite(j["loss_bits"].get<double>()));
      CHECK(std::isfinite(j["aux_loss"].get<double>()));
      REQUIRE(j["load"].size() == 2);
      for (const auto& layer : j["load"]) {
        const double dropped = layer["dropped_fraction"].get<double>();
        if (cfg.router.capacity_factor > 0) CHECK(dropped >= 0.5);  // C = half the assignments per expert on average
        else CHECK(dropped == 0.0);
      }
    }
    CHECK(std::isfinite(r.eval["eval"]["loss_bits"].get<double>()));
  }
}

TEST_CASE("the aux-loss-free bias survives --resume exactly", "[training]") {
  ScratchDir dir;
  TrainConfig cfg = small_config(small_dataset(dir));
  cfg.steps = 4;
  cfg.eval_every = 4;
  cfg.router.bias_update_rate = 0.05;
  cfg.router.balance_coef = 0.0;
  cfg.router.jitter = 0.05;
  train_model(cfg, quiet(dir.path / "whole"));
  TrainOptions first = quiet(dir.path / "split");
  first.stop_after = 2;
  train_model(cfg, first);
  TrainOptions rest = quiet(dir.path / "split");
  rest.resume = true;
  REQUIRE(train_model(cfg, rest).finished);
  const auto a = step_lines(dir.path / "whole"), b = step_lines(dir.path / "split");
  REQUIRE(a.size() == b.size());
  // Same routing after the resume: the per-layer loads (bias-driven selection) agree exactly.
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i]["load"] == b[i]["load"]);
    CHECK(a[i]["loss_bits"].get<double>() == b[i]["loss_bits"].get<double>());
  }
}
