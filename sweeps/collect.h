// `moetb sweep collect`: results.csv, summary.csv, summary.md and SVG plots of a sweep.
// Plots: each chosen metric against each axis (one line per combination of the other
// axes, e.g. per router; error bars are 95% t intervals over seeds), and utilization
// against Routing Specialization with one point per run (arXiv 2604.07030's trade-off).
#pragma once
#include <string>
#include <vector>

#include "sweeps/results_table.h"

namespace moetb::sweeps {

struct CollectOptions {
  std::vector<std::string> metrics;  // columns for summary.md and plots (empty: the spec's, else defaults)
  std::string out;                   // output folder (empty: the sweep folder)
};

struct CollectReport {
  std::size_t ok = 0, failed = 0, pending = 0;
  std::vector<std::string> files;  // written, relative to the output folder
};

CollectReport collect(const SweepDir& dir, const CollectOptions& options);

// The plots as (file name, SVG text); file names are "plots/<metric>-vs-<axis>.svg".
std::vector<std::pair<std::string, std::string>> sweep_plots(const ResultsTable& table, const std::vector<GroupSummary>& groups,
                                                             const std::vector<std::string>& metrics);
// A readable axis title for a results column ("rs" -> "Routing Specialization (RS)").
std::string column_title(const std::string& column);

}  // namespace moetb::sweeps
