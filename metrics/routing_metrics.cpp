// Routing metrics from a domain x expert count matrix; see routing_metrics.h and
// docs/metrics.md for the definitions. Natural logs, 0 log 0 = 0; undefined -> null.
#include "metrics/routing_metrics.h"

#include <Eigen/SVD>
#include <algorithm>
#include <cmath>

#include "metrics/assignment.h"

namespace moetb {
namespace {

double clamp01(double x) { return std::min(1.0, std::max(0.0, x)); }

std::vector<int> present_domains(const CountMatrix& m) {
  std::vector<int> out;
  for (int d = 0; d < m.n_domains; ++d)
    if (m.row_sum(d) > 0) out.push_back(d);
  return out;
}

}  // namespace

int64_t CountMatrix::row_sum(int d) const {
  int64_t s = 0;
  for (int64_t e = 0; e < n_experts; ++e) s += at(d, e);
  return s;
}

int64_t CountMatrix::total() const {
  int64_t s = 0;
  for (int64_t x : c) s += x;
  return s;
}

RsResult routing_specialization(const CountMatrix& m) {
  RsResult out;
  out.per_domain.assign(m.n_domains, std::nullopt);
  const std::vector<int> doms = present_domains(m);
  const double n = static_cast<double>(m.total());
  if (doms.empty()) return out;
  if (doms.size() == 1) {
    out.rs = 0.0;
    out.rs_mm = 0.0;
    return out;
  }
  std::vector<double> col(m.n_experts, 0.0);
  for (int d : doms)
    for (int64_t e = 0; e < m.n_experts; ++e) col[e] += static_cast<double>(m.at(d, e));
  double mutual_info = 0, h_domain = 0;
  int64_t cells = 0, experts_used = 0;
  for (double c : col) experts_used += c > 0;
  for (int d : doms) {
    const double n_d = static_cast<double>(m.row_sum(d));
    const double pi = n_d / n;
    double kl = 0;  // KL(p_d || pbar)
    for (int64_t e = 0; e < m.n_experts; ++e) {
      const double c = static_cast<double>(m.at(d, e));
      if (c == 0) continue;
      ++cells;
      kl += (c / n_d) * std::log((c / n_d) / (col[e] / n));
    }
    out.per_domain[d] = clamp01(kl / -std::log(pi));
    mutual_info += pi * kl;
    h_domain -= pi * std::log(pi);
  }
  out.rs = clamp01(mutual_info / h_domain);
  const double bias = static_cast<double>(cells - static_cast<int64_t>(doms.size()) - experts_used + 1) / (2.0 * n);
  // As specified: not capped at 1. When the correction is negative (few occupied cells,
  // e.g. disjoint experts) rs_mm can exceed 1 by about (D-1)/(2N H(D)).
  out.rs_mm = std::max(0.0, mutual_info - bias) / h_domain;
  return out;
}

Opt normalized_effective_rank(const CountMatrix& m) {
  const std::vector<int> doms = present_domains(m);
  if (doms.empty()) return std::nullopt;
  const Eigen::Index rows = static_cast<Eigen::Index>(doms.size());
  const Eigen::Index r = std::min<Eigen::Index>(rows, m.n_experts);
  if (r == 1) return 0.0;
  Eigen::MatrixXd p(rows, m.n_experts);  // [D, E], rows are p_d / ||p_d||_2
  for (Eigen::Index i = 0; i < rows; ++i) {
    for (int64_t e = 0; e < m.n_experts; ++e) p(i, e) = static_cast<double>(m.at(doms[i], e));
    p.row(i) /= p.row(i).norm();
  }
  const Eigen::VectorXd s = Eigen::BDCSVD<Eigen::MatrixXd>(p).singularValues();
  const double total = s.sum();
  double entropy = 0;
  for (Eigen::Index i = 0; i < s.size(); ++i) {
    const double q = s(i) / total;
    if (q > 0) entropy -= q * std::log(q);
  }
  return clamp01((std::exp(entropy) - 1.0) / static_cast<double>(r - 1));
}

DiResult domain_isolation(const CountMatrix& m) {
  DiResult out;
  out.pairs.assign(m.n_domains, std::vector<Opt>(m.n_domains, std::nullopt));
  const std::vector<int> doms = present_domains(m);
  if (doms.empty()) return out;
  std::vector<double> n_d(m.n_domains, 0.0);
  for (int d : doms) n_d[d] = static_cast<double>(m.row_sum(d));
  double sum = 0;
  int64_t n_pairs = 0;
  for (int a : doms) {
    out.pairs[a][a] = 0.0;
    for (int b : doms) {
      if (b <= a) continue;
      double tv = 0;
      for (int64_t e = 0; e < m.n_experts; ++e)
        tv += std::fabs(static_cast<double>(m.at(a, e)) / n_d[a] - static_cast<double>(m.at(b, e)) / n_d[b]);
      tv = clamp01(0.5 * tv);
      out.pairs[a][b] = out.pairs[b][a] = tv;
      sum += tv;
      ++n_pairs;
    }
  }
  out.di = n_pairs == 0 ? 0.0 : sum / static_cast<double>(n_pairs);
  return out;
}

LoadStats load_stats(const std::vector<int64_t>& counts) {
  LoadStats out;
  const double n_e = static_cast<double>(counts.size());
  double total = 0, max_c = 0;
  for (int64_t c : counts) {
    total += static_cast<double>(c);
    max_c = std::max(max_c, static_cast<double>(c));
    out.dead_experts += c == 0;
  }
  if (total == 0 || counts.empty()) return out;
  double util = 0, h = 0, var = 0;
  const double mean = total / n_e;
  for (int64_t c : counts) {
    const double f = static_cast<double>(c) / total;
    util += std::min(f, 1.0 / n_e);
    if (f > 0) h -= f * std::log(f);
    var += (static_cast<double>(c) - mean) * (static_cast<double>(c) - mean);
  }
  out.utilization = std::min(1.0, util);
  if (counts.size() > 1) out.entropy = clamp01(h / std::log(n_e));
  out.max_vio = n_e * max_c / total - 1.0;
  out.cv = std::sqrt(var / n_e) / mean;
  return out;
}

PurityResult purity_against(const CountMatrix& m, const std::vector<std::vector<int>>& groups) {
  PurityResult out;
  const double n = static_cast<double>(m.total());
  if (n == 0) return out;
  double hits_ids = 0, majority = 0;
  std::vector<int> sizes(m.n_domains, 0);
  for (int d = 0; d < m.n_domains && d < static_cast<int>(groups.size()); ++d) {
    sizes[d] = static_cast<int>(groups[d].size());
    for (int e : groups[d])
      if (e >= 0 && e < m.n_experts) hits_ids += static_cast<double>(m.at(d, e));
  }
  for (int64_t e = 0; e < m.n_experts; ++e) {
    int64_t best = 0;
    for (int d = 0; d < m.n_domains; ++d) best = std::max(best, m.at(d, e));
    majority += static_cast<double>(best);
  }
  // Experts no labelled token uses add nothing to any relabelling: leave them out of the
  // assignment problem (it is O(n^2 m) in its two sides).
  std::vector<int64_t> used;
  for (int64_t e = 0; e < m.n_experts; ++e) {
    int64_t col = 0;
    for (int d = 0; d < m.n_domains; ++d) col += m.at(d, e);
    if (col > 0) used.push_back(e);
  }
  std::vector<double> weights;  // [n_domains, used experts]
  for (int d = 0; d < m.n_domains; ++d)
    for (int64_t e : used) weights.push_back(static_cast<double>(m.at(d, e)));
  const double hits_best = best_relabelled_hits(weights, m.n_domains, static_cast<int>(used.size()), sizes);
  out.purity_ids = hits_ids / n;
  out.purity = clamp01(hits_best / n);
  out.purity_majority = majority / n;
  return out;
}

}  // namespace moetb
