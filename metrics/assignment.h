// Maximum-weight rectangular assignment (Hungarian / Kuhn-Munkres) for the moetb metrics.
// The `purity` metric compares a router against a reference router (MoE Routing Testbed,
// arXiv 2604.07030); expert ids are arbitrary labels, so purity is scored under the best
// relabelling of experts to domains, which is an assignment problem solved here.
// Torch-free; part of moetb_metrics.
#pragma once

#include <vector>

namespace moetb {

// Maximum-weight assignment of rows to columns: each row to at most one column, each
// column to at most one row. weight: row-major [n_rows * n_cols], finite and non-negative.
// Returns, for each row, the chosen column or -1. Maximises the sum of weight[r, col[r]]
// over assigned rows. Works for n_rows <= n_cols and n_rows > n_cols; min(n_rows, n_cols)
// rows are always assigned (zero-weight pairs included, which never lowers the sum).
// Throws std::invalid_argument on a negative size, a size mismatch or a bad weight.
std::vector<int> max_weight_assignment(const std::vector<double>& weight, int n_rows, int n_cols);

// Best-relabelling purity numerator: the maximum, over maps that give each expert to at
// most one domain and domain d at most group_sizes[d] experts, of the sum over experts e
// mapped to domain d of counts[d, e]. counts: row-major [n_domains * n_experts], finite and
// non-negative (token counts, integers up to ~1e12 are summed exactly). group_sizes:
// [n_domains], non-negative. Zero domains or experts give 0.
double best_relabelled_hits(const std::vector<double>& counts, int n_domains, int n_experts,
                            const std::vector<int>& group_sizes);

}  // namespace moetb
