// Internal to moetb_reports: the three report renderers that render_report (report.cpp)
// dispatches to, and the helpers they share (names from paths, reference runs' summaries).
// Each returns the whole HTML document; bad input throws with one line.
#pragma once
#include <string>
#include <vector>

#include "reports/metric_table.h"
#include "reports/report.h"

namespace moetb::reports {

std::string render_run(const std::string& dir, const ReportOptions& options);
std::string render_sweep(const std::string& dir, const ReportOptions& options);
std::string render_trace(const std::string& path, const ReportOptions& options);

// The last component of a path, ignoring a trailing slash ("out/demo/topk/" -> "topk").
std::string base_name(const std::string& path);

// The metric summary of a run directory: eval.json's, else the last evaluation line of
// train_log.jsonl; null when neither has one.
nlohmann::json run_summary(const std::string& run_dir);

// Reference columns: the given run directories (a run without a summary is an error), else
// when `auto_dir` is set, its sibling runs named oracle and random that have a summary.
std::vector<Reference> load_references(const std::vector<std::string>& given, const std::string& auto_dir);

// The optional lead section of a demo ("what to look for"), trusted HTML; "" when empty.
std::string intro_section(const ReportOptions& options);

}  // namespace moetb::reports
