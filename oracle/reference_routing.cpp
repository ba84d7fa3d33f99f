// Plain-loop reference routing (see reference_routing.h): the slow path the LibTorch
// routers of routers/ are checked against. Switch Transformer (arXiv 2101.03961) top-k and
// balance loss, ST-MoE (arXiv 2202.08906) z-loss. Everything in double, row by row.
#include "oracle/reference_routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace moetb {

namespace {

std::size_t at2(int64_t row, int64_t col, int64_t width) { return static_cast<std::size_t>(row * width + col); }

double log_sum_exp(const double* row, int64_t n) {
  const double m = *std::max_element(row, row + n);
  double s = 0;
  for (int64_t e = 0; e < n; ++e) s += std::exp(row[e] - m);
  return m + std::log(s);
}

}  // namespace

ReferenceRouting topk_select_reference(const double* logits, int64_t n_tokens, int64_t n_experts, int64_t k,
                                       const std::string& score, bool renormalize) {
  if (n_tokens < 0 || n_experts < 1) throw std::invalid_argument("reference routing: bad logits shape");
  if (k < 1 || k > n_experts) throw std::invalid_argument("reference routing: k must lie in [1, n_experts]");
  if (score != "softmax" && score != "sigmoid")
    throw std::invalid_argument("reference routing: score must be 'softmax' or 'sigmoid', got '" + score + "'");
  ReferenceRouting out;
  out.experts.resize(static_cast<std::size_t>(n_tokens * k));
  out.weights.resize(static_cast<std::size_t>(n_tokens * k));
  out.probs.resize(static_cast<std::size_t>(n_tokens * n_experts));
  std::vector<double> s(static_cast<std::size_t>(n_experts));         // [E] scores of one token
  std::vector<int64_t> order(static_cast<std::size_t>(n_experts));    // [E]
  for (int64_t t = 0; t < n_tokens; ++t) {
    const double* row = logits + t * n_experts;
    const double lse = log_sum_exp(row, n_experts);
    for (int64_t e = 0; e < n_experts; ++e) {
      const double p = std::exp(row[e] - lse);
      out.probs[at2(t, e, n_experts)] = p;
      s[static_cast<std::size_t>(e)] = score == "softmax" ? p : 1.0 / (1.0 + std::exp(-row[e]));
    }
    std::iota(order.begin(), order.end(), int64_t{0});
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return s[static_cast<std::size_t>(a)] > s[static_cast<std::size_t>(b)];
    });
    double total = 0;
    for (int64_t j = 0; j < k; ++j) total += s[static_cast<std::size_t>(order[static_cast<std::size_t>(j)])];
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = order[static_cast<std::size_t>(j)];
      out.experts[at2(t, j, k)] = e;
      out.weights[at2(t, j, k)] = s[static_cast<std::size_t>(e)] / (renormalize && k > 1 ? total : 1.0);  // k = 1: Switch
    }
  }
  return out;
}

ReferenceRouting topk_select_reference(const float* logits, int64_t n_tokens, int64_t n_experts, int64_t k,
                                       const std::string& score, bool renormalize) {
  const std::vector<double> wide(logits, logits + std::max<int64_t>(0, n_tokens * n_experts));
  return topk_select_reference(wide.data(), n_tokens, n_experts, k, score, renormalize);
}

ReferenceRouting group_topk_reference(const double* logits, int64_t n_tokens, int64_t n_experts, int64_t k,
                                      const std::string& score, bool renormalize, int64_t n_groups, int64_t topk_groups,
                                      const std::string& group_rule) {
  if (n_groups < 1 || n_experts % n_groups != 0 || topk_groups < 1 || topk_groups > n_groups)
    throw std::invalid_argument("group reference: n_groups must divide n_experts and topk_groups lie in [1, n_groups]");
  if (group_rule != "max" && group_rule != "top2_sum")
    throw std::invalid_argument("group reference: group_rule must be 'max' or 'top2_sum', got '" + group_rule + "'");
  const int64_t size = n_experts / n_groups;
  if (topk_groups * size < k) throw std::invalid_argument("group reference: the kept groups cannot hold k experts");
  // The plain scores of every expert (k = E: all of them, unsorted by weight needs).
  const ReferenceRouting all = topk_select_reference(logits, n_tokens, n_experts, n_experts, score, false);
  ReferenceRouting out;
  out.probs = all.probs;
  out.experts.resize(static_cast<std::size_t>(n_tokens * k));
  out.weights.resize(static_cast<std::size_t>(n_tokens * k));
  std::vector<double> s(static_cast<std::size_t>(n_experts));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t j = 0; j < n_experts; ++j)  // all.experts is the token's experts by descending score
      s[static_cast<std::size_t>(all.experts[at2(t, j, n_experts)])] = all.weights[at2(t, j, n_experts)];
    std::vector<std::pair<double, int64_t>> groups;  // (group score, group)
    for (int64_t g = 0; g < n_groups; ++g) {
      double best = -1, second = -1;
      for (int64_t i = g * size; i < (g + 1) * size; ++i) {
        const double v = s[static_cast<std::size_t>(i)];
        if (v > best) {
          second = best;
          best = v;
        } else if (v > second) {
          second = v;
        }
      }
      groups.push_back({group_rule == "max" || size == 1 ? best : best + second, g});
    }
    std::stable_sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<std::pair<double, int64_t>> allowed;  // (score, expert) inside the kept groups
    for (int64_t r = 0; r < topk_groups; ++r)
      for (int64_t i = groups[static_cast<std::size_t>(r)].second * size; i < (groups[static_cast<std::size_t>(r)].second + 1) * size; ++i)
        allowed.push_back({s[static_cast<std::size_t>(i)], i});
    std::stable_sort(allowed.begin(), allowed.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    double total = 0;
    for (int64_t j = 0; j < k; ++j) total += allowed[static_cast<std::size_t>(j)].first;
    for (int64_t j = 0; j < k; ++j) {
      out.experts[at2(t, j, k)] = allowed[static_cast<std::size_t>(j)].second;
      out.weights[at2(t, j, k)] = allowed[static_cast<std::size_t>(j)].first / (renormalize && k > 1 ? total : 1.0);
    }
  }
  return out;
}

double switch_balance_loss_reference(const std::vector<int64_t>& experts, const std::vector<double>& probs,
                                     int64_t n_tokens, int64_t n_experts, int64_t k) {
  if (experts.size() != static_cast<std::size_t>(n_tokens * k) ||
      probs.size() != static_cast<std::size_t>(n_tokens * n_experts))
    throw std::invalid_argument("switch_balance_loss_reference: sizes do not match [n_tokens, k] and [n_tokens, E]");
  std::vector<double> count(static_cast<std::size_t>(n_experts), 0.0), mean_p(static_cast<std::size_t>(n_experts), 0.0);
  double assigned = 0;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = experts[at2(t, j, k)];
      if (e < 0) continue;
      if (e >= n_experts) throw std::invalid_argument("switch_balance_loss_reference: expert id out of range");
      count[static_cast<std::size_t>(e)] += 1;
      assigned += 1;
    }
    for (int64_t e = 0; e < n_experts; ++e) mean_p[static_cast<std::size_t>(e)] += probs[at2(t, e, n_experts)];
  }
  if (n_tokens == 0 || assigned == 0) return 0.0;
  double loss = 0;
  for (int64_t e = 0; e < n_experts; ++e)
    loss += (count[static_cast<std::size_t>(e)] / assigned) *
            (mean_p[static_cast<std::size_t>(e)] / static_cast<double>(n_tokens));
  return static_cast<double>(n_experts) * loss;
}

double router_z_loss_reference(const double* logits, int64_t n_tokens, int64_t n_experts) {
  if (n_tokens <= 0) return 0.0;
  double sum = 0;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const double z = log_sum_exp(logits + t * n_experts, n_experts);
    sum += z * z;
  }
  return sum / static_cast<double>(n_tokens);
}

}  // namespace moetb
