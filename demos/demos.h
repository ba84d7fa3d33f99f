// The demo catalogue behind `moetb demo NAME`: each demo is a small embedded sweep spec
// (two or three settings over 5 seeds, sized for 2-3 minutes on two cores) plus its texts: a
// one-line summary, a label per setting, and a builder that turns the collected results into
// "what to look for" with the measured numbers, stating only effects larger than the seed
// spread (claims.h; plain text for the terminal, HTML for the report's intro). Torch-free. docs/tutorial.md walks through the demos in order;
// demos/run_demo.h runs one.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "demos/claims.h"
#include "sweeps/results_table.h"

namespace moetb::demos {

using sweeps::ResultRow;
using sweeps::ResultsTable;

struct Demo {
  std::string name;     // "collapse", ... (the command's argument)
  std::string summary;  // one line, for `moetb demo` with no name
  std::string setup;    // one paragraph: what the runs compare and how
  std::string spec;     // the sweep spec (TOML, docs/sweeps.md)
  std::vector<std::string> run_labels;  // one per setting of the spec (its axes), in plan order
  std::vector<std::string> columns;     // columns of the printed comparison table
  // Builds the findings from the runs, by setting (run_labels) and seed.
  DemoFindings (*findings)(const DemoRuns& runs) = nullptr;
};

// Every demo, in the order of the tutorial.
const std::vector<Demo>& demo_catalogue();
// The demo called `name`; throws std::invalid_argument with one line listing the names.
const Demo& find_demo(const std::string& name);

// Figures of a finished run that result.json does not hold, read from its training log
// (RUN/train/train_log.jsonl): the means over the last `tail` optimizer steps of
//   train.max_vio   the step's max load violation (E * busiest expert's share - 1, worst layer),
//   train.min_load  the least-used expert's load relative to a fair share (E * min share, worst layer),
//   train.dropped   the share of assignments dropped by capacity (mean over layers).
// Missing or unreadable logs give an empty map.
std::map<std::string, double> train_log_extras(const std::filesystem::path& train_log, int tail = 10);

// The result rows of the demo's runs by setting (run_labels) and seed (nullptr: no row).
DemoRuns demo_runs(const Demo& demo, const ResultsTable& table);
DemoFindings demo_findings(const Demo& demo, const ResultsTable& table);

// Each result row's label ("dropless, seed 2"; rows of runs the demo does not plan get their axis values).
std::vector<std::string> row_labels(const Demo& demo, const ResultsTable& table);

// The comparison table (fixed-width text): one row per setting, mean ± sd over seeds of the demo's columns.
std::string demo_table(const Demo& demo, const ResultsTable& table);

// The findings as HTML for the report's intro (summary, setup, what to look for, meaning),
// with links to the runs' own reports as (label, relative href) pairs.
std::string demo_intro_html(const Demo& demo, const DemoFindings& findings,
                            const std::vector<std::pair<std::string, std::string>>& run_reports = {});
// A file-name-safe form of a run label ("Switch loss (coef 0.01)" -> "switch-loss-coef-0-01").
std::string demo_slug(const std::string& label);
// The findings as terminal text, each paragraph wrapped at `width` columns.
std::string demo_findings_text(const DemoFindings& findings, std::size_t width = 92);

// A readable column name for the table ("load.max_vio" -> "max_vio"), and the help line per column.
std::string demo_column_help(const std::string& column);

}  // namespace moetb::demos
