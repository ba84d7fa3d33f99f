// Streaming state of one MoE layer: consumes trace shards in token order and keeps
// only what the metrics need (domain x expert counts, expert load, N-gram window
// counters, the RSS table), so memory does not grow with the number of tokens.
// Checks every expert id (range, duplicates) in the same pass.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "metrics/routing_metrics.h"
#include "metrics/rss_table.h"
#include "metrics/trace.h"

namespace moetb {

constexpr std::array<int, 3> kNgramLengths = {2, 4, 10};  // metrics.md §5

struct LayerStats {
  CountMatrix counts;                 // C[d, e] over labelled tokens
  std::vector<int64_t> expert_load;   // [E] assignments of all tokens
  int64_t routed_tokens = 0, assignments = 0;
  RssCounter::Sums rss;
  std::array<int64_t, 3> windows{}, held{}, held_group{};
  bool has_groups = false;
};

class LayerAccumulator {
 public:
  // ne_groups: G for ne_group (experts in G blocks of E/G ids); 0 or E % G != 0 disables it.
  // min/max_token_id: the range of token ids in the whole trace (sizes the RSS table).
  LayerAccumulator(int layer, int64_t num_experts, int ne_groups, int64_t min_token_id, int64_t max_token_id);
  void consume(const ShardView& shard);
  LayerStats finish();

 private:
  template <typename ExpertT>
  void consume_typed(const ShardView& shard, const ExpertT* experts, int64_t k);
  int64_t* domain_row(int32_t domain);

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
};

}  // namespace moetb
