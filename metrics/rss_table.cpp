// Sorted (token id, expert) count table for RSS: radix sort + run-length + merge.
// See rss_table.h for why it is not a hash map.
#include "metrics/rss_table.h"

#include <algorithm>
#include <array>

namespace moetb {
namespace {
constexpr std::size_t kMinFlushKeys = std::size_t{1} << 23;  // 8 M keys = 64 MB per chunk
constexpr int kDigitBits = 11;
constexpr std::size_t kBuckets = std::size_t{1} << kDigitBits;
}  // namespace

void radix_sort_keys(std::vector<uint64_t>& keys, std::vector<uint64_t>& scratch) {
  const std::size_t n = keys.size();
  if (n < 2) return;
  uint64_t all_or = 0, all_and = ~uint64_t{0};
  for (uint64_t k : keys) {
    all_or |= k;
    all_and &= k;
  }
  const uint64_t varying = all_or ^ all_and;  // bits that differ between some keys
  scratch.resize(n);
  for (int shift = 0; shift < 64; shift += kDigitBits) {
    if (((varying >> shift) & (kBuckets - 1)) == 0) continue;
    std::array<std::size_t, kBuckets> count{};
    for (uint64_t k : keys) ++count[(k >> shift) & (kBuckets - 1)];
    std::size_t sum = 0;
    for (auto& c : count) {
      const std::size_t tmp = c;
      c = sum;
      sum += tmp;
    }
    for (uint64_t k : keys) scratch[count[(k >> shift) & (kBuckets - 1)]++] = k;
    keys.swap(scratch);
  }
}

RssTable::RssTable(int64_t num_experts) : sentinel_(static_cast<uint32_t>(num_experts)), expert_bits_(1) {
  while ((uint64_t{1} << expert_bits_) <= static_cast<uint64_t>(num_experts)) ++expert_bits_;
  flush_at_ = kMinFlushKeys;
}

void RssTable::flush() {
  if (keys_.empty()) return;
  radix_sort_keys(keys_, scratch_);
  // run-length encode the sorted chunk in place of scratch
  std::vector<uint64_t> chunk_keys;
  std::vector<uint32_t> chunk_counts;
  chunk_keys.reserve(keys_.size() / 4 + 1);
  chunk_counts.reserve(keys_.size() / 4 + 1);
  for (std::size_t i = 0; i < keys_.size();) {
    std::size_t j = i + 1;
    while (j < keys_.size() && keys_[j] == keys_[i]) ++j;
    chunk_keys.push_back(keys_[i]);
    chunk_counts.push_back(static_cast<uint32_t>(j - i));
    i = j;
  }
  keys_.clear();
  if (table_keys_.empty()) {
    table_keys_.swap(chunk_keys);
    table_counts_.swap(chunk_counts);
  } else {  // merge two sorted, duplicate-free lists
    std::vector<uint64_t> mk;
    std::vector<uint32_t> mc;
    mk.reserve(table_keys_.size() + chunk_keys.size());
    mc.reserve(table_keys_.size() + chunk_keys.size());
    std::size_t a = 0, b = 0;
    while (a < table_keys_.size() || b < chunk_keys.size()) {
      if (b == chunk_keys.size() || (a < table_keys_.size() && table_keys_[a] < chunk_keys[b])) {
        mk.push_back(table_keys_[a]);
        mc.push_back(table_counts_[a++]);
      } else if (a == table_keys_.size() || chunk_keys[b] < table_keys_[a]) {
        mk.push_back(chunk_keys[b]);
        mc.push_back(chunk_counts[b++]);
      } else {
        mk.push_back(table_keys_[a]);
        mc.push_back(table_counts_[a++] + chunk_counts[b++]);
      }
    }
    table_keys_.swap(mk);
    table_counts_.swap(mc);
  }
  // Later chunks may be as large as the table: merging then costs O(1) per key amortised.
  flush_at_ = std::max(kMinFlushKeys, table_keys_.size());
}

RssTable::Sums RssTable::finish() {
  flush();
  std::vector<uint64_t>().swap(scratch_);
  std::vector<uint64_t>().swap(keys_);
  Sums sums;
  const uint64_t expert_mask = (uint64_t{1} << expert_bits_) - 1;
  std::size_t i = 0;
  while (i < table_keys_.size()) {
    const uint64_t id = table_keys_[i] >> expert_bits_;
    double sum_c = 0, sum_c2 = 0;
    int64_t n_v = 0;
    for (; i < table_keys_.size() && (table_keys_[i] >> expert_bits_) == id; ++i) {
      const double c = table_counts_[i];
      if ((table_keys_[i] & expert_mask) == sentinel_) {
        n_v = table_counts_[i];
      } else {
        sum_c += c;
        sum_c2 += c * c;
      }
    }
    if (n_v >= 2) {
      sums.weighted_overlap_sum += (sum_c2 - sum_c) / static_cast<double>(n_v - 1);
      sums.occurrences += n_v;
    }
  }
  return sums;
}

}  // namespace moetb
