// The two RSS table modes (dense V x E table, sparse sorted pairs) must agree exactly:
// the same trace with token ids shifted out of the dense range gives the same metrics.
// Also checks the sparse path's radix sort against std::sort.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/rng.h"
#include "metrics/rss_table.h"
#include "metrics/trace_metrics.h"
#include "oracle/planted_simulator.h"
#include "oracle/validation.h"

using namespace moetb;

namespace {

TraceData stiff_trace(uint64_t seed) {
  SimConfig c;
  c.n_experts = 16, c.top_k = 3, c.n_domains = 4, c.n_layers = 2, c.alpha = {0.5};
  c.beta = 0.4, c.gamma = 0.2, c.vocab_per_domain = 64, c.n_tokens = 6000, c.seq_len = 50, c.seed = seed;
  return simulate_trace(c);
}

}  // namespace

TEST_CASE("RssCounter picks dense mode only for small non-negative id ranges", "[metrics][rss]") {
  CHECK(RssCounter(128, 0, 150000).dense());
  CHECK_FALSE(RssCounter(128, -1, 150000).dense());
  CHECK_FALSE(RssCounter(128, 0, int64_t{1} << 30).dense());
}

TEST_CASE("dense and sparse RSS tables give identical metrics", "[metrics][rss]") {
  for (uint64_t seed : {1, 2, 3}) {
    const TraceData dense = stiff_trace(seed);
    TraceData negative = dense, huge = dense;
    for (auto& v : negative.token_ids) v = -v - 1;          // negative ids force sparse mode
    for (auto& v : huge.token_ids) v += (1 << 30);          // V x E far above the dense limit
    const nlohmann::json a = metrics_json_of(dense);
    REQUIRE(a["summary"]["rss"].is_number());
    CHECK(a["summary"]["rss"].get<double>() > 0.1);
    // Same counts; only the order of floating-point sums differs between the modes.
    CHECK(max_metric_difference(a, metrics_json_of(negative), {}) <= 1e-12);
    CHECK(max_metric_difference(a, metrics_json_of(huge), {}) <= 1e-12);
  }
}

TEST_CASE("radix_sort_keys sorts like std::sort", "[metrics][rss]") {
  Rng rng(99);
  for (int bits : {3, 17, 40, 64}) {
    std::vector<uint64_t> keys(5000), scratch;
    for (auto& k : keys) k = bits == 64 ? rng.next() : rng.below(uint64_t{1} << bits);
    std::vector<uint64_t> expected = keys;
    std::sort(expected.begin(), expected.end());
    radix_sort_keys(keys, scratch);
    CHECK(keys == expected);
  }
}
