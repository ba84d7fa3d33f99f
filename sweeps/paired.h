// Paired-by-seed statistics for sweeps: when two groups of runs differ in one axis only (say
// router.balance_scope) and were trained with the same seeds, the seed-by-seed differences
// b - a cancel what the seed shares (data order, initialization), so their mean and its 95%
// Student's t interval say whether the axis matters beyond seed noise; the count of seeds whose
// difference has the sign of the mean says how consistent it is. `sweep collect` writes these
// as paired.csv and a section of summary.md; the demos' claim builder and `moetb compare` reuse
// paired_difference. Torch-free.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sweeps/results_table.h"

namespace moetb::sweeps {

struct PairedDifference {
  std::size_t n = 0;  // pairs (seeds present in both groups)
  double mean = 0;    // mean of b - a; NaN when n == 0
  double sd = 0;      // sample sd of the differences; NaN when n < 2
  double ci95 = 0;    // half-width of the 95% t interval of the mean; NaN when n < 2
  double lo = 0, hi = 0;  // mean -+ ci95 (NaN when n < 2)
  std::size_t b_higher = 0, a_higher = 0, ties = 0;
  // The 95% interval lies wholly above or below zero (needs n >= 2).
  bool excludes_zero() const;
  // Seeds whose difference has the sign of the mean (ties never count).
  std::size_t agree() const;
};

// Differences b[i] - a[i] of aligned pairs (same length; the caller pairs them by seed and drops
// pairs with a missing value). Throws std::invalid_argument when the lengths differ.
PairedDifference paired_difference(const std::vector<double>& a, const std::vector<double>& b);

// "+0.2 [+0.012, +0.39], 4 of 5 seeds" (signed, 3 significant digits); "n = 1: no interval" etc.
std::string paired_text(const PairedDifference& d);

// Two groups of a sweep that differ in exactly one axis, with their paired differences.
struct PairedComparison {
  std::size_t axis = 0;             // index into ResultsTable::axis_keys
  std::size_t group_a = 0, group_b = 0;  // indices into the groups; differences are b - a
  std::string context;              // the other axes' values ("router=topk, balance_coef=0.01"), "" if none
  std::vector<std::pair<std::string, PairedDifference>> diffs;  // per column, in the table's column order
  const PairedDifference* find(const std::string& column) const;
};

// Every pair of groups that differ in exactly one axis (both set there), a before b in the
// axis's first-seen order; pairs of runs are matched by seed, per column.
std::vector<PairedComparison> paired_comparisons(const ResultsTable& table, const std::vector<GroupSummary>& groups);

// The label "axis: B - A" of a comparison, e.g. "balance_scope: global_batch - micro_batch".
std::string comparison_label(const ResultsTable& table, const std::vector<GroupSummary>& groups, const PairedComparison& c);

// paired.csv: one row per comparison and column (axis, context, a, b, n, mean, sd, ci95, lo, hi, counts).
std::string paired_csv(const ResultsTable& table, const std::vector<GroupSummary>& groups, const std::vector<PairedComparison>& comps);
// The summary.md section for the chosen columns ("" when there is nothing to pair).
std::string paired_markdown(const ResultsTable& table, const std::vector<GroupSummary>& groups,
                            const std::vector<PairedComparison>& comps, const std::vector<std::string>& columns);
// One chart per chosen column ("plots/paired-<column>.svg"): each comparison's mean difference
// with its 95% interval bar, and a dashed zero line; the title says n.
std::vector<std::pair<std::string, std::string>> paired_plots(const ResultsTable& table, const std::vector<GroupSummary>& groups,
                                                              const std::vector<PairedComparison>& comps,
                                                              const std::vector<std::string>& columns);

}  // namespace moetb::sweeps
