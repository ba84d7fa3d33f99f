// Validation framework: runs the planted scenarios and renders the table / JSON.
#include "oracle/validation.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "metrics/trace_metrics.h"

namespace moetb {

nlohmann::json metrics_json_of(const ShardSource& trace) {
  MetricsOptions options;
  options.threads = 1;
  return metrics_to_json(compute_trace_metrics(trace, options));
}

double max_metric_difference(const nlohmann::json& a, const nlohmann::json& b, const std::vector<std::string>& skip) {
  const std::map<std::string, nlohmann::json> fa = flatten_json(a), fb = flatten_json(b);
  auto skipped = [&](const std::string& path) {
    const std::string dotted = "." + path;  // so ".key." also matches a top-level key
    for (const auto& s : skip)
      if (dotted.find(s) != std::string::npos) return true;
    return false;
  };
  double worst = 0;
  for (const auto& [path, va] : fa) {
    if (skipped(path)) continue;
    auto it = fb.find(path);
    if (it == fb.end()) return std::numeric_limits<double>::infinity();
    const nlohmann::json& vb = it->second;
    if (va.is_number() != vb.is_number() || va.is_null() != vb.is_null()) return std::numeric_limits<double>::infinity();
    if (va.is_number()) worst = std::max(worst, std::fabs(va.get<double>() - vb.get<double>()));
    else if (va != vb) return std::numeric_limits<double>::infinity();
  }
  for (const auto& [path, vb] : fb)
    if (!skipped(path) && !fa.count(path)) return std::numeric_limits<double>::infinity();
  return worst;
}

std::vector<ValidationCheck> run_validation(const std::vector<std::string>& only) {
  const auto& all = validation_scenarios();
  for (const auto& name : only) {
    bool known = false;
    for (const auto& s : all) known |= s.name == name;
    if (!known) throw std::invalid_argument("unknown scenario '" + name + "' (see moetb validate --list)");
  }
  std::vector<ValidationCheck> checks;
  for (const auto& s : all) {
    if (!only.empty() && std::find(only.begin(), only.end(), s.name) == only.end()) continue;
    for (auto& c : s.run()) checks.push_back(std::move(c));
  }
  return checks;
}

std::string validation_table(const std::vector<ValidationCheck>& checks) {
  std::ostringstream out;
  char line[512];
  std::snprintf(line, sizeof line, "%-28s %-28s %-40s %12s  %s\n", "scenario", "metric", "expected", "measured", "result");
  out << line;
  int failed = 0;
  for (const auto& c : checks) {
    char measured[32] = "null";
    if (c.measured) std::snprintf(measured, sizeof measured, "%.6g", *c.measured);
    std::snprintf(line, sizeof line, "%-28s %-28s %-40s %12s  %s\n", c.scenario.c_str(), c.metric.c_str(),
                  c.expected.c_str(), measured, c.pass ? "pass" : "FAIL");
    out << line;
    failed += !c.pass;
  }
  out << "\n" << (checks.size() - failed) << " passed, " << failed << " failed\n";
  return out.str();
}

nlohmann::json validation_json(const std::vector<ValidationCheck>& checks) {
  nlohmann::json list = nlohmann::json::array();
  int failed = 0;
  for (const auto& c : checks) {
    list.push_back({{"scenario", c.scenario}, {"metric", c.metric}, {"expected", c.expected},
                    {"measured", c.measured ? nlohmann::json(*c.measured) : nlohmann::json(nullptr)},
                    {"pass", c.pass}});
    failed += !c.pass;
  }
  return {{"format", "moetb-validate/1"}, {"checks", list},
          {"passed", static_cast<int>(checks.size()) - failed}, {"failed", failed}};
}

}  // namespace moetb
