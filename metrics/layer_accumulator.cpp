// One pass per (shard, layer) over the [T, K] expert ids: counts for RS/NER/DI/purity,
// load, N-gram windows (a window of n tokens is held if some expert's current span
// covers all n), and (token id, expert) keys for RSS. See metrics.md §1-7.
#include "metrics/layer_accumulator.h"

#include <algorithm>
#include <string>

namespace moetb {

LayerAccumulator::LayerAccumulator(int layer, int64_t num_experts, int ne_groups, int64_t min_token_id,
                                   int64_t max_token_id)
    : layer_(layer),
      n_experts_(num_experts),
      rss_(num_experts, min_token_id, max_token_id),
      seen_(num_experts, -1),
      last_expert_(num_experts, -2),
      run_expert_(num_experts, 0) {
  stats_.counts.n_experts = num_experts;
  stats_.expert_load.assign(num_experts, 0);
  if (ne_groups > 0 && num_experts % ne_groups == 0) {
    group_size_ = num_experts / ne_groups;
    stats_.has_groups = true;
    last_group_.assign(ne_groups, -2);
    run_group_.assign(ne_groups, 0);
    for (int64_t e = 0; e < num_experts; ++e) group_of_.push_back(static_cast<int32_t>(e / group_size_));
  }
}

int64_t* LayerAccumulator::domain_row(int32_t domain) {
  if (domain < 0) return nullptr;
  CountMatrix& m = stats_.counts;
  if (domain >= m.n_domains) {
    m.n_domains = domain + 1;
    m.c.resize(static_cast<std::size_t>(m.n_domains * n_experts_), 0);
  }
  return m.c.data() + domain * n_experts_;
}

void LayerAccumulator::consume(const ShardView& shard) {
  const LayerView& lv = shard.layers.at(layer_);
  if (lv.experts_i16 != nullptr)
    consume_typed(shard, lv.experts_i16, lv.k);
  else
    consume_typed(shard, lv.experts_i32, lv.k);
  next_token_ += shard.n_tokens;
}

template <typename ExpertT>
void LayerAccumulator::consume_typed(const ShardView& shard, const ExpertT* experts, int64_t k) {
  std::vector<int32_t> slots(static_cast<std::size_t>(k));
  const int64_t n_e = n_experts_;
  int64_t* load = stats_.expert_load.data();
  int64_t* last_expert = last_expert_.data();
  int32_t* run_expert = run_expert_.data();
  int64_t* last_group = last_group_.data();
  int32_t* run_group = run_group_.data();
  for (int64_t t = 0; t < shard.n_tokens; ++t) {
    const int64_t gt = next_token_ + t;  // global token index
    const bool continues = shard.positions[t] != 0;
    int64_t n_valid = 0;
    for (int64_t s = 0; s < k; ++s) {
      const int32_t e = experts[t * k + s];
      if (e == -1) continue;
      if (e < -1 || e >= n_e)
        throw TraceError(shard.label + ": layers." + std::to_string(layer_) + ".experts: expert id " +
                         std::to_string(e) + " at token " + std::to_string(t) + " slot " + std::to_string(s) +
                         " is outside [-1, " + std::to_string(n_e) + ")");
      if (seen_[e] == gt)
        throw TraceError(shard.label + ": layers." + std::to_string(layer_) + ".experts: expert " + std::to_string(e) +
                         " is listed twice for token " + std::to_string(t));
      seen_[e] = gt;
      slots[n_valid++] = e;
    }
    if (n_valid == 0) {  // unrouted: contributes nothing and breaks every window
      prev_routed_run_ = 0;
      continue;
    }
    ++stats_.routed_tokens;
    stats_.assignments += n_valid;
    const int64_t routed_run = (continues && prev_routed_run_ > 0) ? prev_routed_run_ + 1 : 1;
    prev_routed_run_ = routed_run;

    // Span runs are updated without data-dependent branches (they mispredicted half the time):
    // run = 1 + run_before if the span continues from token t-1, else 1.
    int64_t* row = domain_row(shard.domain_ids[t]);
    const int32_t cont = continues ? 1 : 0;
    int32_t max_run = 0;
    for (int64_t i = 0; i < n_valid; ++i) {
      const int32_t e = slots[i];
      ++load[e];
      if (row != nullptr) ++row[e];
      const int32_t run = (cont & static_cast<int32_t>(last_expert[e] == gt - 1)) * run_expert[e] + 1;
      run_expert[e] = run;
      last_expert[e] = gt;
      max_run = std::max(max_run, run);
    }

    int32_t max_group_run = 0;
    if (group_size_ > 0) {
      for (int64_t i = 0; i < n_valid; ++i) {
        const int32_t g = group_of_[slots[i]];
        const int64_t last = last_group[g];
        const int32_t fresh = (cont & static_cast<int32_t>(last == gt - 1)) * run_group[g] + 1;
        const int32_t run = last == gt ? run_group[g] : fresh;  // a second slot in the same group
        run_group[g] = run;
        last_group[g] = gt;
        max_group_run = std::max(max_group_run, run);
      }
    }
    for (std::size_t i = 0; i < kNgramLengths.size(); ++i) {
      const int n = kNgramLengths[i];
      if (routed_run < n) continue;
      ++stats_.windows[i];
      stats_.held[i] += max_run >= n;
      stats_.held_group[i] += max_group_run >= n;
    }
  }
  rss_.consume(shard, experts, k);  // after the checks above: ids are valid here
}

LayerStats LayerAccumulator::finish() {
  stats_.rss = rss_.finish();
  return std::move(stats_);
}

}  // namespace moetb
