// Capacity and token dropping (capacity.h): Switch Transformer arXiv 2101.03961; the MoE
// Routing Testbed (arXiv 2604.07030) compares it with dropless routing. Rank of each
// assignment inside its expert by two stable sorts (policy key, then expert id).
#include "routers/capacity.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/sort.h>

#include <cmath>
#include <stdexcept>
#include <tuple>

namespace moetb {

int64_t expert_capacity(int64_t n_tokens, int64_t top_k, int64_t n_experts, double capacity_factor) {
  if (capacity_factor <= 0.0) return -1;
  const double c = capacity_factor * static_cast<double>(n_tokens * top_k) / static_cast<double>(n_experts);
  return static_cast<int64_t>(std::ceil(c - 1e-9));
}

double apply_capacity(RoutingDecision& d, int64_t n_experts, int64_t capacity, DropPolicy policy) {
  if (capacity < 0) return 0.0;
  const at::Tensor flat = d.experts.reshape({-1});            // [n_tokens * slots], token-major
  at::Tensor idx = flat.ge(0).nonzero().squeeze(1);           // [m] (token, slot) positions
  const int64_t m = idx.size(0);
  if (m == 0) return 0.0;
  if (policy == DropPolicy::kProbability) {  // highest weight first; ties keep token order
    const at::Tensor w = d.weights.detach().reshape({-1}).index_select(0, idx);  // [m]
    idx = idx.index_select(0, std::get<1>(at::sort(w, /*stable=*/true, 0, /*descending=*/true)));
  }
  at::Tensor e, order;  // [m]: grouped by expert, policy order inside a group
  std::tie(e, order) = at::sort(flat.index_select(0, idx), /*stable=*/true, 0, /*descending=*/false);
  idx = idx.index_select(0, order);
  const at::Tensor counts = at::bincount(e, {}, n_experts);  // [E]
  const at::Tensor starts = counts.cumsum(0).sub(counts);    // [E]
  const at::Tensor rank = at::arange(m, e.options()).sub(starts.index_select(0, e));  // [m]
  const at::Tensor dropped = idx.masked_select(rank.ge(capacity));                     // [n_dropped]
  const int64_t n_dropped = dropped.size(0);
  if (n_dropped == 0) return 0.0;
  const at::Tensor drop = at::zeros({flat.size(0)}, flat.options().dtype(at::kBool))
                              .index_fill(0, dropped, true)
                              .view(d.experts.sizes());  // [n_tokens, slots]
  d.experts = d.experts.masked_fill(drop, -1);
  d.weights = d.weights.masked_fill(drop, 0.0);
  return static_cast<double>(n_dropped) / static_cast<double>(m);
}

}  // namespace moetb
