// The results of a sweep as a table (one row per active run: its axes, seed, status and
// every numeric result: validation loss overall and per domain, floor, gap closed, the
// metric summary flattened to dotted names, the dropless evaluation's as dropless.*, wall time) and its aggregation over seeds:
// mean, sample sd and a 95% t interval per group of runs that share their axis values.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "sweeps/stats.h"
#include "sweeps/sweep_dir.h"

namespace moetb::sweeps {

struct ResultRow {
  PlanEntry entry;
  std::string status;  // ok, failed, pending
  int exit_code = -1;  // -1 when pending
  std::string router;  // from the result, else the router.name axis, else ""
  std::string error;
  std::map<std::string, double> values;  // column -> value (absent = missing)
};

struct ResultsTable {
  std::vector<std::string> axis_keys;
  std::string seed_key;
  std::vector<std::string> columns;  // numeric columns, first-seen order
  std::vector<ResultRow> rows;
};

struct GroupSummary {
  std::vector<std::string> axis_values;  // one per axis key
  std::string router;
  std::size_t runs = 0, ok = 0;
  std::map<std::string, SampleSummary> stats;  // column -> over the group's ok runs
};

ResultsTable load_results(const SweepDir& dir, const SweepPlan& plan);
// Rows from result documents (result.json contents; pending rows have none).
ResultsTable make_table(const SweepPlan& plan, const std::vector<const nlohmann::json*>& results);
std::vector<GroupSummary> summarize_groups(const ResultsTable& table);

std::string results_csv(const ResultsTable& table);
std::string summary_csv(const ResultsTable& table, const std::vector<GroupSummary>& groups);
// A Markdown table of the chosen columns as "mean ± ci95" with n, then notes and plots.
std::string summary_markdown(const ResultsTable& table, const std::vector<GroupSummary>& groups,
                             const std::vector<std::string>& columns, const std::vector<std::string>& plots);

std::string csv_field(const std::string& s);
std::string format_number(double x);  // shortest round-trip text, "" for NaN
// The number format of every Markdown/terminal table (summary.md, paired differences, demos):
// `digits` significant digits (whole numbers from 10^digits up), "" for NaN; signed_ adds '+'.
std::string table_number(double x, int digits = 3, bool signed_ = false);

}  // namespace moetb::sweeps
