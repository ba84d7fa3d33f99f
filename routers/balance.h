// Load-balancing scopes of the Switch loss c * E * sum_e f_e P_e (arXiv 2101.03961): over
// the micro-batch, per sequence (DeepSeek-V3's sequence-wise loss, arXiv 2412.19437) or
// over the optimizer step's global batch (Qwen, arXiv 2501.11873; Megatron's global aux
// loss), and the per-step expert counts that global scope and DeepSeek-V3's aux-loss-free
// bias share. docs/routers.md states the global-batch rule under gradient accumulation.
// Internal to moetb_routers.
#pragma once
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "routers/router.h"

namespace moetb {

// E * mean over sequences of sum_e f_{s,e} P_{s,e}: f from the sequence's non-empty slots,
// P the mean of probs over its tokens. probs: [n_tokens, E]; experts: [n_tokens, k] int64
// (-1 = empty); sequence_ids: [n_tokens] int64, any values. Returns []; 0 for 0 tokens.
at::Tensor sequence_balance_loss(const at::Tensor& probs, const at::Tensor& experts, const at::Tensor& sequence_ids);

// E * sum_e f_e P_e with f_e = counts_e / sum(counts) given (not differentiable) and
// P_e = mean of probs over the micro-batch. counts: [E] doubles. Returns [].
at::Tensor counts_balance_loss(const at::Tensor& probs, const std::vector<double>& counts);

// Per-expert assignment counts over the training micro-batches of one optimizer step.
class StepLoad {
 public:
  explicit StepLoad(int64_t n_experts) : counts_(static_cast<std::size_t>(n_experts), 0.0) {}
  void add(const at::Tensor& experts);  // experts: [n_tokens, k] int64, -1 ignored
  void reset() { std::fill(counts_.begin(), counts_.end(), 0.0); }
  const std::vector<double>& counts() const { return counts_; }
  std::vector<double>& mutable_counts() { return counts_; }

 private:
  std::vector<double> counts_;  // [E]
};

// The balance term of cfg.balance_scope for this micro-batch (unweighted, []). For
// global_batch during training, `step` must already hold this micro-batch's counts; at
// evaluation (ctx.training false) global_batch falls back to the micro-batch.
at::Tensor scoped_balance_loss(const RouterConfig& cfg, const at::Tensor& probs, const at::Tensor& experts,
                               const RouteContext& ctx, const StepLoad& step);

// DeepSeek-V3's update b_e += u * sign(mean_load - load_e) from the step's counts; no
// change when the step saw no assignments. bias: [E].
void update_balance_bias(std::vector<double>& bias, const std::vector<double>& counts, double rate);

// The aux-loss-free bias at sequence or micro-batch scope: every block (a sequence, or a
// micro-batch) of the step's training routes votes sign(mean load - load_e) from its own
// counts; the step's update is b_e += u * (mean vote of its blocks). Blocks without
// assignments do not vote. (global_batch scope is update_balance_bias on the step's counts.)
class BiasVotes {
 public:
  explicit BiasVotes(int64_t n_experts) : votes_(static_cast<std::size_t>(n_experts), 0.0) {}
  // experts: [n_tokens, k] int64 (-1 ignored); block_ids: [n_tokens] int64 (one block per
  // value), or undefined: the whole micro-batch is one block.
  void add(const at::Tensor& experts, const at::Tensor& block_ids);
  void apply(std::vector<double>& bias, double rate);  // then reset
  void reset();
  std::vector<double>& votes() { return votes_; }
  const std::vector<double>& votes() const { return votes_; }
  double& blocks() { return blocks_; }
  double blocks() const { return blocks_; }

 private:
  void vote(const double* counts);  // one block's [E] counts
  std::vector<double> votes_;  // [E] summed signs
  double blocks_ = 0.0;        // blocks that voted
};

// Row indices of each sequence of sequence_ids ([n_tokens] int64), by ascending id: [m_s] each.
std::vector<at::Tensor> sequence_rows(const at::Tensor& sequence_ids);

// Doubles <-> checkpoint words (bit-cast, exact).
void append_doubles(std::vector<uint64_t>& out, const std::vector<double>& v);
std::vector<double> read_doubles(const std::vector<uint64_t>& in, std::size_t offset, std::size_t n);

}  // namespace moetb
