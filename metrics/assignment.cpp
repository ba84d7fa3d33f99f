// Maximum-weight rectangular assignment (Hungarian / Kuhn-Munkres, O(n^2 m) potentials form)
// and the best-relabelling numerator of the `purity` metric: experts are matched to domains
// of a reference router (MoE Routing Testbed, arXiv 2604.07030) so that purity does not
// depend on how experts happen to be numbered.
#include "metrics/assignment.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace moetb {
namespace {

// Potentials and reduced costs are kept in long double: counts up to ~1e12 and their sums
// stay exact in its 64-bit mantissa, where double would start rounding sums of many counts.
using real = long double;

void check_sizes(std::size_t size, int n_rows, int n_cols, const char* what) {
    if (n_rows < 0 || n_cols < 0)
        throw std::invalid_argument(std::string(what) + ": negative size");
    if (size != static_cast<std::size_t>(n_rows) * static_cast<std::size_t>(n_cols))
        throw std::invalid_argument(std::string(what) + ": size does not match rows * cols");
}

void check_weights(const std::vector<double>& weight, const char* what) {
    for (double w : weight)
        if (!std::isfinite(w) || w < 0.0)
            throw std::invalid_argument(std::string(what) + ": weights must be finite and >= 0");
}

// Min-cost assignment of every row (n <= m) for cost(i, j), 0-based. Shortest augmenting
// paths with row/column potentials (the e-maxx formulation, 1-based inside, column 0 is a
// sentinel). Each row adds one column to `used` per inner step, so it terminates after at
// most m steps even if floating-point ties are broken arbitrarily.
template <class Cost>
std::vector<int> min_cost_rows(int n, int m, Cost cost) {
    const real inf = std::numeric_limits<real>::infinity();
    std::vector<real> u(n + 1, 0), v(m + 1, 0);
    std::vector<int> p(m + 1, 0), way(m + 1, 0);  // p[j]: row (1-based) holding column j
    for (int i = 1; i <= n; ++i) {
        p[0] = i;
        int j0 = 0;
        std::vector<real> minv(m + 1, inf);
        std::vector<char> used(m + 1, 0);
        do {
            used[j0] = 1;
            const int i0 = p[j0];
            real delta = inf;
            int j1 = 0;
            for (int j = 1; j <= m; ++j) {
                if (used[j]) continue;
                const real cur = cost(i0 - 1, j - 1) - u[i0] - v[j];
                if (cur < minv[j]) {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if (minv[j] < delta) {
                    delta = minv[j];
                    j1 = j;
                }
            }
            for (int j = 0; j <= m; ++j) {
                if (used[j]) {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
        } while (p[j0] != 0);
        // Flip the augmenting path back to the root.
        do {
            const int j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0 != 0);
    }
    std::vector<int> col(n, -1);
    for (int j = 1; j <= m; ++j)
        if (p[j] != 0) col[p[j] - 1] = j - 1;
    return col;
}

}  // namespace

std::vector<int> max_weight_assignment(const std::vector<double>& weight, int n_rows, int n_cols) {
    check_sizes(weight.size(), n_rows, n_cols, "max_weight_assignment");
    check_weights(weight, "max_weight_assignment");
    std::vector<int> col(n_rows, -1);
    if (n_rows == 0 || n_cols == 0) return col;

    // With non-negative weights some maximum assignment covers the smaller side completely,
    // so a min-cost full assignment of the smaller side on cost = -weight is optimal.
    auto w = [&](int r, int c) { return static_cast<real>(weight[static_cast<std::size_t>(r) * n_cols + c]); };
    if (n_rows <= n_cols) {
        return min_cost_rows(n_rows, n_cols, [&](int r, int c) { return -w(r, c); });
    }
    // More rows than columns: solve the transpose (columns as rows) and invert the map.
    const std::vector<int> row_of_col =
        min_cost_rows(n_cols, n_rows, [&](int c, int r) { return -w(r, c); });
    for (int c = 0; c < n_cols; ++c)
        if (row_of_col[c] >= 0) col[row_of_col[c]] = c;
    return col;
}

double best_relabelled_hits(const std::vector<double>& counts, int n_domains, int n_experts,
                            const std::vector<int>& group_sizes) {
    check_sizes(counts.size(), n_domains, n_experts, "best_relabelled_hits");
    check_weights(counts, "best_relabelled_hits");
    if (group_sizes.size() != static_cast<std::size_t>(n_domains))
        throw std::invalid_argument("best_relabelled_hits: group_sizes must have n_domains entries");

    // Domain d with capacity k becomes k identical columns ("slots"); an expert can take
    // at most one slot, so the capacity constraint is exactly column-injectivity.
    // Slots beyond n_experts can never be filled, so capping keeps the matrix small.
    std::vector<int> slot_domain;
    for (int d = 0; d < n_domains; ++d) {
        if (group_sizes[d] < 0) throw std::invalid_argument("best_relabelled_hits: negative group size");
        const int k = group_sizes[d] < n_experts ? group_sizes[d] : n_experts;
        for (int s = 0; s < k; ++s) slot_domain.push_back(d);
    }
    const int n_slots = static_cast<int>(slot_domain.size());
    if (n_experts == 0 || n_slots == 0) return 0.0;

    auto count = [&](int d, int e) { return counts[static_cast<std::size_t>(d) * n_experts + e]; };
    std::vector<double> weight(static_cast<std::size_t>(n_experts) * n_slots);
    for (int e = 0; e < n_experts; ++e)
        for (int s = 0; s < n_slots; ++s)
            weight[static_cast<std::size_t>(e) * n_slots + s] = count(slot_domain[s], e);

    const std::vector<int> slot = max_weight_assignment(weight, n_experts, n_slots);
    // Sum the original counts (not potentials) so integer counts give an exact result.
    real hits = 0;
    for (int e = 0; e < n_experts; ++e)
        if (slot[e] >= 0) hits += count(slot_domain[slot[e]], e);
    return static_cast<double>(hits);
}

}  // namespace moetb
