// One pass per (shard, layer) over the [T, K] expert ids: counts for RS/NER/DI/purity,
// load, N-gram windows (a window of n tokens is held if some expert's current span
// covers all n), and (token id, expert) keys for RSS. See metrics.md §1-7. With blocks
// set, the cumulative counts are copied at each block start (no work in the inner loop).
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

void LayerAccumulator::set_blocks(int64_t total_tokens, int n_blocks) {
  if (n_blocks < 2) return;
  n_blocks_ = n_blocks;
  total_tokens_ = total_tokens;
  next_boundary_ = total_tokens_ / n_blocks_;  // start of block 1 (b * T / B, T far below 2^63 / B)
}

void LayerAccumulator::snapshot() {
  BlockCounts c;
  c.counts = stats_.counts.c;
  c.expert_load = stats_.expert_load;
  c.routed_tokens = stats_.routed_tokens;
  c.assignments = stats_.assignments;
  c.windows = stats_.windows;
  c.held = stats_.held;
  c.held_group = stats_.held_group;
  cumulative_.push_back(std::move(c));
  const auto b = static_cast<int64_t>(cumulative_.size()) + 1;
  next_boundary_ = b < n_blocks_ ? b * total_tokens_ / n_blocks_ : -1;
}

void LayerAccumulator::consume(const ShardView& shard) { consume(shard, shard.layers.at(layer_)); }

void LayerAccumulator::consume(const ShardView& shard, const LayerView& lv) {
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
    while (gt == next_boundary_) snapshot();
    const bool continues = shard.positions[t] != 0;
    int64_t n_valid = 0;
    for (int64_t s = 0; s < k; ++s) {
      const int32_t e = experts[t * k + s];
      if (e == -1) continue;
      if (e < -1 || e >= n_e)
        throw TraceError(shard.label + ": layers." + std::to_string(layer_) + ".experts: expert id " +
                         std::to_string(e) + " at token " + std::to_string(shard.first_token + t) + " slot " +
                         std::to_string(s) + " is outside [-1, " + std::to_string(n_e) + ")");
      if (seen_[e] == gt)
        throw TraceError(shard.label + ": layers." + std::to_string(layer_) + ".experts: expert " + std::to_string(e) +
                         " is listed twice for token " + std::to_string(shard.first_token + t));
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

namespace {
// a - b element-wise, b shorter or equal (missing entries are 0).
std::vector<int64_t> minus(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::vector<int64_t> out = a;
  for (std::size_t i = 0; i < b.size() && i < out.size(); ++i) out[i] -= b[i];
  return out;
}
BlockCounts block_diff(const BlockCounts& end, const BlockCounts& start) {
  BlockCounts d;
  d.counts = minus(end.counts, start.counts);
  d.expert_load = minus(end.expert_load, start.expert_load);
  d.routed_tokens = end.routed_tokens - start.routed_tokens;
  d.assignments = end.assignments - start.assignments;
  for (std::size_t i = 0; i < d.windows.size(); ++i) {
    d.windows[i] = end.windows[i] - start.windows[i];
    d.held[i] = end.held[i] - start.held[i];
    d.held_group[i] = end.held_group[i] - start.held_group[i];
  }
  return d;
}
}  // namespace

LayerStats LayerAccumulator::finish() {
  stats_.rss = rss_.finish(n_blocks_);
  if (n_blocks_ >= 2) {
    while (cumulative_.size() + 1 < static_cast<std::size_t>(n_blocks_)) snapshot();  // fewer tokens than announced
    snapshot();  // the totals, as the end of the last block
    BlockCounts start;
    for (const BlockCounts& end : cumulative_) {
      stats_.blocks.push_back(block_diff(end, start));
      start = end;
    }
    cumulative_.clear();
  }
  return std::move(stats_);
}

LayerStats stats_without_block(const LayerStats& stats, std::size_t b) {
  LayerStats out;
  const BlockCounts& blk = stats.blocks.at(b);
  out.counts.n_domains = stats.counts.n_domains;
  out.counts.n_experts = stats.counts.n_experts;
  out.counts.c = minus(stats.counts.c, blk.counts);
  out.expert_load = minus(stats.expert_load, blk.expert_load);
  out.routed_tokens = stats.routed_tokens - blk.routed_tokens;
  out.assignments = stats.assignments - blk.assignments;
  for (std::size_t i = 0; i < out.windows.size(); ++i) {
    out.windows[i] = stats.windows[i] - blk.windows[i];
    out.held[i] = stats.held[i] - blk.held[i];
    out.held_group[i] = stats.held_group[i] - blk.held_group[i];
  }
  out.has_groups = stats.has_groups;
  out.rss.weighted_overlap_sum = stats.rss.weighted_overlap_sum;
  out.rss.occurrences = stats.rss.occurrences;
  return out;
}

LayerStats stats_without_id_group(const LayerStats& stats, std::size_t b) {
  LayerStats out;
  const RssCounter::Sums& r = stats.rss;
  const std::size_t n_e = stats.expert_load.size();
  out.expert_load = stats.expert_load;
  for (std::size_t e = 0; e < n_e; ++e) out.expert_load[e] -= r.group_load.at(b * n_e + e);
  out.routed_tokens = stats.routed_tokens - r.group_routed.at(b);
  out.assignments = stats.assignments - r.group_assignments.at(b);
  out.rss.weighted_overlap_sum = r.weighted_overlap_sum - r.group_overlap.at(b);
  out.rss.occurrences = r.occurrences - r.group_occurrences.at(b);
  return out;
}

}  // namespace moetb
