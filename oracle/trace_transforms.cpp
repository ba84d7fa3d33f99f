// Trace transformations for the invariance checks (see trace_transforms.h).
#include "oracle/trace_transforms.h"

#include <numeric>

#include "common/rng.h"

namespace moetb {
namespace {

// Builds a trace from `src` taking tokens in `order` (source token indices).
TraceData gather_tokens(const TraceData& src, const std::vector<int64_t>& order) {
  TraceData out;
  out.meta_data = src.meta_data;
  out.k = src.k;
  out.experts.resize(src.experts.size());
  for (int64_t t : order) {
    out.token_ids.push_back(src.token_ids[t]);
    out.positions.push_back(src.positions[t]);
    out.domain_ids.push_back(src.domain_ids[t]);
    for (std::size_t l = 0; l < src.experts.size(); ++l)
      for (int64_t s = 0; s < src.k[l]; ++s) out.experts[l].push_back(src.experts[l][t * src.k[l] + s]);
  }
  return out;
}

std::vector<std::pair<int64_t, int64_t>> sequences(const TraceData& trace) {  // [begin, end)
  std::vector<std::pair<int64_t, int64_t>> seqs;
  const auto n = static_cast<int64_t>(trace.token_ids.size());
  for (int64_t t = 0; t < n; ++t)
    if (t == 0 || trace.positions[t] == 0) seqs.push_back({t, t});
  for (std::size_t i = 0; i < seqs.size(); ++i) seqs[i].second = i + 1 < seqs.size() ? seqs[i + 1].first : n;
  return seqs;
}

}  // namespace

std::vector<int> random_permutation(int n, uint64_t seed) {
  std::vector<int> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  Rng rng(seed);
  for (int i = n; i > 1; --i) std::swap(perm[i - 1], perm[rng.below(static_cast<uint64_t>(i))]);
  return perm;
}

TraceData permute_experts(const TraceData& trace, const std::vector<int>& perm) {
  TraceData out = trace;
  for (auto& layer : out.experts)
    for (auto& e : layer)
      if (e >= 0) e = perm[e];
  return out;
}

TraceData relabel_domains(const TraceData& trace, const std::vector<int>& perm) {
  TraceData out = trace;
  for (auto& d : out.domain_ids)
    if (d >= 0) d = perm[d];
  const auto n = perm.size();
  TraceMeta& meta = out.meta_data;
  if (meta.domain_names.size() == n) {
    std::vector<std::string> names(n);
    for (std::size_t d = 0; d < n; ++d) names[perm[d]] = trace.meta_data.domain_names[d];
    meta.domain_names = names;
  }
  if (meta.reference_groups && meta.reference_groups->size() == n) {
    std::vector<std::vector<int>> groups(n);
    for (std::size_t d = 0; d < n; ++d) groups[perm[d]] = (*trace.meta_data.reference_groups)[d];
    meta.reference_groups = groups;
  }
  return out;
}

TraceData shuffle_sequences(const TraceData& trace, uint64_t seed) {
  auto seqs = sequences(trace);
  const std::vector<int> perm = random_permutation(static_cast<int>(seqs.size()), seed);
  std::vector<int64_t> order;
  for (int i : perm)
    for (int64_t t = seqs[i].first; t < seqs[i].second; ++t) order.push_back(t);
  return gather_tokens(trace, order);
}

TraceData shuffle_within_sequences(const TraceData& trace, uint64_t seed) {
  std::vector<int64_t> order;
  uint64_t salt = 0;
  for (const auto& [begin, end] : sequences(trace)) {
    const std::vector<int> perm = random_permutation(static_cast<int>(end - begin), mix_seed({seed, salt++}));
    for (int i : perm) order.push_back(begin + i);
  }
  TraceData out = gather_tokens(trace, order);
  out.positions = trace.positions;  // positions describe places, not tokens
  return out;
}

TraceData duplicate_trace(const TraceData& trace) {
  std::vector<int64_t> order(trace.token_ids.size() * 2);
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i % trace.token_ids.size());
  return gather_tokens(trace, order);
}

}  // namespace moetb
