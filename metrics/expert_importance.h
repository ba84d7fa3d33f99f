// Routing-based expert specialization next to causal (knockout) importance, for
// `moetb knockout` (docs/finetune.md): does a routing statistic predict what removing an
// expert does? (arXiv 2606.10703 reports that it often does not.) Definitions:
// - p_d(e) = C[d,e] / n_d, domain d's routing share of expert e (metrics.md);
// - specialization(e) = max_d C[d,e] / sum_d C[d,e]: the share of e's load from its top domain;
// - knockout concentration(e) = max_d D+(e,d) / sum_d D+(e,d), D+ = max(0, loss increase).
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "metrics/routing_metrics.h"

namespace moetb {

// Spearman rank correlation (average ranks for ties); nullopt with < 3 points or a constant side.
std::optional<double> spearman(const std::vector<double>& x, const std::vector<double>& y);

struct KnockoutLayer {
  int layer = 0;                                      // trace layer index
  int64_t block = 0;                                  // model block
  CountMatrix counts;                                 // routing of the unablated model on the same tokens
  std::vector<std::vector<double>> loss_increase;     // [E][n_domains] bits per token
};

// The "moetb-knockout/1" document body: per layer and expert the load share,
// specialization, top domain, p_d(e), the loss increase per domain and its concentration,
// plus the rank correlations: "cell" = Spearman(p_d(e), increase(e,d)) over every
// (layer, expert, domain); "expert" = Spearman(specialization, concentration) over experts.
nlohmann::json knockout_json(const std::vector<KnockoutLayer>& layers, const std::vector<std::string>& domains,
                             const std::vector<double>& base_loss_bits, const std::vector<int64_t>& domain_tokens);

}  // namespace moetb
