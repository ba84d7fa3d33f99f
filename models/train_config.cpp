// Binding and validation of TrainConfig (train_config.h).
#include "models/train_config.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/config_binder.h"
#include "routers/router_config.h"

namespace moetb {

namespace {
// An enum field bound by its names (routers/router_config.h).
template <class E> ConfigBinder::Choice choice(E* field) {
  return {[field] { return enum_name(*field); }, [field](const std::string& s) { *field = parse_enum<E>(s); }};
}
}  // namespace

void bind_train_config(ConfigBinder& b, TrainConfig& c) {
  b.add("data.dir", &c.data_dir, "dataset directory written by moetb datagen");
  b.add("model.d_model", &c.d_model, "model width");
  b.add("model.n_layers", &c.n_layers, "transformer blocks");
  b.add("model.n_heads", &c.n_heads, "attention heads (head width must be even)");
  b.add("model.first_k_dense", &c.first_k_dense, "leading blocks with a dense SwiGLU instead of MoE");
  b.add("model.dense_d_ff", &c.dense_d_ff, "width of those dense blocks (0 = moe.d_ff * moe.top_k)");
  b.add("model.tie_embeddings", &c.tie_embeddings, "LM head shares the embedding matrix");
  b.add("model.rope_theta", &c.rope_theta, "rotary base");
  b.add("moe.n_experts", &c.n_experts, "experts E per MoE block");
  b.add("moe.top_k", &c.top_k, "experts per token");
  b.add("moe.d_ff", &c.d_ff, "hidden width of each SwiGLU expert");
  b.add("moe.n_shared_experts", &c.n_shared_experts, "always-on shared experts");
  RouterConfig& r = c.router;
  b.add("router.name", &r.name, "topk, oracle, hash, random, expert_choice, sinkhorn or balanced (moetb routers)");
  b.add("router.score", choice(&r.score), "softmax or sigmoid (topk)");
  b.add("router.renormalize", &r.renormalize, "renormalise the selected weights to sum 1");
  b.add("router.balance_coef", &r.balance_coef, "Switch load-balancing loss coefficient");
  b.add("router.balance_scope", choice(&r.balance_scope), "balance loss scope: micro_batch, sequence or global_batch (topk)");
  b.add("router.seq_aux_coef", &r.seq_aux_coef, "extra sequence-wise balance loss coefficient (topk)");
  b.add("router.z_loss_coef", &r.z_loss_coef, "router z-loss coefficient");
  b.add("router.bias_update_rate", &r.bias_update_rate, "aux-loss-free balancing bias step per optimizer step (topk), 0 = off");
  b.add("router.bias_scope", choice(&r.bias_scope),
        "aux-loss-free bias updated from per-sequence, per-micro-batch or the step's global-batch counts (topk)");
  b.add("router.assign_scope", choice(&r.assign_scope),
        "sinkhorn/balanced: solve over each sequence, the micro-batch or the step (global_batch needs train.accum_steps = 1)");
  b.add("router.n_groups", &r.n_groups, "group-limited routing: expert groups (topk), 1 = off");
  b.add("router.topk_groups", &r.topk_groups, "group-limited routing: groups each token may use");
  b.add("router.group_score", choice(&r.group_score),
        "group-limited routing: a group's score is its best expert (max, DeepSeek-V2) or its two best summed "
        "(top2_sum, DeepSeek-V3); auto = top2_sum for sigmoid scores, max for softmax");
  b.add("router.jitter", &r.jitter, "training: logits times U(1-jitter, 1+jitter) (topk)");
  b.add("router.topk_before_softmax", &r.topk_before_softmax, "softmax over the k selected logits (topk)");
  b.add("router.sinkhorn_tol", &r.sinkhorn_tol, "sinkhorn: stop when every column sum is within this relative distance of n/E");
  b.add("router.sinkhorn_max_iters", &r.sinkhorn_max_iters, "sinkhorn: iteration cap (the residual is logged as sinkhorn_residual)");
  b.add("router.capacity_factor", &r.capacity_factor, "expert capacity factor, 0 = dropless (expert_choice: 0 = top_k)");
  b.add("router.drop_policy", choice(&r.drop_policy), "over capacity keep by probability or by position");
  b.add("router.oracle_overlap", &c.oracle_overlap, "experts each domain's reference group shares with the next");
  b.add("train.steps", &c.steps, "optimizer steps");
  b.add("train.micro_batch", &c.micro_batch, "sequences per micro-batch");
  b.add("train.accum_steps", &c.accum_steps, "micro-batches accumulated per optimizer step (global batch)");
  b.add("train.lr", &c.lr, "peak learning rate (AdamW)");
  b.add("train.min_lr_ratio", &c.min_lr_ratio, "final learning rate as a fraction of the peak");
  b.add("train.warmup_steps", &c.warmup_steps, "linear warmup steps");
  b.add("train.weight_decay", &c.weight_decay, "AdamW weight decay");
  b.add("train.beta1", &c.beta1, "AdamW beta1");
  b.add("train.beta2", &c.beta2, "AdamW beta2");
  b.add("train.grad_clip", &c.grad_clip, "global gradient-norm clip (0 = off)");
  b.add("train.seed", &c.seed, "seed for weights, batch order and the hash/random routers");
  b.add("train.threads", &c.threads, "intra-op threads");
  b.add("train.device", &c.device, "cpu or cuda");
  b.add("eval.every", &c.eval_every, "evaluate and write a routing trace every N steps (and at the end)");
  b.add("eval.sequences", &c.eval_sequences, "validation sequences per evaluation (0 = all)");
  b.add("eval.routing", &c.eval_routing,
        "train (as trained), dropless (no capacity, each token on its own), both, or auto (both where training "
        "drops or is not causal: capacity or expert choice)");
  b.add("checkpoint.every", &c.checkpoint_every, "checkpoint every N steps (0 = only at the end)");
  b.add("log.every", &c.log_every, "progress line every N steps when not on a terminal");
  b.add("debug.nan_at_step", &c.nan_at_step, "test hook: poison the loss at this step (0 = never)");
}

namespace {
[[noreturn]] void bad(const std::string& key, const std::string& what) { throw std::invalid_argument(key + ": " + what); }
void at_least(const std::string& key, int64_t v, int64_t lo) {
  if (v < lo) bad(key, std::to_string(v) + " is below " + std::to_string(lo));
}
}  // namespace

void validate_train_config(const TrainConfig& c) {
  if (c.data_dir.empty()) bad("data.dir", "no dataset given (--data DIR or data.dir in the config)");
  at_least("model.d_model", c.d_model, 2);
  at_least("model.n_layers", c.n_layers, 1);
  if (c.n_layers > 4096) bad("model.n_layers", std::to_string(c.n_layers) + " is above 4096");
  at_least("model.n_heads", c.n_heads, 1);
  if (c.d_model % c.n_heads != 0 || (c.d_model / c.n_heads) % 2 != 0) bad("model.n_heads", "must split d_model into heads of even width");
  if (c.first_k_dense < 0 || c.first_k_dense >= c.n_layers) bad("model.first_k_dense", "must be in [0, n_layers)");
  at_least("model.dense_d_ff", c.dense_d_ff, 0);
  // A non-positive or non-finite rotary base gives NaN angles, hence a NaN loss at step 1.
  if (!(std::isfinite(c.rope_theta) && c.rope_theta > 0.0)) bad("model.rope_theta", "must be finite and > 0");
  at_least("moe.n_experts", c.n_experts, 1);
  if (c.top_k < 1 || c.top_k > c.n_experts) bad("moe.top_k", "must be in [1, n_experts]");
  at_least("moe.d_ff", c.d_ff, 1);
  at_least("moe.n_shared_experts", c.n_shared_experts, 0);
  RouterConfig router = c.router;  // the model's shape fills in what the router keys leave out
  router.n_experts = c.n_experts;
  router.top_k = c.top_k;
  validate_router_config(router);
  if ((router.name == "sinkhorn" || router.name == "balanced") && router.assign_scope == BalanceScope::kGlobalBatch &&
      c.accum_steps > 1)
    bad("router.assign_scope", "global_batch needs train.accum_steps = 1 for " + router.name +
                                   ": a micro-batch must be routed before the step's later ones exist (docs/routers.md)");
  at_least("router.oracle_overlap", c.oracle_overlap, 0);
  at_least("train.steps", c.steps, 1);
  at_least("train.micro_batch", c.micro_batch, 1);
  at_least("train.accum_steps", c.accum_steps, 1);
  if (!(std::isfinite(c.lr) && c.lr > 0.0)) bad("train.lr", "must be finite and > 0");
  if (!(c.min_lr_ratio >= 0.0 && c.min_lr_ratio <= 1.0)) bad("train.min_lr_ratio", "must be in [0, 1]");
  at_least("train.warmup_steps", c.warmup_steps, 0);
  if (!(std::isfinite(c.weight_decay) && c.weight_decay >= 0.0)) bad("train.weight_decay", "must be finite and >= 0");
  if (!(c.beta1 >= 0.0 && c.beta1 < 1.0)) bad("train.beta1", "must be in [0, 1)");
  if (!(c.beta2 >= 0.0 && c.beta2 < 1.0)) bad("train.beta2", "must be in [0, 1)");
  if (!(c.grad_clip >= 0.0)) bad("train.grad_clip", "must be >= 0");  // +inf: no clipping, as 0
  at_least("train.seed", c.seed, 0);
  at_least("train.threads", c.threads, 1);
  if (c.threads > 4096) bad("train.threads", std::to_string(c.threads) + " is above 4096");
  if (c.device != "cpu" && c.device != "cuda") bad("train.device", "'" + c.device + "' is not cpu or cuda");
  at_least("eval.every", c.eval_every, 1);
  at_least("eval.sequences", c.eval_sequences, 0);
  if (c.eval_routing != "auto" && c.eval_routing != "train" && c.eval_routing != "dropless" && c.eval_routing != "both")
    bad("eval.routing", "'" + c.eval_routing + "' is not one of: auto, train, dropless, both");
  at_least("checkpoint.every", c.checkpoint_every, 0);
  at_least("log.every", c.log_every, 1);
  at_least("debug.nan_at_step", c.nan_at_step, 0);
}

std::string resolved_eval_routing(const TrainConfig& c) {
  if (c.eval_routing != "auto") return c.eval_routing;
  return c.router.name == "expert_choice" || c.router.capacity_factor > 0.0 ? "both" : "train";
}

namespace {
std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}
}  // namespace

double training_memory_bytes(const TrainConfig& c, int64_t vocab_size, int64_t seq_len) {
  const double d = static_cast<double>(c.d_model), V = static_cast<double>(vocab_size), S = static_cast<double>(seq_len);
  const double L = static_cast<double>(c.n_layers), dense = static_cast<double>(c.first_k_dense);
  const double E = static_cast<double>(c.n_experts), k = static_cast<double>(c.top_k), ff = static_cast<double>(c.d_ff);
  const double shared = static_cast<double>(c.n_shared_experts), H = static_cast<double>(c.n_heads);
  const double dense_ff = c.dense_d_ff > 0 ? static_cast<double>(c.dense_d_ff) : ff * k;
  // Parameters: embeddings (and an untied head), attention, norms, and per block the experts or a dense SwiGLU.
  const double params = V * d * (c.tie_embeddings ? 1 : 2) + L * (4 * d * d + 2 * d) +
                        (L - dense) * (d * E + (E + shared) * 3 * d * ff) + dense * 3 * d * dense_ff;
  // Activations kept for backward, per micro-batch of T = B * S tokens.
  const double T = static_cast<double>(c.micro_batch) * S;
  const double per_layer = T * d * 12 + static_cast<double>(c.micro_batch) * H * S * S * 2 + T * (k + shared) * (2 * d + 3 * ff);
  const double activations = L * per_layer + T * V * 3;
  return 4.0 * (4 * params + activations);
}

std::vector<std::string> check_training_bounds(const TrainConfig& c, const TrainingMachine& m) {
  std::vector<std::string> warnings;
  if (m.train_sequences <= 0) bad("data.dir", "the dataset has no training sequence (datagen's train_tokens is below one sequence)");
  if (m.cores > 0 && c.threads > static_cast<int64_t>(m.cores))
    warnings.push_back("train.threads: " + std::to_string(c.threads) + " threads on " + std::to_string(m.cores) +
                       " cores; extra threads only slow training down");
  if (c.device == "cpu" && m.memory_bytes > 0) {
    const double need = training_memory_bytes(c, m.vocab_size, m.seq_len);
    const std::string what = "about " + gib(need) + " for training (micro_batch " + std::to_string(c.micro_batch) + " x seq_len " +
                             std::to_string(m.seq_len) + " x d_model " + std::to_string(c.d_model) + ", " +
                             std::to_string(c.n_layers) + " layers, vocabulary " + std::to_string(m.vocab_size) + ")";
    if (need > m.memory_bytes)
      bad("train.micro_batch", what + ", more than this machine's " + gib(m.memory_bytes) + "; use a smaller micro-batch or model");
    if (need > m.memory_bytes / 2) warnings.push_back("memory: " + what + " of this machine's " + gib(m.memory_bytes));
  }
  return warnings;
}

}  // namespace moetb
