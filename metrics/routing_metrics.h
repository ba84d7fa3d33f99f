// Per-layer routing metrics from aggregated counts (metrics.md §1-3, §6, §7):
// Routing Specialization, Normalized Effective Rank, Domain Isolation (names from
// DBES, arXiv 2605.18498; formulas are moetb's own), load statistics, and purity
// against a reference (MoE Routing Testbed, arXiv 2604.07030). Pure functions of a
// domain x expert count matrix, so tests can check each against a closed form.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

namespace moetb {

using Opt = std::optional<double>;

// C[d, e]: assignments of domain-d tokens to expert e, row-major [n_domains, n_experts].
struct CountMatrix {
  int n_domains = 0;
  int64_t n_experts = 0;
  std::vector<int64_t> c;
  int64_t at(int d, int64_t e) const { return c[static_cast<std::size_t>(d * n_experts + e)]; }
  int64_t row_sum(int d) const;
  int64_t total() const;
};

struct RsResult {
  Opt rs, rs_mm;
  std::vector<Opt> per_domain;  // [n_domains]; null where undefined
};
RsResult routing_specialization(const CountMatrix& counts);

Opt normalized_effective_rank(const CountMatrix& counts);

struct DiResult {
  Opt di;
  std::vector<std::vector<Opt>> pairs;  // [n_domains][n_domains], null for absent domains
};
DiResult domain_isolation(const CountMatrix& counts);

struct LoadStats {
  Opt utilization, entropy, max_vio, cv;
  int64_t dead_experts = 0;
};
LoadStats load_stats(const std::vector<int64_t>& expert_counts);

struct PurityResult {
  Opt purity, purity_ids, purity_majority;
};
// groups: domain id -> reference expert ids (domains past the end have none).
PurityResult purity_against(const CountMatrix& counts, const std::vector<std::vector<int>>& groups);

}  // namespace moetb
