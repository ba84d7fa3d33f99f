// A trained run loaded back for post-hoc experiments (`moetb finetune`, `moetb knockout`,
// docs/finetune.md): its effective config (config.toml), dataset, the oracle's reference
// groups, and the model with the latest checkpoint's weights and router states. Follows
// the run directory of docs/training.md; the MoE layers are reached by module name.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "datagen/dataset.h"
#include "models/checkpoint.h"
#include "models/train_config.h"
#include "models/transformer.h"

namespace moetb {

struct LoadedRun {
  std::string dir;
  TrainConfig cfg;                           // the run's effective config
  std::unique_ptr<Dataset> data;             // the run's (pretraining) dataset
  std::vector<std::vector<int>> groups;      // reference groups (empty with more domains than experts)
  MoETransformer model{nullptr};             // on cfg.device, latest checkpoint's weights
  CheckpointState state;                     // step, sampler, router states of that checkpoint
  std::vector<MoEFeedForwardImpl*> moe;      // the MoE layers in block order
  std::vector<int64_t> moe_blocks;           // block index of each
  at::Device device{at::kCPU};
};

// Throws std::invalid_argument naming the file when the run has no config.toml, no
// checkpoint, or a dataset that cannot be opened. `device` "" = the run's train.device.
LoadedRun load_run(const std::string& run_dir, const std::string& device = "");

// The model config `moetb train` builds (trainer.cpp builds the same one).
ModelConfig run_model_config(const TrainConfig& c, const Dataset& data, const std::vector<std::vector<int>>& groups);
std::vector<std::vector<int>> run_reference_groups(const TrainConfig& c, const Dataset& data);

// Router states of every MoE layer (evaluation must not move the routers' streams).
std::vector<std::vector<uint64_t>> save_router_states(MoETransformerImpl& model);
void load_router_states(MoETransformerImpl& model, const std::vector<std::vector<uint64_t>>& states);

}  // namespace moetb
