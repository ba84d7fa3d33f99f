// `moetb train`: trains a small MoE LM on a datagen dataset with AdamW, warmup + cosine
// decay, gradient clipping and micro-batches accumulated into a global batch; evaluates
// every N steps (per-domain loss vs the entropy-rate floor, a routing trace measured by
// metrics/); writes a run directory (runs/, docs/run-format.md), held under an exclusive lock,
// and checkpoints that --resume continues bit for bit (refusing a changed data, model, router
// or seed). Follows the MoE Routing Testbed's training set-up (arXiv 2604.07030).
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "models/train_config.h"

namespace moetb {

struct TrainOptions {
  std::string run_dir;
  bool resume = false;         // continue from run_dir's latest checkpoint
  bool force = false;          // replace an existing moetb run directory (never any other folder)
  int64_t stop_after = 0;      // stop (with a checkpoint) after this step, as if interrupted; 0 = run to the end
  std::string git_revision;
  std::string config_toml;     // effective config, written as config.toml
  nlohmann::json config_json;
  nlohmann::json provenance = nlohmann::json::object();  // extra run.json provenance (host and start time are added)
  bool progress = true;        // progress on stderr (bar on a terminal, lines otherwise)
};

struct TrainResult {
  int64_t last_step = 0;
  bool finished = false;       // false when stopped by stop_after
  nlohmann::json eval;         // eval.json's content (empty when not finished)
};

TrainResult train_model(const TrainConfig& cfg, const TrainOptions& opts);

}  // namespace moetb
