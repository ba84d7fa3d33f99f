// The token-choice router's usual path, softmax -> top-k -> combine weights -> Switch balance
// loss (arXiv 2101.03961) + ST-MoE z-loss (arXiv 2202.08906), as one autograd function on the
// CPU: one pass over the [n, E] logits forward, one backward, instead of some fifteen ATen
// ops and their autograd nodes (softmax, gather, sum, div, mean, mul, ...). topk_router.cpp
// takes it for softmax scores without jitter, groups or top-k before softmax, in the
// micro-batch or global-batch balance scope, with or without the aux-loss-free bias; the ATen
// composition it replaces is softmax_topk_reference, and the tests hold them equal.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace moetb {

struct SoftmaxTopkOptions {
  int64_t top_k = 1;
  bool renormalize = true;          // weights divided by their row sum when top_k > 1
  double balance_coef = 0.0;        // aux_loss = balance_coef * balance + z_loss_coef * z_loss
  double z_loss_coef = 0.0;
  std::vector<double> bias;         // [E] added to the probabilities for selection only; empty: none
  std::vector<double> prior_counts; // [E] slots per expert earlier in the step (global-batch scope):
                                    // f_e are the shares of prior + this batch's counts; empty:
                                    // this batch's alone (micro-batch scope)
};

struct SoftmaxTopk {
  at::Tensor probs;    // [n, E] softmax(logits), differentiable
  at::Tensor experts;  // [n, k] int64, at::topk's order on probs (+ bias)
  at::Tensor weights;  // [n, k] the selected probabilities (renormalised), differentiable
  at::Tensor aux_loss; // [] differentiable
  double balance = 0.0, z_loss = 0.0;  // the unweighted terms
  std::vector<double> counts;          // [E] slots per expert in this batch
};

// logits: [n, E], n >= 1, 1 <= k <= E. CPU float32/64 runs the fused function; anything else
// the reference.
SoftmaxTopk softmax_topk(const at::Tensor& logits, const SoftmaxTopkOptions& opt);
SoftmaxTopk softmax_topk_reference(const at::Tensor& logits, const SoftmaxTopkOptions& opt);

}  // namespace moetb
