// spearman and knockout_json (expert_importance.h): average-rank Spearman correlation and
// the moetb-knockout/1 body (per-expert routing shares, specialization, loss increases and
// their concentration). Routing vs causal importance as in arXiv 2606.10703.
#include "metrics/expert_importance.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moetb {

namespace {

std::vector<double> average_ranks(const std::vector<double>& v) {
  std::vector<std::size_t> order(v.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  std::vector<double> rank(v.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double r = 0.5 * static_cast<double>(i + j) + 1.0;  // ties share their mean rank
    for (std::size_t t = i; t <= j; ++t) rank[order[t]] = r;
    i = j + 1;
  }
  return rank;
}

nlohmann::json opt(const std::optional<double>& x) { return x ? nlohmann::json(*x) : nlohmann::json(nullptr); }

}  // namespace

std::optional<double> spearman(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size() || x.size() < 3) return std::nullopt;
  const std::vector<double> rx = average_ranks(x), ry = average_ranks(y);
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(rx.begin(), rx.end(), 0.0) / n, my = std::accumulate(ry.begin(), ry.end(), 0.0) / n;
  double sxy = 0.0, sxx = 0.0, syy = 0.0;
  for (std::size_t i = 0; i < rx.size(); ++i) {
    sxy += (rx[i] - mx) * (ry[i] - my);
    sxx += (rx[i] - mx) * (rx[i] - mx);
    syy += (ry[i] - my) * (ry[i] - my);
  }
  if (sxx <= 0.0 || syy <= 0.0) return std::nullopt;
  return sxy / std::sqrt(sxx * syy);
}

nlohmann::json knockout_json(const std::vector<KnockoutLayer>& layers, const std::vector<std::string>& domains,
                             const std::vector<double>& base_loss_bits, const std::vector<int64_t>& domain_tokens) {
  const std::size_t n_domains = domains.size();
  int64_t all_tokens = 0;
  for (int64_t t : domain_tokens) all_tokens += t;
  nlohmann::json out;
  out["domains"] = domains;
  for (std::size_t d = 0; d < n_domains; ++d)
    out["base_loss_bits"][domains[d]] = std::isfinite(base_loss_bits[d]) ? nlohmann::json(base_loss_bits[d]) : nlohmann::json(nullptr);
  std::vector<double> cell_share, cell_increase, spec, conc;
  out["layers"] = nlohmann::json::array();
  for (const KnockoutLayer& kl : layers) {
    const CountMatrix& c = kl.counts;
    int64_t layer_load = 0;
    for (int d = 0; d < c.n_domains; ++d)
      for (int64_t e = 0; e < c.n_experts; ++e) layer_load += c.at(d, e);
    nlohmann::json experts = nlohmann::json::array();
    for (int64_t e = 0; e < c.n_experts; ++e) {
      const auto ei = static_cast<std::size_t>(e);
      int64_t load = 0, top = -1;
      int top_d = -1;
      for (int d = 0; d < c.n_domains; ++d) {
        load += c.at(d, e);
        if (c.at(d, e) > top) top = c.at(d, e), top_d = d;
      }
      nlohmann::json j;
      j["expert"] = e;
      j["load_share"] = layer_load > 0 ? static_cast<double>(load) / static_cast<double>(layer_load) : 0.0;
      const std::optional<double> s =
          load > 0 ? std::optional<double>(static_cast<double>(top) / static_cast<double>(load)) : std::nullopt;
      j["specialization"] = opt(s);
      j["top_domain"] = load > 0 ? nlohmann::json(domains[static_cast<std::size_t>(top_d)]) : nlohmann::json(nullptr);
      double pos_sum = 0.0, pos_max = 0.0, weighted = 0.0;
      for (std::size_t d = 0; d < n_domains; ++d) {
        const double inc = kl.loss_increase[ei][d];
        const int64_t n_d = static_cast<int>(d) < c.n_domains ? c.row_sum(static_cast<int>(d)) : 0;
        const double p = n_d > 0 ? static_cast<double>(c.at(static_cast<int>(d), e)) / static_cast<double>(n_d) : 0.0;
        j["p_d"][domains[d]] = p;
        const bool evaluated = domain_tokens[d] > 0 && std::isfinite(inc);
        j["loss_increase_bits"][domains[d]] = evaluated ? nlohmann::json(inc) : nlohmann::json(nullptr);
        if (evaluated) {
          pos_sum += std::max(0.0, inc);
          pos_max = std::max(pos_max, inc);
          weighted += inc * static_cast<double>(domain_tokens[d]);
          cell_share.push_back(p);
          cell_increase.push_back(inc);
        }
      }
      j["loss_increase_all_bits"] = all_tokens > 0 ? weighted / static_cast<double>(all_tokens) : 0.0;
      const std::optional<double> k = pos_sum > 0.0 ? std::optional<double>(pos_max / pos_sum) : std::nullopt;
      j["knockout_concentration"] = opt(k);
      if (s && k) {
        spec.push_back(*s);
        conc.push_back(*k);
      }
      experts.push_back(j);
    }
    out["layers"].push_back({{"layer", kl.layer}, {"block", kl.block}, {"experts", experts}});
  }
  out["correlation"] = {
      {"cell", {{"spearman", opt(spearman(cell_share, cell_increase))}, {"n", cell_share.size()},
                {"what", "Spearman over (layer, expert, domain) of p_d(e) vs the domain's loss increase"}}},
      {"expert", {{"spearman", opt(spearman(spec, conc))}, {"n", spec.size()},
                  {"what", "Spearman over (layer, expert) of specialization vs knockout concentration"}}}};
  return out;
}

}  // namespace moetb
