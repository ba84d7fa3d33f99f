// remove_experts (expert_mask.h): empty the removed experts' slots, rescale the rest.
// Only tokens that held a removed expert change; the others keep their decision bit for
// bit. Used by `moetb knockout` (models/knockout.h); causal importance as in arXiv 2606.10703.
#include "models/expert_mask.h"

#include <ATen/ops/ones_like.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>

namespace moetb {

void remove_experts(RoutingDecision& d, const at::Tensor& removed) {
  const at::Tensor& experts = d.experts;  // [n_tokens, slots] int64, -1 = empty
  if (experts.numel() == 0) return;
  const at::Tensor hit = removed.to(experts.device())
                             .index_select(0, experts.clamp_min(0).reshape({-1}))
                             .view(experts.sizes())
                             .logical_and(experts.ge(0));              // [n_tokens, slots]
  const at::Tensor any_hit = hit.any(1, /*keepdim=*/true);             // [n_tokens, 1]
  const at::Tensor kept = d.weights.masked_fill(hit, 0.0);             // [n_tokens, slots]
  const at::Tensor before = d.weights.sum(1, /*keepdim=*/true);        // [n_tokens, 1]
  const at::Tensor after = kept.sum(1, /*keepdim=*/true);              // [n_tokens, 1]
  const at::Tensor positive = after.gt(0);
  const at::Tensor scale = at::where(positive, before.div(at::where(positive, after, at::ones_like(after))),
                                     at::zeros_like(after));          // [n_tokens, 1]
  d.weights = at::where(any_hit, kept.mul(scale), d.weights);
  d.experts = experts.masked_fill(hit, -1);
}

}  // namespace moetb
