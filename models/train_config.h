// The training config: model, router, optimisation, evaluation and checkpoint knobs as a
// plain aggregate with a default and a comment per field, bound to dotted TOML keys
// ("model.d_model", "router.name", "train.lr", ...). docs/training.md lists them all.
// The router.* keys bind the embedded RouterConfig, validated by validate_router_config.
// Defaults are the README demo: they train in about a minute per run on one core.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "routers/router_config.h"

namespace moetb {
class ConfigBinder;

struct TrainConfig {
  std::string data_dir;            // data.dir: a dataset written by `moetb datagen` (required)
  // model
  int64_t d_model = 128;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t first_k_dense = 0;       // leading dense blocks (DeepSeek's first_k_dense)
  int64_t dense_d_ff = 0;          // 0 = moe.d_ff * moe.top_k
  bool tie_embeddings = true;
  double rope_theta = 10000.0;
  // moe
  int64_t n_experts = 8;
  int64_t top_k = 2;
  int64_t d_ff = 128;              // per expert
  int64_t n_shared_experts = 0;
  // router (router.*): the one RouterConfig (routers/router_config.h); its n_experts, top_k,
  // seed and domain_groups are not keys: the model sets them from moe.*, train.seed and the data.
  RouterConfig router;
  int64_t oracle_overlap = 0;      // experts each domain group shares with the next (oracle/reference groups)
  // optimisation
  int64_t steps = 200;             // optimizer steps (global batches)
  int64_t micro_batch = 16;        // sequences per forward/backward
  int64_t accum_steps = 1;         // micro-batches per global batch
  double lr = 3e-3;
  double min_lr_ratio = 0.1;       // cosine decays to lr * min_lr_ratio
  int64_t warmup_steps = 20;
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double grad_clip = 1.0;          // global L2 norm; 0 = off
  int64_t seed = 1;                // weights, batch order, hash/random routers
  int64_t threads = 1;             // intra-op threads (1 is fastest for these sizes here)
  std::string device = "cpu";      // cpu or cuda
  // evaluation, traces, checkpoints
  int64_t eval_every = 50;         // evaluate (and write a trace) every N steps and at the end (default: 4 points over 200 steps)
  int64_t eval_sequences = 256;    // validation sequences per evaluation (0 = all)
  // eval.routing: "train" (as trained), "dropless" (no capacity limit, each token routed on its
  // own: expert choice by its causal rule), "both" (train, plus dropless beside it), or "auto":
  // both where training routing drops or is not causal (capacity_factor > 0, expert choice), else train.
  std::string eval_routing = "auto";
  int64_t checkpoint_every = 100;  // 0 = only at the end
  int64_t log_every = 10;          // plain progress lines when stderr is not a terminal
  int64_t nan_at_step = 0;         // test hook: make the loss NaN at this step (0 = never)
};

void bind_train_config(ConfigBinder& binder, TrainConfig& cfg);
void validate_train_config(const TrainConfig& cfg);  // throws std::invalid_argument("key: problem")
// eval.routing with "auto" resolved: "train", "dropless" or "both".
std::string resolved_eval_routing(const TrainConfig& cfg);

// What the data and the machine give a training run, for the bounds checked before any work.
struct TrainingMachine {
  int64_t vocab_size = 0;       // the dataset's
  int64_t seq_len = 0;
  int64_t train_sequences = 0;
  unsigned cores = 0;           // 0: unknown
  double memory_bytes = 0;      // physical memory (CPU training); 0: unknown
};
// Bytes a CPU training run needs, roughly: weights, gradients and the two AdamW moments
// (float32), plus the activations one micro-batch keeps for its backward pass (attention
// scores, the experts' hidden states, the logits). An estimate, on the generous side.
double training_memory_bytes(const TrainConfig& c, int64_t vocab_size, int64_t seq_len);
// Bounds before work: throws std::invalid_argument("KEY: ...") for a run that cannot fit (no
// training sequence; a memory estimate above the machine's memory, given with the estimate);
// returns warnings for one that may not (more threads than cores; above half the memory).
std::vector<std::string> check_training_bounds(const TrainConfig& c, const TrainingMachine& m);

}  // namespace moetb
