// Per-(token id, expert) occurrence counts for the Routing Stiffness Score (metrics.md §4).
// Memory grows with the token-id space or the distinct (id, expert) pairs, never with T.
// Dense mode (ids in [0, V), V x E <= 2^26): a V x E count table, filled in token-id order
// so each id's row stays in cache, and reused by the next layer on the same thread (only
// the rows it touched are cleared: fresh zero pages per layer serialised the threads on
// page faults).
// Sparse mode (huge or negative ids): keys radix-sorted per chunk, run-length encoded and
// merged into one sorted table. Both are sequential-access designs: a hash map was 5-10x slower.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "metrics/trace.h"

namespace moetb {

constexpr int64_t kMaxDenseRssCells = int64_t{1} << 26;

class RssCounter {
 public:
  // max_token_id: the largest id in the trace; min_token_id < 0 forces sparse mode.
  RssCounter(int64_t num_experts, int64_t min_token_id, int64_t max_token_id);
  ~RssCounter();
  RssCounter(RssCounter&&) noexcept = default;
  RssCounter& operator=(RssCounter&&) noexcept = default;
  // Adds one shard of one layer. Expert ids must already be checked (LayerAccumulator does).
  template <typename ExpertT>
  void consume(const ShardView& shard, const ExpertT* experts, int64_t k);

  struct Sums {
    double weighted_overlap_sum = 0;  // sum over ids with n_v >= 2 of (sum_e c^2 - sum_e c) / (n_v - 1)
    int64_t occurrences = 0;          // sum of n_v over ids with n_v >= 2
    // Split over hashed token-id groups (only when finish() is asked for groups): the two sums
    // above, and the load, routed tokens and assignments of each group's ids (all of them).
    std::vector<double> group_overlap;
    std::vector<int64_t> group_occurrences;
    std::vector<int64_t> group_load;  // [groups, E]
    std::vector<int64_t> group_routed, group_assignments;
  };
  // id_groups >= 2: also split the sums over that many groups of token ids (jackknife clusters).
  Sums finish(int id_groups = 0);
  static std::size_t id_group(int32_t token_id, int id_groups);
  bool dense() const { return dense_; }

  // Dense-mode buffers, taken from a per-thread pool and returned (table all-zero) when done,
  // so consecutive layers on one thread reuse memory instead of faulting in fresh pages.
  struct DenseScratch {
    std::vector<uint32_t> table;        // [n_ids, E] counts c_v(e)
    std::vector<uint32_t> occurrences;  // [n_ids] routed occurrences n_v
    std::vector<uint64_t> sum_c2;       // [n_ids] sum_e c_v(e)^2, kept up to date on every increment
    std::vector<uint64_t> sum_c;        // [n_ids] sum_e c_v(e)
    std::vector<uint32_t> id_start;     // [n_ids + 1] counting-sort scratch
    std::vector<int32_t> order;         // [shard T] tokens in id order
    bool table_clean = true;            // table is all-zero (safe to reuse)
  };

 private:
  template <typename ExpertT>
  void consume_dense(const ShardView& shard, const ExpertT* experts, int64_t k);
  template <typename ExpertT>
  void consume_sparse(const ShardView& shard, const ExpertT* experts, int64_t k);
  void flush_sparse();
  uint64_t key(int32_t v, uint32_t e) const {
    return (static_cast<uint64_t>(static_cast<uint32_t>(v)) << expert_bits_) | e;
  }

  int64_t n_experts_;
  bool dense_ = false;
  // dense mode
  static std::unique_ptr<DenseScratch> take_scratch();
  int64_t n_ids_ = 0;
  std::unique_ptr<DenseScratch> dense_buffers_;
  // sparse mode
  int expert_bits_ = 1;
  std::size_t flush_at_ = 0;
  std::vector<uint64_t> keys_, scratch_, table_keys_;
  std::vector<uint32_t> table_counts_;
};

// LSD radix sort of 64-bit keys (11-bit digits; digits equal in every key are skipped).
void radix_sort_keys(std::vector<uint64_t>& keys, std::vector<uint64_t>& scratch);

}  // namespace moetb
