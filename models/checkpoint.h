// Checkpoints of a training run: model weights and AdamW state (LibTorch archives), plus
// the step, the batch sampler's position and each router's RNG state (state.json), so
// that --resume ends with exactly the weights of an uninterrupted run. Each checkpoint is
// a directory written under a temporary name and renamed; `latest` names the newest.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "datagen/dataset.h"
#include "models/transformer.h"

namespace torch::optim {
class Optimizer;
}

namespace moetb {

struct CheckpointState {
  int64_t step = 0;
  BatchSampler::State sampler;
  std::vector<std::vector<uint64_t>> router_states;  // one per MoE block
};

// Writes run_dir/checkpoints/step-NNNNNN/ and points checkpoints/latest at it; keeps the
// newest `keep` checkpoints. Returns the checkpoint's directory.
std::string save_checkpoint(const std::string& run_dir, MoETransformerImpl& model, torch::optim::Optimizer& opt,
                            const CheckpointState& state, int keep = 2);
// Loads the checkpoint named by run_dir/checkpoints/latest; when that one is damaged (or
// `latest` is), the newest other checkpoint that loads, with a warning on stderr naming the
// damaged one. Throws (the first checkpoint's error) when none loads or there is none.
CheckpointState load_checkpoint(const std::string& run_dir, MoETransformerImpl& model, torch::optim::Optimizer& opt);
// The step of the latest checkpoint (as named by `latest`, else the newest step-NNNNNN), or
// -1 when the run has none.
int64_t latest_checkpoint_step(const std::string& run_dir);

}  // namespace moetb
