// Tests for metrics/assignment: the Hungarian maximum-weight assignment and the
// best-relabelling numerator of the `purity` metric (MoE Routing Testbed, arXiv 2604.07030).
// Both are checked against exhaustive brute force on many small random matrices
// (both orientations, integer/real weights, heavy ties), plus hand-made cases.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "metrics/assignment.h"

namespace {

using moetb::best_relabelled_hits;
using moetb::max_weight_assignment;

// ---- brute-force references -------------------------------------------------------------

// Best sum over all injective partial maps rows -> columns.
long double brute_assignment(const std::vector<double>& w, int n_rows, int n_cols, int row,
                             std::vector<char>& col_used) {
    if (row == n_rows) return 0;
    long double best = brute_assignment(w, n_rows, n_cols, row + 1, col_used);  // row unassigned
    for (int c = 0; c < n_cols; ++c) {
        if (col_used[c]) continue;
        col_used[c] = 1;
        const long double s = w[static_cast<std::size_t>(row) * n_cols + c] +
                              brute_assignment(w, n_rows, n_cols, row + 1, col_used);
        col_used[c] = 0;
        if (s > best) best = s;
    }
    return best;
}

long double brute_assignment(const std::vector<double>& w, int n_rows, int n_cols) {
    std::vector<char> col_used(n_cols, 0);
    return brute_assignment(w, n_rows, n_cols, 0, col_used);
}

// Best sum over maps expert -> domain-or-none with domain d used at most cap[d] times.
long double brute_hits(const std::vector<double>& counts, int n_domains, int n_experts, int expert,
                       std::vector<int>& cap) {
    if (expert == n_experts) return 0;
    long double best = brute_hits(counts, n_domains, n_experts, expert + 1, cap);  // unmapped
    for (int d = 0; d < n_domains; ++d) {
        if (cap[d] == 0) continue;
        --cap[d];
        const long double s = counts[static_cast<std::size_t>(d) * n_experts + expert] +
                              brute_hits(counts, n_domains, n_experts, expert + 1, cap);
        ++cap[d];
        if (s > best) best = s;
    }
    return best;
}

long double brute_hits(const std::vector<double>& counts, int n_domains, int n_experts,
                       std::vector<int> group_sizes) {
    return brute_hits(counts, n_domains, n_experts, 0, group_sizes);
}

// ---- helpers -----------------------------------------------------------------------------

// Checks the result is a valid (in range, injective) assignment and returns its weight.
long double checked_sum(const std::vector<int>& col, const std::vector<double>& w, int n_rows,
                        int n_cols) {
    REQUIRE(col.size() == static_cast<std::size_t>(n_rows));
    std::vector<char> seen(n_cols, 0);
    long double sum = 0;
    int assigned = 0;
    for (int r = 0; r < n_rows; ++r) {
        REQUIRE(col[r] >= -1);
        REQUIRE(col[r] < n_cols);
        if (col[r] < 0) continue;
        REQUIRE_FALSE(seen[col[r]]);
        seen[col[r]] = 1;
        ++assigned;
        sum += w[static_cast<std::size_t>(r) * n_cols + col[r]];
    }
    // Documented: the smaller side is always fully assigned.
    CHECK(assigned == (n_rows < n_cols ? n_rows : n_cols));
    return sum;
}

enum class weight_kind { small_int, binary, real, huge_int };

std::vector<double> random_weights(std::mt19937& rng, std::size_t size, weight_kind kind) {
    std::uniform_int_distribution<int> small(0, 4);  // few values: lots of ties
    std::uniform_int_distribution<int> bit(0, 1);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::uniform_int_distribution<std::int64_t> huge(0, 1'000'000'000'000LL);
    std::vector<double> w(size);
    for (double& x : w) {
        switch (kind) {
            case weight_kind::small_int: x = small(rng); break;
            case weight_kind::binary: x = bit(rng); break;
            case weight_kind::real: x = unit(rng); break;
            case weight_kind::huge_int: x = static_cast<double>(huge(rng)); break;
        }
    }
    return w;
}

const weight_kind all_kinds[] = {weight_kind::small_int, weight_kind::binary, weight_kind::real,
                                 weight_kind::huge_int};

}  // namespace

// ---- max_weight_assignment ---------------------------------------------------------------

TEST_CASE("max_weight_assignment matches brute force on random small matrices", "[metrics][purity]") {
    std::mt19937 rng(20240607u);
    int cases = 0;
    for (int n_rows = 1; n_rows <= 6; ++n_rows)
        for (int n_cols = 1; n_cols <= 6; ++n_cols)
            for (weight_kind kind : all_kinds)
                for (int rep = 0; rep < 8; ++rep) {
                    const auto w = random_weights(rng, static_cast<std::size_t>(n_rows) * n_cols, kind);
                    CAPTURE(n_rows, n_cols, static_cast<int>(kind), rep);
                    const auto col = max_weight_assignment(w, n_rows, n_cols);
                    const long double got = checked_sum(col, w, n_rows, n_cols);
                    const long double want = brute_assignment(w, n_rows, n_cols);
                    if (kind == weight_kind::real)
                        CHECK(static_cast<double>(got) == Approx(static_cast<double>(want)).epsilon(1e-12));
                    else
                        CHECK(got == want);  // integer weights: exact
                    ++cases;
                }
    CHECK(cases == 6 * 6 * 4 * 8);
}

TEST_CASE("max_weight_assignment picks the diagonal of a diagonal-dominant matrix", "[metrics][purity]") {
    const int n = 5;
    std::vector<double> w(n * n, 1.0);
    for (int i = 0; i < n; ++i) w[i * n + i] = 100.0;
    const auto col = max_weight_assignment(w, n, n);
    for (int i = 0; i < n; ++i) CHECK(col[i] == i);

    // Identity matrix: the only way to reach n.
    std::vector<double> id(n * n, 0.0);
    for (int i = 0; i < n; ++i) id[i * n + i] = 1.0;
    const auto col_id = max_weight_assignment(id, n, n);
    CHECK(checked_sum(col_id, id, n, n) == n);
    for (int i = 0; i < n; ++i) CHECK(col_id[i] == i);
}

TEST_CASE("max_weight_assignment beats the greedy choice", "[metrics][purity]") {
    // Greedy takes the 10 and is left with 0 (total 10); the optimum is 9 + 9 = 18.
    const std::vector<double> w = {10, 9,
                                   9, 0};
    const auto col = max_weight_assignment(w, 2, 2);
    CHECK(col == std::vector<int>{1, 0});
    CHECK(checked_sum(col, w, 2, 2) == 18);

    // Same trap, rectangular in both orientations.
    const std::vector<double> wide = {10, 9, 0,
                                      9, 0, 0};
    CHECK(checked_sum(max_weight_assignment(wide, 2, 3), wide, 2, 3) == 18);
    const std::vector<double> tall = {10, 9,
                                      9, 0,
                                      0, 0};
    CHECK(checked_sum(max_weight_assignment(tall, 3, 2), tall, 3, 2) == 18);
}

TEST_CASE("max_weight_assignment handles degenerate shapes and bad input", "[metrics][purity]") {
    CHECK(max_weight_assignment({}, 0, 0).empty());
    CHECK(max_weight_assignment({}, 0, 4).empty());
    CHECK(max_weight_assignment({}, 3, 0) == std::vector<int>{-1, -1, -1});

    const std::vector<double> row = {1, 7, 3};
    CHECK(max_weight_assignment(row, 1, 3) == std::vector<int>{1});
    const std::vector<double> column = {1, 7, 3};
    CHECK(max_weight_assignment(column, 3, 1) == std::vector<int>{-1, 0, -1});

    CHECK_THROWS_AS(max_weight_assignment({1, 2, 3}, 2, 2), std::invalid_argument);
    CHECK_THROWS_AS(max_weight_assignment({}, -1, 0), std::invalid_argument);
    CHECK_THROWS_AS(max_weight_assignment({1, -2}, 1, 2), std::invalid_argument);
}

// ---- best_relabelled_hits ----------------------------------------------------------------

TEST_CASE("best_relabelled_hits matches brute force on random small problems", "[metrics][purity]") {
    std::mt19937 rng(7001u);
    std::uniform_int_distribution<int> group(0, 3);
    for (int n_domains = 1; n_domains <= 4; ++n_domains)
        for (int n_experts = 1; n_experts <= 6; ++n_experts)
            for (weight_kind kind : all_kinds)
                for (int rep = 0; rep < 8; ++rep) {
                    const auto counts =
                        random_weights(rng, static_cast<std::size_t>(n_domains) * n_experts, kind);
                    std::vector<int> sizes(n_domains);
                    for (int& s : sizes) s = group(rng);
                    CAPTURE(n_domains, n_experts, sizes, static_cast<int>(kind), rep);
                    const double got = best_relabelled_hits(counts, n_domains, n_experts, sizes);
                    const long double want = brute_hits(counts, n_domains, n_experts, sizes);
                    if (kind == weight_kind::real)
                        CHECK(got == Approx(static_cast<double>(want)).epsilon(1e-12));
                    else
                        CHECK(got == static_cast<double>(want));
                }
}

TEST_CASE("best_relabelled_hits with unit groups equals the plain assignment", "[metrics][purity]") {
    std::mt19937 rng(99u);
    for (int n = 1; n <= 6; ++n)
        for (int m = 1; m <= 6; ++m) {
            const auto counts = random_weights(rng, static_cast<std::size_t>(n) * m, weight_kind::small_int);
            const std::vector<int> ones(n, 1);
            CAPTURE(n, m);
            // Domains as rows, experts as columns, each domain owning one expert.
            CHECK(best_relabelled_hits(counts, n, m, ones) ==
                  static_cast<double>(checked_sum(max_weight_assignment(counts, n, m), counts, n, m)));
        }
}

TEST_CASE("best_relabelled_hits on hand-made cases", "[metrics][purity]") {
    SECTION("identity routing: each expert serves its own domain") {
        const std::vector<double> counts = {50, 0, 0,
                                            0, 40, 0,
                                            0, 0, 30};
        CHECK(best_relabelled_hits(counts, 3, 3, {1, 1, 1}) == 120);
    }
    SECTION("greedy relabelling is wrong") {
        // Domain 0 has one slot. Greedy gives it expert 0 (10) and domain 1 gets expert 1 (0):
        // 10. Optimal: domain 0 <- expert 1 (9), domain 1 <- expert 0 (9): 18.
        const std::vector<double> counts = {10, 9,
                                            9, 0};
        CHECK(best_relabelled_hits(counts, 2, 2, {1, 1}) == 18);
    }
    SECTION("capacities: a domain may own several experts") {
        // Domain 0 is the heaviest for all three experts but may own only two of them.
        const std::vector<double> counts = {5, 5, 5,
                                            1, 1, 4};
        CHECK(best_relabelled_hits(counts, 2, 3, {2, 1}) == 14);
        CHECK(best_relabelled_hits(counts, 2, 3, {3, 0}) == 15);
        CHECK(best_relabelled_hits(counts, 2, 3, {0, 3}) == 6);
        CHECK(best_relabelled_hits(counts, 2, 3, {0, 0}) == 0);
        CHECK(best_relabelled_hits(counts, 2, 3, {10, 10}) == 15);  // capacity beyond n_experts
    }
    SECTION("large integer counts are summed exactly") {
        // Counts ~1e12 differing by 1-3: an off-by-rounding result would show up here.
        // Optimum: domain 0 <- experts 0 and 2 (big + 3), domain 1 <- expert 1 (big).
        const double big = 1e12;
        const std::vector<double> counts = {big, big - 1, 3,
                                            big - 2, big, 1};
        CHECK(best_relabelled_hits(counts, 2, 3, {2, 1}) == 2 * big + 3);
        CHECK(best_relabelled_hits(counts, 2, 3, {1, 1}) == 2 * big);
    }
    SECTION("empty inputs") {
        CHECK(best_relabelled_hits({}, 0, 0, {}) == 0);
        CHECK(best_relabelled_hits({}, 0, 5, {}) == 0);
        CHECK(best_relabelled_hits({}, 3, 0, {1, 2, 3}) == 0);
    }
    SECTION("bad input") {
        CHECK_THROWS_AS(best_relabelled_hits({1, 2}, 1, 2, {1, 1}), std::invalid_argument);
        CHECK_THROWS_AS(best_relabelled_hits({1, 2}, 1, 2, {-1}), std::invalid_argument);
        CHECK_THROWS_AS(best_relabelled_hits({1, 2, 3}, 1, 2, {1}), std::invalid_argument);
    }
}
