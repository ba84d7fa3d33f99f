// Reference domain -> expert groups: the assignment a domain oracle router uses and
// the planted simulator plants (MoE Routing Testbed, arXiv 2604.07030, reference router).
// Domain d owns the block of floor(E/D) experts starting at d*floor(E/D), extended by
// `overlap` experts into the next domain's block (cyclically), so neighbours share experts.
#pragma once
#include <cstdint>
#include <vector>

namespace moetb {

// Throws std::invalid_argument if D > E, or the groups would exceed E experts, or (when
// top_k > 0: an oracle router that routes only inside its group) a group is smaller than top_k.
std::vector<std::vector<int>> make_reference_groups(int64_t n_experts, int n_domains, int overlap, int top_k = 0);

}  // namespace moetb
