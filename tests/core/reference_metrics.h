// Slow, obvious reference implementation of every metric of shared/spec/metrics.md,
// straight from the formulas on an in-memory TraceData (plain loops, std::map/std::set,
// pair and window enumeration, eigenvalues instead of SVD). Used only by the tests.
#pragma once
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "metrics/trace.h"

namespace moetb_ref {

using Opt = std::optional<double>;
using Set = std::set<int>;
using Counts = std::map<int, std::map<int, int64_t>>;  // C[d][e], present domains only
constexpr std::array<int, 3> kNs = {2, 4, 10};

// S_t: the valid experts of token t in layer l.
inline Set expert_set(const moetb::TraceData& tr, int l, int64_t t) {
  Set s;
  const int64_t k = tr.k[l];
  for (int64_t j = 0; j < k; ++j) {
    const int e = tr.experts[l][static_cast<std::size_t>(t * k + j)];
    if (e >= 0) s.insert(e);
  }
  return s;
}

inline double xlogx(double x) { return x > 0 ? x * std::log(x) : 0.0; }

struct RsRef { Opt rs, rs_mm; std::map<int, Opt> per_domain; };

// RS via I(D;E) = H(D) + H(E) - H(D,E) (the library uses sum pi KL); RS_d via KL.
inline RsRef rs_ref(const Counts& c) {
  RsRef out;
  double n = 0;
  std::map<int, double> nd, me;
  for (const auto& [d, row] : c)
    for (const auto& [e, x] : row) { nd[d] += double(x); me[e] += double(x); n += double(x); }
  if (nd.empty()) return out;
  if (nd.size() == 1) { out.rs = 0.0; out.rs_mm = 0.0; return out; }
  double hd = 0, he = 0, hde = 0;
  int64_t bde = 0;
  for (const auto& [d, v] : nd) hd -= xlogx(v / n);
  for (const auto& [e, v] : me) he -= xlogx(v / n);
  for (const auto& [d, row] : c)
    for (const auto& [e, x] : row) { hde -= xlogx(double(x) / n); bde += x > 0; }
  const double mi = hd + he - hde;
  out.rs = std::min(1.0, std::max(0.0, mi / hd));
  const double bias = double(bde - int64_t(nd.size()) - int64_t(me.size()) + 1) / (2.0 * n);
  // NOTE: the spec writes max(0, I - bias) / H(D) with no upper clamp; the library clamps
  // at 1 (the literal value exceeds 1 when the domain/expert support graph is a forest,
  // e.g. disjoint experts). The reference follows the library here; reported upstream.
  out.rs_mm = std::max(0.0, mi - bias) / hd;  // as specified: no cap at 1
  for (const auto& [d, row] : c) {
    double kl = 0;
    for (const auto& [e, x] : row)
      if (x > 0) kl += (double(x) / nd[d]) * std::log((double(x) / nd[d]) / (me[e] / n));
    out.per_domain[d] = kl / std::log(n / nd[d]);
  }
  return out;
}

// NER from the eigenvalues of P P^T (squared singular values of P).
inline Opt ner_ref(const Counts& c, int n_experts) {
  const int rows = int(c.size());
  if (rows == 0) return std::nullopt;
  const int r = std::min(rows, n_experts);
  if (r == 1) return 0.0;
  Eigen::MatrixXd p = Eigen::MatrixXd::Zero(rows, n_experts);
  int i = 0;
  for (const auto& [d, row] : c) {
    double norm2 = 0;
    for (const auto& [e, x] : row) norm2 += double(x) * double(x);
    for (const auto& [e, x] : row) p(i, e) = double(x) / std::sqrt(norm2);
    ++i;
  }
  const Eigen::MatrixXd m = p * p.transpose();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(m);
  std::vector<double> lam(es.eigenvalues().data(), es.eigenvalues().data() + rows);
  std::sort(lam.rbegin(), lam.rend());
  std::vector<double> s;
  for (int j = 0; j < r; ++j) s.push_back(lam[j] > 1e-12 * lam[0] ? std::sqrt(lam[j]) : 0.0);
  double total = 0, h = 0;
  for (double x : s) total += x;
  for (double x : s) h -= xlogx(x / total);
  return (std::exp(h) - 1.0) / double(r - 1);
}

struct DiRef { Opt di; std::map<std::pair<int, int>, double> pairs; };
inline DiRef di_ref(const Counts& c, int n_experts) {
  DiRef out;
  if (c.empty()) return out;
  std::map<int, std::vector<double>> p;
  for (const auto& [d, row] : c) {
    double nd = 0;
    for (const auto& [e, x] : row) nd += double(x);
    p[d].assign(std::size_t(n_experts), 0.0);
    for (const auto& [e, x] : row) p[d][std::size_t(e)] = double(x) / nd;
  }
  double sum = 0;
  int pairs = 0;
  for (const auto& [a, pa] : p)
    for (const auto& [b, pb] : p) {
      double tv = 0;
      for (int e = 0; e < n_experts; ++e) tv += 0.5 * std::fabs(pa[std::size_t(e)] - pb[std::size_t(e)]);
      out.pairs[{a, b}] = tv;
      if (a < b) { sum += tv; ++pairs; }
    }
  out.di = pairs == 0 ? 0.0 : sum / pairs;
  return out;
}

struct LoadRef { Opt utilization, entropy, max_vio, cv; int64_t dead = 0; };
inline LoadRef load_ref(const std::vector<int64_t>& load) {
  LoadRef out;
  const double e_n = double(load.size());
  double a = 0;
  for (int64_t x : load) { a += double(x); out.dead += x == 0; }
  if (a == 0) return out;
  double util = 0, h = 0, fmax = 0, mean = a / e_n, var = 0;
  for (int64_t x : load) {
    const double f = double(x) / a;
    util += std::min(f, 1.0 / e_n);
    h -= xlogx(f);
    fmax = std::max(fmax, f);
    var += (double(x) - mean) * (double(x) - mean) / e_n;
  }
  out.utilization = util;
  if (load.size() > 1) out.entropy = h / std::log(e_n);
  out.max_vio = e_n * fmax - 1.0;
  out.cv = std::sqrt(var) / mean;
  return out;
}

struct PurityRef { Opt purity, purity_ids, purity_majority; };
// purity: exhaustive search over expert -> (domain or none) maps under the size caps,
// memoised on (expert, remaining caps).
inline PurityRef purity_ref(const Counts& c, int n_experts, const std::vector<std::vector<int>>& groups,
                            int n_domains) {
  PurityRef out;
  double n = 0, ids = 0, maj = 0;
  auto at = [&](int d, int e) -> double {
    auto it = c.find(d);
    if (it == c.end()) return 0;
    auto jt = it->second.find(e);
    return jt == it->second.end() ? 0.0 : double(jt->second);
  };
  for (const auto& [d, row] : c)
    for (const auto& [e, x] : row) n += double(x);
  if (n == 0) return out;
  for (int d = 0; d < int(groups.size()); ++d)
    for (int e : groups[std::size_t(d)]) ids += at(d, e);
  for (int e = 0; e < n_experts; ++e) {
    double best = 0;
    for (const auto& [d, row] : c) best = std::max(best, at(d, e));
    maj += best;
  }
  std::vector<int> caps(std::size_t(n_domains), 0);
  for (int d = 0; d < n_domains && d < int(groups.size()); ++d) caps[std::size_t(d)] = int(groups[std::size_t(d)].size());
  std::map<std::pair<int, std::vector<int>>, double> memo;
  std::function<double(int, std::vector<int>&)> best = [&](int e, std::vector<int>& cap) -> double {
    if (e == n_experts) return 0.0;
    auto key = std::make_pair(e, cap);
    auto it = memo.find(key);
    if (it != memo.end()) return it->second;
    double b = best(e + 1, cap);  // expert e unmapped
    for (int d = 0; d < n_domains; ++d) {
      if (cap[std::size_t(d)] == 0) continue;
      --cap[std::size_t(d)];
      b = std::max(b, at(d, e) + best(e + 1, cap));
      ++cap[std::size_t(d)];
    }
    memo[key] = b;
    return b;
  };
  out.purity = best(0, caps) / n;
  out.purity_ids = ids / n;
  out.purity_majority = maj / n;
  return out;
}

// Experts of domain d sorted by share (ties by id), kept until the cumulative share >= tau.
inline std::vector<int> path_ref(const Counts& c, int d, double tau) {
  std::vector<int> out;
  auto it = c.find(d);
  if (it == c.end()) return out;
  std::vector<std::pair<int64_t, int>> v;  // (-count, id)
  int64_t nd = 0, cum = 0;
  for (const auto& [e, x] : it->second) if (x > 0) { v.push_back({-x, e}); nd += x; }
  std::sort(v.begin(), v.end());
  for (const auto& [negx, e] : v) {
    out.push_back(e);
    cum -= negx;
    if (double(cum) >= tau * double(nd)) break;
  }
  return out;
}

struct Layer {
  Counts counts;
  RsRef rs;
  Opt ner, rss;
  DiRef di;
  std::array<Opt, 3> ne, ne_chance, ne_group;
  bool has_group = false;
  LoadRef load;
  std::optional<PurityRef> purity;
};

struct Result {
  int64_t tokens = 0;
  std::vector<std::string> domains;
  std::vector<int64_t> domain_tokens;
  std::vector<Layer> layers;
};

inline Layer layer_ref(const moetb::TraceData& tr, int l, int ne_groups,
                       const std::optional<std::vector<std::vector<int>>>& groups, int n_domains) {
  Layer out;
  const int E = int(tr.meta_data.num_experts);
  const int64_t T = int64_t(tr.token_ids.size());
  std::vector<Set> s(static_cast<std::size_t>(T));
  std::vector<int64_t> load(static_cast<std::size_t>(E), 0);
  int64_t routed = 0, assignments = 0;
  std::map<int32_t, std::vector<int64_t>> occ;  // token id -> routed occurrences
  for (int64_t t = 0; t < T; ++t) {
    s[std::size_t(t)] = expert_set(tr, l, t);
    const Set& st = s[std::size_t(t)];
    if (st.empty()) continue;
    ++routed;
    assignments += int64_t(st.size());
    occ[tr.token_ids[std::size_t(t)]].push_back(t);
    for (int e : st) {
      ++load[std::size_t(e)];
      if (tr.domain_ids[std::size_t(t)] >= 0) ++out.counts[tr.domain_ids[std::size_t(t)]][e];
    }
  }
  out.rs = rs_ref(out.counts);
  out.ner = ner_ref(out.counts, E);
  out.di = di_ref(out.counts, E);
  out.load = load_ref(load);
  if (groups) out.purity = purity_ref(out.counts, E, *groups, n_domains);
  if (assignments == 0) return out;
  const double kbar = double(assignments) / double(routed);
  std::vector<double> f(static_cast<std::size_t>(E));
  for (int e = 0; e < E; ++e) f[std::size_t(e)] = double(load[std::size_t(e)]) / double(assignments);
  // RSS: ordered pairs of distinct occurrences of each repeated id.
  double o_num = 0, o_den = 0;
  for (const auto& [v, ts] : occ) {
    const double nv = double(ts.size());
    if (ts.size() < 2) continue;
    double inter = 0;
    for (int64_t a : ts)
      for (int64_t b : ts) {
        if (a == b) continue;
        for (int e : s[std::size_t(a)]) inter += double(s[std::size_t(b)].count(e));
      }
    const double ov = inter / (kbar * nv * (nv - 1));
    o_num += nv * ov;
    o_den += nv;
  }
  double o0 = 0;
  for (double x : f) o0 += kbar * x * x;
  if (o_den > 0 && o0 < 1.0) out.rss = (o_num / o_den - o0) / (1.0 - o0);
  // NE: every window of n consecutive routed tokens inside one sequence.
  out.has_group = ne_groups > 0 && E % ne_groups == 0;
  const int gsize = out.has_group ? E / ne_groups : 1;
  for (std::size_t i = 0; i < kNs.size(); ++i) {
    const int n = kNs[i];
    double chance = 0;
    for (double x : f) chance += std::pow(kbar * x, n);
    out.ne_chance[i] = std::min(1.0, chance);
    int64_t windows = 0, held = 0, held_g = 0;
    for (int64_t t0 = 0; t0 + n <= T; ++t0) {
      bool ok = true;
      for (int64_t t = t0; t < t0 + n && ok; ++t) {
        if (s[std::size_t(t)].empty()) ok = false;
        if (t > t0 && tr.positions[std::size_t(t)] == 0) ok = false;
      }
      if (!ok) continue;
      ++windows;
      Set common = s[std::size_t(t0)], common_g;
      for (int e : s[std::size_t(t0)]) common_g.insert(e / gsize);
      for (int64_t t = t0 + 1; t < t0 + n; ++t) {
        Set next, next_g, sg;
        for (int e : s[std::size_t(t)]) { if (common.count(e)) next.insert(e); sg.insert(e / gsize); }
        for (int g : sg) if (common_g.count(g)) next_g.insert(g);
        common.swap(next);
        common_g.swap(next_g);
      }
      held += !common.empty();
      held_g += !common_g.empty();
    }
    if (windows > 0) {
      out.ne[i] = double(held) / double(windows);
      if (out.has_group) out.ne_group[i] = double(held_g) / double(windows);
    }
  }
  return out;
}

inline Result trace_ref(const moetb::TraceData& tr, int ne_groups,
                        const std::optional<std::vector<std::vector<int>>>& groups) {
  Result out;
  out.tokens = int64_t(tr.token_ids.size());
  int max_d = -1;
  for (int32_t d : tr.domain_ids) max_d = std::max(max_d, int(d));
  const auto& names = tr.meta_data.domain_names;
  const int nd = std::max(int(names.size()), max_d + 1);
  for (int d = 0; d < nd; ++d) out.domains.push_back(d < int(names.size()) ? names[std::size_t(d)] : std::to_string(d));
  out.domain_tokens.assign(std::size_t(nd), 0);
  for (int32_t d : tr.domain_ids) if (d >= 0) ++out.domain_tokens[std::size_t(d)];
  for (int l = 0; l < int(tr.experts.size()); ++l) out.layers.push_back(layer_ref(tr, l, ne_groups, groups, nd));
  return out;
}

// Every scalar of a layer under its flattened JSON key ("rs", "ne.2", "load.cv", ...).
inline std::map<std::string, Opt> flatten_layer(const Layer& l) {
  std::map<std::string, Opt> m;
  m["rs"] = l.rs.rs; m["rs_mm"] = l.rs.rs_mm; m["ner"] = l.ner; m["di"] = l.di.di; m["rss"] = l.rss;
  for (std::size_t i = 0; i < kNs.size(); ++i) {
    const std::string n = std::to_string(kNs[i]);
    m["ne." + n] = l.ne[i];
    m["ne_chance." + n] = l.ne_chance[i];
    if (l.has_group) m["ne_group." + n] = l.ne_group[i];
  }
  m["load.utilization"] = l.load.utilization; m["load.entropy"] = l.load.entropy;
  m["load.max_vio"] = l.load.max_vio; m["load.cv"] = l.load.cv; m["load.dead_experts"] = double(l.load.dead);
  if (l.purity) {
    m["purity"] = l.purity->purity; m["purity_ids"] = l.purity->purity_ids;
    m["purity_majority"] = l.purity->purity_majority;
  }
  return m;
}

// The summary: per key, the mean over layers of the non-null values.
inline std::map<std::string, Opt> summary_ref(const Result& r) {
  std::map<std::string, std::pair<double, int>> acc;
  for (const auto& l : r.layers)
    for (const auto& [k, v] : flatten_layer(l)) {
      auto& a = acc[k];
      if (v) { a.first += *v; ++a.second; }
    }
  std::map<std::string, Opt> out;
  for (const auto& [k, a] : acc) out[k] = a.second ? Opt(a.first / a.second) : std::nullopt;
  return out;
}

// Router saturation per layer: mean over tokens B routes of |S^A ∩ S^B| / |S^B|.
inline std::vector<Opt> saturation_ref(const moetb::TraceData& a, const moetb::TraceData& b) {
  std::vector<Opt> out;
  const int L = int(std::min(a.experts.size(), b.experts.size()));
  for (int l = 0; l < L; ++l) {
    double sum = 0;
    int64_t n = 0;
    for (int64_t t = 0; t < int64_t(a.token_ids.size()); ++t) {
      const Set sa = expert_set(a, l, t), sb = expert_set(b, l, t);
      if (sb.empty()) continue;
      double shared = 0;
      for (int e : sb) shared += double(sa.count(e));
      sum += shared / double(sb.size());
      ++n;
    }
    out.push_back(n ? Opt(sum / double(n)) : std::nullopt);
  }
  return out;
}

}  // namespace moetb_ref
