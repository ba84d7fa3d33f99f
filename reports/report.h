// Self-contained HTML reports (`moetb report`): one file with every style and chart
// inline (SVG), no scripts fetched, no network, readable offline and attachable to an
// email. PATH may be a training run directory, a sweep directory or a routing trace.
// Follows the MoE Routing Testbed (arXiv 2604.07030) and DBES (arXiv 2605.18498) metrics.
#pragma once
#include <string>
#include <vector>

namespace moetb::reports {

struct ReportOptions {
  std::string title;                    // empty: derived from the path
  std::string intro_html;               // optional lead section (a demo's "what to look for"), trusted HTML
  std::vector<std::string> references;  // run directories shown beside a run (e.g. its oracle and random runs); NAME=DIR names one
  std::string name;                     // this run's name in tables and overlays (empty: "this run")
};

// What PATH is: "run" (has eval.json or train_log.jsonl), "sweep" (has sweep.json),
// "trace" (a .safetensors file or a folder of trace shards); throws a one-line error otherwise.
std::string detect_kind(const std::string& path);

// Renders the report; throws std::invalid_argument / std::runtime_error with one line on bad input.
std::string render_report(const std::string& path, const ReportOptions& options);

}  // namespace moetb::reports
