// Expert paths: sort a domain's experts by p_d(e), keep until the cumulative share >= tau.
#include "metrics/expert_paths.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>
#include <stdexcept>

namespace moetb {

std::vector<int> expert_path(const CountMatrix& counts, int domain, double tau) {
  if (!(tau > 0.0 && tau <= 1.0)) throw std::invalid_argument("tau must lie in (0, 1]");
  std::vector<int> path;
  if (domain >= counts.n_domains) return path;
  const int64_t n_d = counts.row_sum(domain);
  if (n_d == 0) return path;
  std::vector<int> order(static_cast<std::size_t>(counts.n_experts));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return counts.at(domain, a) > counts.at(domain, b); });
  // Compare in integer counts (cum >= tau * n_d) so that exact shares are not lost to rounding.
  const double target = tau * static_cast<double>(n_d);
  int64_t cumulative = 0;
  for (int e : order) {
    if (counts.at(domain, e) == 0) break;
    path.push_back(e);
    cumulative += counts.at(domain, e);
    if (static_cast<double>(cumulative) >= target * (1.0 - 1e-12)) break;
  }
  return path;
}

nlohmann::json expert_paths_json(const TraceMetrics& metrics, double tau) {
  nlohmann::json out = nlohmann::json::object();
  for (std::size_t d = 0; d < metrics.domains.size(); ++d) {
    nlohmann::json per_layer = nlohmann::json::array();
    for (const auto& lm : metrics.layers) per_layer.push_back(expert_path(lm.stats.counts, static_cast<int>(d), tau));
    out[metrics.domains[d]] = per_layer;
  }
  return out;
}

}  // namespace moetb
