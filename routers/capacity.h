// Expert capacity with token dropping, applied by the MoE layer after any token-choice
// router (Switch Transformer, arXiv 2101.03961; GShard): each expert keeps at most
// C = ceil(capacity_factor * n_tokens * top_k / E) assignments; the rest become empty
// slots (expert -1, weight 0), so the block's residual carries those tokens. Policies:
// "probability" keeps the highest-weight assignments, "position" the earliest tokens.
// capacity_factor 0 = dropless. The MoE Routing Testbed (arXiv 2604.07030) finds strict
// capacity hinders specialization.
#pragma once
#include <cstdint>
#include <string>

#include "routers/router.h"

namespace moetb {

// C = ceil(capacity_factor * n_tokens * top_k / n_experts); -1 (no limit) for factor 0.
int64_t expert_capacity(int64_t n_tokens, int64_t top_k, int64_t n_experts, double capacity_factor);

// Drops the assignments over capacity from d.experts / d.weights ([n_tokens, slots]) and
// returns the dropped share of the non-empty assignments (0 when none were dropped or
// there were none). Weights of kept slots keep their gradient.
double apply_capacity(RoutingDecision& d, int64_t n_experts, int64_t capacity, DropPolicy policy);

}  // namespace moetb
