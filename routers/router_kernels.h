// CPU fast paths for the routers' per-token work on [n_tokens, E] tensors (E is small: 8-64),
// each equal to the ATen composition it replaces and falling back to it off the CPU:
//   topk_indices: at::topk(scores, k, 1, largest, sorted)'s indices, ties and NaN included
//     (rows without ties by a k-slot insertion; rows with a tie or a NaN by the same
//     nth_element + sort ATen's CPU top-k runs, so they come out in the same order);
//   router_z_loss: ST-MoE's z-loss (arXiv 2202.08906) as one autograd function (one pass
//     forward, one backward) instead of logsumexp, pow and mean and their three nodes;
//   expert_counts: how many slots picked each expert (-1 ignored), without masked_select
//     and bincount.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace moetb {

// scores: [n, E] -> [n, k] int64 indices of each row's k largest, by descending score.
at::Tensor topk_indices(const at::Tensor& scores, int64_t k);

// mean over rows of logsumexp(logits)^2, differentiable; 0 for 0 rows. logits: [n, E].
at::Tensor router_z_loss(const at::Tensor& logits);
at::Tensor router_z_loss_reference(const at::Tensor& logits);

// experts: [n, k] int64, -1 = empty slot -> [E] counts (ids outside [0, E) other than -1 are
// an error).
std::vector<double> expert_counts(const at::Tensor& experts, int64_t n_experts);

}  // namespace moetb
