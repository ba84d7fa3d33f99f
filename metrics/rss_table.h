// Per-(token id, expert) occurrence table for the Routing Stiffness Score (metrics.md §4).
// Keys (token id, expert) are gathered per chunk, radix-sorted, run-length encoded and
// merged into one sorted table, so memory grows with distinct pairs, not with tokens,
// and every pass is sequential (a hash map is 5-10x slower at 10^8 random inserts).
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

namespace moetb {

class RssTable {
 public:
  explicit RssTable(int64_t num_experts);
  // One routed occurrence of token id `v` with its valid experts.
  void add_occurrence(int32_t token_id) { keys_.push_back(key(token_id, sentinel_)); maybe_flush(); }
  void add_assignment(int32_t token_id, int32_t expert) { keys_.push_back(key(token_id, static_cast<uint32_t>(expert))); }

  struct Sums {
    double weighted_overlap_sum = 0;  // sum over ids with n_v >= 2 of (sum_e c^2 - sum_e c) / (n_v - 1)
    int64_t occurrences = 0;          // sum of n_v over ids with n_v >= 2
  };
  Sums finish();  // flushes pending keys and folds the table into the two sums
  std::size_t distinct_pairs() const { return table_keys_.size(); }

 private:
  uint64_t key(int32_t v, uint32_t e) const { return (static_cast<uint64_t>(static_cast<uint32_t>(v)) << expert_bits_) | e; }
  void maybe_flush() {
    if (keys_.size() >= flush_at_) flush();
  }
  void flush();

  uint32_t sentinel_;  // = num_experts: marks an occurrence, sorts after the id's experts
  int expert_bits_;
  std::size_t flush_at_;
  std::vector<uint64_t> keys_, scratch_;
  std::vector<uint64_t> table_keys_;
  std::vector<uint32_t> table_counts_;
};

// LSD radix sort of 64-bit keys (11-bit digits; digits equal in every key are skipped).
void radix_sort_keys(std::vector<uint64_t>& keys, std::vector<uint64_t>& scratch);

}  // namespace moetb
