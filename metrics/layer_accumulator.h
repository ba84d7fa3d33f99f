// Streaming state of one MoE layer: consumes trace shards in token order and keeps
// only what the metrics need (domain x expert counts, expert load, N-gram window
// counters, the RSS table), so memory does not grow with the number of tokens.
// Checks every expert id (range, duplicates) in the same pass. Optionally splits the
// counts into contiguous token blocks for a delete-one-block jackknife (moetb compare).
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "metrics/routing_metrics.h"
#include "metrics/rss_table.h"
#include "metrics/trace.h"

namespace moetb {

constexpr std::array<int, 3> kNgramLengths = {2, 4, 10};  // metrics.md §5

// The additive counts of one contiguous block of tokens (a window counts in the block of its last token).
struct BlockCounts {
  std::vector<int64_t> counts;        // [n_domains, E], n_domains as of the block's end (shorter rows = 0)
  std::vector<int64_t> expert_load;   // [E]
  int64_t routed_tokens = 0, assignments = 0;
  std::array<int64_t, 3> windows{}, held{}, held_group{};
};

struct LayerStats {
  CountMatrix counts;                 // C[d, e] over labelled tokens
  std::vector<int64_t> expert_load;   // [E] assignments of all tokens
  int64_t routed_tokens = 0, assignments = 0;
  RssCounter::Sums rss;
  std::array<int64_t, 3> windows{}, held{}, held_group{};
  bool has_groups = false;
  std::vector<BlockCounts> blocks;    // [n_blocks] only after set_blocks(); sum = the totals above
};

// One jackknife replicate: the stats with token block b left out (`blocks` and the RSS group
// sums of the result are empty) ...
LayerStats stats_without_block(const LayerStats& stats, std::size_t b);
// ... and, for RSS, the load and RSS sums with the ids of token-id group b left out (the RSS
// numerator and its chance level must lose the same occurrences, or their shared noise no
// longer cancels); only expert_load, routed_tokens, assignments and rss are set.
LayerStats stats_without_id_group(const LayerStats& stats, std::size_t b);

class LayerAccumulator {
 public:
  // ne_groups: G for ne_group (experts in G blocks of E/G ids); 0 or E % G != 0 disables it.
  // min/max_token_id: the range of token ids in the whole trace (sizes the RSS table).
  LayerAccumulator(int layer, int64_t num_experts, int ne_groups, int64_t min_token_id, int64_t max_token_id);
  // Splits tokens [0, total_tokens) into n_blocks contiguous blocks (and the RSS ids into
  // n_blocks hashed groups); call before the first consume(). n_blocks < 2 = off.
  void set_blocks(int64_t total_tokens, int n_blocks);
  void consume(const ShardView& shard);
  // The same with this layer's view given (shard.layers is not read): O(1) in the number of layers.
  void consume(const ShardView& tokens, const LayerView& layer);
  LayerStats finish();

 private:
  template <typename ExpertT>
  void consume_typed(const ShardView& shard, const ExpertT* experts, int64_t k);
  int64_t* domain_row(int32_t domain);
  void snapshot();  // cumulative counts at a block boundary

  int layer_;
  int64_t n_experts_;
  int64_t group_size_ = 0;  // experts per ne_group block, 0 = off
  int64_t next_token_ = 0;  // global index of the next token across shards
  int64_t prev_routed_run_ = 0;
  LayerStats stats_;
  RssCounter rss_;
  std::vector<int64_t> seen_, last_expert_, last_group_;  // global token stamps
  std::vector<int32_t> run_expert_, run_group_;  // run lengths of the current spans
  std::vector<int32_t> group_of_;                 // [E] ne_group block of each expert (no division in the loop)
  int n_blocks_ = 0;
  int64_t total_tokens_ = 0, next_boundary_ = -1;  // global token index of the next block start
  std::vector<BlockCounts> cumulative_;           // counts at each block start after the first
};

}  // namespace moetb
