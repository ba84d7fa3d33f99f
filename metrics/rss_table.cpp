// RSS occurrence counting, dense and sparse modes (see rss_table.h).
#include "metrics/rss_table.h"

#include <algorithm>
#include <array>
#include <new>

namespace moetb {
namespace {
constexpr std::size_t kMinFlushKeys = std::size_t{1} << 23;  // 8 M keys = 64 MB per chunk
constexpr int kDigitBits = 11;
constexpr std::size_t kBuckets = std::size_t{1} << kDigitBits;
constexpr int kPrefetchAhead = 16;  // tokens
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

namespace {
// Returned dense buffers, per thread (a counter is finished on the thread that used it).
std::vector<std::unique_ptr<RssCounter::DenseScratch>>& scratch_pool() {
  static thread_local std::vector<std::unique_ptr<RssCounter::DenseScratch>> pool;
  return pool;
}
}  // namespace

std::unique_ptr<RssCounter::DenseScratch> RssCounter::take_scratch() {
  auto& pool = scratch_pool();
  if (pool.empty()) return std::make_unique<DenseScratch>();
  std::unique_ptr<DenseScratch> s = std::move(pool.back());
  pool.pop_back();
  return s;
}

RssCounter::~RssCounter() {
  if (dense_buffers_ && dense_buffers_->table_clean) scratch_pool().push_back(std::move(dense_buffers_));
}

RssCounter::RssCounter(int64_t num_experts, int64_t min_token_id, int64_t max_token_id) : n_experts_(num_experts) {
  const int64_t n_ids = max_token_id + 1;
  dense_ = min_token_id >= 0 && n_ids > 0 && n_ids <= kMaxDenseRssCells / std::max<int64_t>(1, num_experts);
  if (dense_) {
    n_ids_ = n_ids;
    dense_buffers_ = take_scratch();
    DenseScratch& d = *dense_buffers_;
    const auto cells = static_cast<std::size_t>(n_ids * num_experts);
    if (d.table.size() < cells) d.table.resize(cells, 0);
    d.occurrences.assign(static_cast<std::size_t>(n_ids), 0);
    d.sum_c2.assign(static_cast<std::size_t>(n_ids), 0);
    d.sum_c.assign(static_cast<std::size_t>(n_ids), 0);
  } else {
    while ((uint64_t{1} << expert_bits_) <= static_cast<uint64_t>(num_experts)) ++expert_bits_;
    flush_at_ = kMinFlushKeys;
  }
}

template <typename ExpertT>
void RssCounter::consume(const ShardView& shard, const ExpertT* experts, int64_t k) {
  if (dense_)
    consume_dense(shard, experts, k);
  else
    consume_sparse(shard, experts, k);
}

template <typename ExpertT>
void RssCounter::consume_dense(const ShardView& shard, const ExpertT* experts, int64_t k) {
  const int64_t n = shard.n_tokens;
  const int32_t* ids = shard.token_ids;
  DenseScratch& d = *dense_buffers_;
  d.table_clean = false;
  uint32_t* const table = d.table.data();
  std::vector<uint32_t>& id_start = d.id_start;
  std::vector<int32_t>& order = d.order;
  // Counting sort of the shard's tokens by id, so that each id's table row is hot.
  id_start.assign(static_cast<std::size_t>(n_ids_ + 1), 0);
  for (int64_t t = 0; t < n; ++t) ++id_start[ids[t] + 1];
  for (int64_t v = 0; v < n_ids_; ++v) id_start[v + 1] += id_start[v];
  order.resize(static_cast<std::size_t>(n));
  for (int64_t t = 0; t < n; ++t) order[id_start[ids[t]]++] = static_cast<int32_t>(t);
  for (int64_t i = 0; i < n; ++i) {
    // Two-stage prefetch: the expert row of a token 2d ahead, then (now cached) the table
    // cells that the token d ahead will increment.
    if (i + 2 * kPrefetchAhead < n) __builtin_prefetch(experts + order[i + 2 * kPrefetchAhead] * k);
    if (i + kPrefetchAhead < n) {
      const int64_t ahead = order[i + kPrefetchAhead];
      const uint32_t* ahead_row = table + static_cast<int64_t>(ids[ahead]) * n_experts_;
      for (int64_t s = 0; s < k; ++s) {
        const int32_t e = experts[ahead * k + s];
        if (e >= 0) __builtin_prefetch(ahead_row + e, 1);
      }
    }
    const int64_t t = order[i];
    const int32_t v = ids[t];
    uint32_t* row = table + static_cast<int64_t>(v) * n_experts_;
    const ExpertT* slots = experts + t * k;
    uint64_t added_c = 0, added_c2 = 0;
    for (int64_t s = 0; s < k; ++s) {
      const int32_t e = slots[s];
      if (e < 0) continue;
      added_c2 += 2 * static_cast<uint64_t>(row[e]++) + 1;  // (c + 1)^2 - c^2
      ++added_c;
    }
    d.occurrences[v] += added_c > 0;
    d.sum_c[v] += added_c;
    d.sum_c2[v] += added_c2;
  }
}

template <typename ExpertT>
void RssCounter::consume_sparse(const ShardView& shard, const ExpertT* experts, int64_t k) {
  const auto sentinel = static_cast<uint32_t>(n_experts_);  // marks an occurrence; sorts after real experts
  for (int64_t t = 0; t < shard.n_tokens; ++t) {
    const int32_t v = shard.token_ids[t];
    bool routed = false;
    for (int64_t s = 0; s < k; ++s) {
      const int32_t e = experts[t * k + s];
      if (e < 0) continue;
      keys_.push_back(key(v, static_cast<uint32_t>(e)));
      routed = true;
    }
    if (routed) keys_.push_back(key(v, sentinel));
    if (keys_.size() >= flush_at_) flush_sparse();
  }
}

void RssCounter::flush_sparse() {
  if (keys_.empty()) return;
  radix_sort_keys(keys_, scratch_);
  std::vector<uint64_t> chunk_keys;
  std::vector<uint32_t> chunk_counts;
  for (std::size_t i = 0; i < keys_.size();) {
    std::size_t j = i + 1;
    while (j < keys_.size() && keys_[j] == keys_[i]) ++j;
    chunk_keys.push_back(keys_[i]);
    chunk_counts.push_back(static_cast<uint32_t>(j - i));
    i = j;
  }
  keys_.clear();
  std::vector<uint64_t> mk;
  std::vector<uint32_t> mc;
  mk.reserve(table_keys_.size() + chunk_keys.size());
  mc.reserve(table_keys_.size() + chunk_keys.size());
  std::size_t a = 0, b = 0;
  while (a < table_keys_.size() || b < chunk_keys.size()) {  // merge two sorted, duplicate-free lists
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
  // Later chunks may be as large as the table: each merge then costs O(1) per key, amortised.
  flush_at_ = std::max(kMinFlushKeys, table_keys_.size());
}

std::size_t RssCounter::id_group(int32_t token_id, int id_groups) {
  // Fibonacci hashing: ids that are contiguous per domain still spread over all groups.
  const uint64_t h = static_cast<uint64_t>(static_cast<uint32_t>(token_id)) * 0x9E3779B97F4A7C15ull;
  return static_cast<std::size_t>((h >> 32) % static_cast<uint64_t>(id_groups));
}

RssCounter::Sums RssCounter::finish(int id_groups) {
  Sums sums;
  const auto n_groups = static_cast<std::size_t>(id_groups >= 2 ? id_groups : 0);
  sums.group_overlap.assign(n_groups, 0.0);
  sums.group_occurrences.assign(n_groups, 0);
  sums.group_routed.assign(n_groups, 0);
  sums.group_assignments.assign(n_groups, 0);
  sums.group_load.assign(n_groups * static_cast<std::size_t>(n_experts_), 0);
  auto add_id = [&](int32_t v, double sum_c, double sum_c2, int64_t n_v) {
    if (n_groups > 0) {
      const std::size_t g = id_group(v, id_groups);
      sums.group_routed[g] += n_v;
      sums.group_assignments[g] += static_cast<int64_t>(sum_c);
    }
    if (n_v < 2) return;
    const double overlap = (sum_c2 - sum_c) / static_cast<double>(n_v - 1);
    sums.weighted_overlap_sum += overlap;
    sums.occurrences += n_v;
    if (id_groups >= 2) {
      const std::size_t g = id_group(v, id_groups);
      sums.group_overlap[g] += overlap;
      sums.group_occurrences[g] += n_v;
    }
  };
  if (dense_) {
    DenseScratch& d = *dense_buffers_;
    for (int64_t v = 0; v < n_ids_; ++v) {
      if (d.sum_c[v] == 0) continue;
      add_id(static_cast<int32_t>(v), static_cast<double>(d.sum_c[v]), static_cast<double>(d.sum_c2[v]),
             d.occurrences[v]);
      uint32_t* row = d.table.data() + v * n_experts_;
      if (n_groups > 0) {
        int64_t* load = sums.group_load.data() + id_group(static_cast<int32_t>(v), id_groups) * n_experts_;
        for (int64_t e = 0; e < n_experts_; ++e) load[e] += row[e];
      }
      std::fill_n(row, n_experts_, 0u);  // leave it all-zero
    }
    d.table_clean = true;
    return sums;
  }
  flush_sparse();
  std::vector<uint64_t>().swap(scratch_);
  std::vector<uint64_t>().swap(keys_);
  const uint64_t expert_mask = (uint64_t{1} << expert_bits_) - 1;
  for (std::size_t i = 0; i < table_keys_.size();) {
    const uint64_t id = table_keys_[i] >> expert_bits_;
    double sum_c = 0, sum_c2 = 0;
    int64_t n_v = 0;
    for (; i < table_keys_.size() && (table_keys_[i] >> expert_bits_) == id; ++i) {
      const double c = table_counts_[i];
      const uint64_t e = table_keys_[i] & expert_mask;
      if (e == static_cast<uint64_t>(n_experts_)) {
        n_v = table_counts_[i];
      } else {
        sum_c += c;
        sum_c2 += c * c;
        if (n_groups > 0)
          sums.group_load[id_group(static_cast<int32_t>(static_cast<uint32_t>(id)), id_groups) * n_experts_ + e] +=
              table_counts_[i];
      }
    }
    add_id(static_cast<int32_t>(static_cast<uint32_t>(id)), sum_c, sum_c2, n_v);
  }
  return sums;
}

template void RssCounter::consume<int16_t>(const ShardView&, const int16_t*, int64_t);
template void RssCounter::consume<int32_t>(const ShardView&, const int32_t*, int64_t);

}  // namespace moetb
