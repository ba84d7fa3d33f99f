// `moetb finetune RUN` (docs/finetune.md): from a trained run's latest checkpoint, continue
// training on one target domain with only a chosen set of parameters trainable, as in
// DBES's expert-path fine-tuning (arXiv 2605.18498) and the controls its review asked
// for: arms paths / random / least / experts / full (metrics/expert_selection.h). Every
// arm uses the same steps, batches and optimizer; frozen parameters stay bit for bit.
// The result ("moetb-finetune/1", finetune.json in the output run directory) holds the
// target loss before/after, the other domains' change, trainable parameters and FLOPs.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace moetb {

struct FinetuneOptions {
  std::string run_dir;          // the trained run (config.toml, checkpoints/, traces/)
  std::string out_dir;          // the fine-tune's run directory (written atomically)
  std::string domain;           // target domain name (of the target dataset)
  std::string data_dir;         // target dataset with the run's vocabulary; "" = the run's own
  std::string arm = "paths";    // paths, random, least, experts, full
  double tau = 0.5;             // paths threshold (cumulative routing share)
  int64_t draw = 0;             // random arm: which draw
  int64_t steps = 100;          // optimizer steps
  double lr = 1e-3;             // peak learning rate (AdamW, fresh state)
  int64_t warmup_steps = -1;    // linear warmup, then cosine to lr/10; -1 = steps / 10
  double weight_decay = 0.0;    // AdamW decoupled weight decay (trainable parameters only)
  int64_t micro_batch = 0;      // sequences per step; 0 = the run's train.micro_batch
  int64_t seed = -1;            // batch order; -1 = the run's train.seed (same for every arm)
  int64_t eval_sequences = 0;   // validation sequences before/after; 0 = the run's eval.sequences
  std::string device;           // "" = the run's train.device
  bool force = false;           // replace an existing fine-tune directory
  bool progress = false;        // progress on stderr
  std::string git_revision;
};

// Runs the fine-tune and returns the result document (also written to OUT/finetune.json).
// Bad options throw std::invalid_argument with one line naming the option.
nlohmann::json run_finetune(const FinetuneOptions& options);

}  // namespace moetb
