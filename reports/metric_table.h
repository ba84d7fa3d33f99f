// The metric tables of run and trace reports, from metrics JSON ("moetb-metrics/1", as in
// eval.json and `moetb metrics --json`): the summary with a one-sentence meaning per metric
// (docs/metrics.md) beside reference runs (oracle, random), the per-layer routing and load
// tables, and the per-domain view. Every value cell carries the exact number in data-value.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moetb::reports {

struct Reference {
  std::string name;       // column title, e.g. "oracle"
  nlohmann::json summary; // its metrics summary (null: not available)
  std::string dir;        // its run directory (for its curves and trace)
};

// <table id="metric-table">: one row per metric present (tr data-key="rs", "load.max_vio", ...),
// columns metric, value, one per reference, meaning.
std::string metric_table(const nlohmann::json& summary, const std::vector<Reference>& references,
                         const std::string& value_title);
// <table id="layer-table">: routing metrics per layer (the "layers" array).
std::string layer_table(const nlohmann::json& layers);
// <table id="load-table">: load metrics per layer.
std::string load_table(const nlohmann::json& layers);
// <table id="domain-table">: per domain (in the trace's order), its tokens and mean RS_d, from a
// whole metrics document ("per_domain", "trace.domains"); "" without per_domain.
std::string domain_table(const nlohmann::json& metrics);

// A summary value by dotted path ("load.max_vio", "ne.10"); null when absent.
nlohmann::json at_path(const nlohmann::json& j, const std::string& dotted);

}  // namespace moetb::reports
