// The exact balanced assignment of BASE layers (Lewis et al., arXiv 2103.16716), torch-free:
// n tokens, each to k distinct experts, expert e receiving exactly capacity[e] of the n*k
// assignments, maximising the total score. Solved as a min-cost flow by successive
// shortest paths on the experts (tokens condensed into the edges between experts), with
// Dijkstra on reduced costs; the expert prices it ends with certify optimality. docs/routers.md
// says why this method (exact, deterministic, O(n k E^2) here) and not an auction.
#pragma once
#include <cstdint>
#include <vector>

namespace moetb {

struct BalancedAssignment {
  std::vector<int64_t> experts;  // [n, k] row-major; a token's experts by descending score
  std::vector<double> prices;    // [E] duals: each token's experts are a top-k of score - price
  double total = 0.0;            // sum of the chosen scores
};

// The share of each expert: floor(n*k/E), one more for the first (n*k mod E) experts. [E]
std::vector<int64_t> balanced_capacities(int64_t n_tokens, int64_t k, int64_t n_experts);

// scores: [n_tokens, n_experts] row-major (finite). capacity: [E], summing to n*k, each in
// [0, n]. Deterministic (ties: lower token and expert ids first). Throws
// std::invalid_argument on bad sizes or capacities.
BalancedAssignment solve_balanced_assignment(const double* scores, int64_t n_tokens, int64_t n_experts, int64_t k,
                                             const std::vector<int64_t>& capacity);

}  // namespace moetb
