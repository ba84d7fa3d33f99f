// Fast paths vs the slow reference (reference_metrics.h): the whole metric suite, the JSON,
// expert paths and router saturation on 30+ random small traces streamed as 1-3 shards
// (sequences crossing shard boundaries, int16/int32 experts), plus radix sort and RssCounter.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "metrics/expert_paths.h"
#include "metrics/rss_table.h"
#include "metrics/trace_compare.h"
#include "metrics/trace_metrics.h"
#include "tests/core/reference_metrics.h"

namespace {

using nlohmann::json;
using moetb::TraceData;
constexpr double kTol = 1e-9;

// Serves consecutive slices [cuts[i], cuts[i+1]) of a TraceData as separate shards.
class SlicedSource : public moetb::ShardSource {
 public:
  SlicedSource(const TraceData& tr, std::vector<int64_t> cuts, bool i16) : tr_(tr), cuts_(std::move(cuts)), i16_(i16) {
    if (i16_)
      for (const auto& layer : tr_.experts) e16_.emplace_back(layer.begin(), layer.end());
  }
  const moetb::TraceMeta& meta() const override { return tr_.meta_data; }
  int n_layers() const override { return tr_.n_layers(); }
  std::size_t n_shards() const override { return cuts_.size() - 1; }
  moetb::ShardView shard(std::size_t i) const override {
    const int64_t b = cuts_[i];
    moetb::ShardView v;
    v.label = "slice" + std::to_string(i);
    v.n_tokens = cuts_[i + 1] - b;
    v.token_ids = tr_.token_ids.data() + b;
    v.positions = tr_.positions.data() + b;
    v.domain_ids = tr_.domain_ids.data() + b;
    for (std::size_t l = 0; l < tr_.experts.size(); ++l) {
      moetb::LayerView lv;
      lv.k = tr_.k[l];
      if (i16_)
        lv.experts_i16 = e16_[l].data() + b * lv.k;
      else
        lv.experts_i32 = tr_.experts[l].data() + b * lv.k;
      v.layers.push_back(lv);
    }
    return v;
  }

 private:
  const TraceData& tr_;
  std::vector<int64_t> cuts_;
  bool i16_;
  std::vector<std::vector<int16_t>> e16_;
};

int uni(std::mt19937_64& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
bool coin(std::mt19937_64& rng, double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }

// Random small trace: structured routing (domain preference, stiff ids, span reuse),
// -1 padding, unrouted tokens, unlabelled tokens, repeated ids, several sequences.
TraceData random_trace(uint64_t seed) {
  std::mt19937_64 rng(seed);
  TraceData tr;
  const int E = uni(rng, 2, 12), L = uni(rng, 1, 3), D = uni(rng, 1, 4);
  const int T = coin(rng, 0.1) ? uni(rng, 1, 6) : uni(rng, 20, 160), vocab = uni(rng, 3, 20);
  const bool big_ids = coin(rng, 0.3), unlabelled = coin(rng, 0.1);
  tr.meta_data.num_experts = E;
  tr.meta_data.top_k = uni(rng, 1, 4);
  if (coin(rng, 0.5)) {
    const int n_names = D + uni(rng, 0, 1);
    for (int d = 0; d < n_names; ++d) tr.meta_data.domain_names.push_back("dom" + std::to_string(d));
  }
  int pos = coin(rng, 0.3) ? 7 : 0, seq_left = uni(rng, 1, 14), seq_dom = uni(rng, -1, D - 1);
  for (int t = 0; t < T; ++t) {
    if (seq_left-- == 0) {
      pos = 0;
      seq_left = (coin(rng, 0.3) ? uni(rng, 10, 30) : uni(rng, 1, 14)) - 1;
      seq_dom = uni(rng, -1, D - 1);
    }
    tr.positions.push_back(pos++);
    const int v = uni(rng, 0, vocab - 1);
    tr.token_ids.push_back(big_ids ? 2147483647 - 977 * v : v);
    tr.domain_ids.push_back(unlabelled ? -1 : coin(rng, 0.1) ? uni(rng, -1, D - 1) : seq_dom);
  }
  for (int l = 0; l < L; ++l) {
    const int K = uni(rng, 1, 4), kmax = std::min(K, E);
    tr.k.push_back(K);
    std::vector<std::vector<int>> pref(static_cast<std::size_t>(D));
    for (auto& p : pref) {
      const int n_pref = uni(rng, 1, E);
      for (int i = 0; i < n_pref; ++i) p.push_back(uni(rng, 0, E - 1));
    }
    std::map<int, std::vector<int>> fixed;  // stiff token ids
    const double alpha = std::uniform_real_distribution<double>(0, 1)(rng);
    std::vector<int> prev;
    std::vector<int32_t> ex;
    for (int t = 0; t < T; ++t) {
      std::vector<int> set;
      const int v = tr.token_ids[static_cast<std::size_t>(t)], d = tr.domain_ids[static_cast<std::size_t>(t)];
      if (coin(rng, 0.08)) {
        // unrouted: no valid slot
      } else if (coin(rng, 0.3) && !prev.empty()) {
        set = prev;
      } else if (coin(rng, 0.3) && fixed.count(v)) {
        set = fixed[v];
      } else {
        const int m = uni(rng, 1, kmax);
        while (static_cast<int>(set.size()) < m) {
          const auto& p = pref[static_cast<std::size_t>(std::max(d, 0))];
          const int e = coin(rng, alpha) ? p[static_cast<std::size_t>(uni(rng, 0, static_cast<int>(p.size()) - 1))]
                                         : uni(rng, 0, E - 1);
          if (std::find(set.begin(), set.end(), e) == set.end()) set.push_back(e);
        }
        if (!fixed.count(v) || coin(rng, 0.2)) fixed[v] = set;
      }
      if (!set.empty()) prev = set;
      std::vector<int32_t> slots(static_cast<std::size_t>(K), -1);
      std::vector<int> where(static_cast<std::size_t>(K));
      std::iota(where.begin(), where.end(), 0);
      std::shuffle(where.begin(), where.end(), rng);
      for (std::size_t i = 0; i < set.size(); ++i) slots[static_cast<std::size_t>(where[i])] = set[i];
      ex.insert(ex.end(), slots.begin(), slots.end());
    }
    tr.experts.push_back(ex);
  }
  return tr;
}

std::vector<int64_t> random_cuts(std::mt19937_64& rng, int64_t T) {
  const int n = uni(rng, 1, 3);
  std::vector<int64_t> cuts = {0, T};
  for (int i = 1; i < n; ++i) cuts.push_back(std::uniform_int_distribution<int64_t>(0, T)(rng));  // may be empty
  std::sort(cuts.begin(), cuts.end());
  return cuts;
}

bool matches(const json& j, const moetb_ref::Opt& v) {
  if (!v) return j.is_null();
  return j.is_number() && std::isfinite(*v) && std::fabs(j.get<double>() - *v) <= kTol;
}

void flatten(const json& j, const std::string& prefix, std::map<std::string, json>* out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    (*out)[prefix] = j;
  }
}

// Compares a flattened JSON object against reference scalars: same keys, equal values.
void check_scalars(const json& obj, const std::map<std::string, moetb_ref::Opt>& want, const std::string& where) {
  std::map<std::string, json> got;
  flatten(obj, "", &got);
  for (const char* skip : {"layer", "rs_per_domain", "di_pairs"}) got.erase(skip);
  for (auto it = got.begin(); it != got.end();) it = it->first.rfind("rs_per_domain.", 0) == 0 ? got.erase(it) : std::next(it);
  std::vector<std::string> kg, kw;
  for (const auto& kv : got) kg.push_back(kv.first);
  for (const auto& kv : want) kw.push_back(kv.first);
  INFO(where);
  CHECK(kg == kw);
  for (const auto& [k, v] : want) {
    if (!got.count(k)) continue;
    INFO(where << " key " << k << ": library " << got[k].dump() << ", reference "
               << (v ? json(*v).dump() : std::string("null")));
    CHECK(matches(got[k], v));
  }
}

struct Case {
  TraceData tr;
  moetb::MetricsOptions opt;
  std::optional<std::vector<std::vector<int>>> groups;  // the effective reference
  std::vector<int64_t> cuts;
  bool i16 = false;
};

Case random_case(uint64_t seed) {
  Case c;
  c.tr = random_trace(seed);
  std::mt19937_64 rng(seed * 7919 + 1);
  const int E = static_cast<int>(c.tr.meta_data.num_experts);
  if (coin(rng, 0.7)) {
    std::vector<std::vector<int>> g(static_cast<std::size_t>(uni(rng, 0, 5)));
    for (auto& grp : g) {
      std::vector<int> all(static_cast<std::size_t>(E));
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng);
      grp.assign(all.begin(), all.begin() + uni(rng, 0, std::min(E, 3)));
    }
    c.groups = g;
    if (coin(rng, 0.5)) c.tr.meta_data.reference_groups = g; else c.opt.reference_groups = g;
  }
  const int gs[] = {0, 1, 2, 3, 4, 5, 8};
  c.opt.ne_groups = gs[uni(rng, 0, 6)];
  c.opt.threads = uni(rng, 1, 2);
  c.cuts = random_cuts(rng, static_cast<int64_t>(c.tr.token_ids.size()));
  c.i16 = coin(rng, 0.4);
  return c;
}

}  // namespace

TEST_CASE("every metric matches the slow reference on random sharded traces", "[metrics][reference]") {
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    INFO("seed " << seed);
    Case c = random_case(seed);
    const SlicedSource src(c.tr, c.cuts, c.i16);
    const moetb::TraceMetrics m = moetb::compute_trace_metrics(src, c.opt);
    const json j = moetb::metrics_to_json(m);
    const moetb_ref::Result r = moetb_ref::trace_ref(c.tr, c.opt.ne_groups, c.groups);

    // streaming through 1-3 shards gives exactly the single-shard answer
    CHECK(moetb::metrics_to_json(moetb::compute_trace_metrics(c.tr, c.opt)) == j);

    CHECK(j["format"] == "moetb-metrics/1");
    CHECK(j["trace"]["tokens"] == r.tokens);
    CHECK(j["trace"]["layers"] == r.layers.size());
    CHECK(j["trace"]["num_experts"] == c.tr.meta_data.num_experts);
    CHECK(j["trace"]["domains"] == json(r.domains));
    REQUIRE(j["layers"].size() == r.layers.size());
    for (std::size_t l = 0; l < r.layers.size(); ++l) {
      const json& jl = j["layers"][l];
      const moetb_ref::Layer& rl = r.layers[l];
      const std::string where = "layer " + std::to_string(l);
      CHECK(jl["layer"] == l);
      check_scalars(jl, moetb_ref::flatten_layer(rl), where);
      REQUIRE(jl["rs_per_domain"].size() == r.domains.size());
      REQUIRE(jl["di_pairs"].size() == r.domains.size());
      for (std::size_t d = 0; d < r.domains.size(); ++d) {
        auto it = rl.rs.per_domain.find(static_cast<int>(d));
        INFO(where << " domain " << d);
        CHECK(matches(jl["rs_per_domain"][r.domains[d]], it == rl.rs.per_domain.end() ? moetb_ref::Opt() : it->second));
        for (std::size_t d2 = 0; d2 < r.domains.size(); ++d2) {
          auto pt = rl.di.pairs.find({static_cast<int>(d), static_cast<int>(d2)});
          INFO("di pair " << d << "," << d2);
          CHECK(matches(jl["di_pairs"][d][d2], pt == rl.di.pairs.end() ? moetb_ref::Opt() : moetb_ref::Opt(pt->second)));
        }
      }
    }
    check_scalars(j["summary"], moetb_ref::summary_ref(r), "summary");
    REQUIRE(j["per_domain"].size() == r.domains.size());
    for (std::size_t d = 0; d < r.domains.size(); ++d) {
      double sum = 0;
      int n = 0;
      for (const auto& rl : r.layers) {
        auto it = rl.rs.per_domain.find(static_cast<int>(d));
        if (it != rl.rs.per_domain.end() && it->second) { sum += *it->second; ++n; }
      }
      const json& pd = j["per_domain"][r.domains[d]];
      CHECK(pd["tokens"] == r.domain_tokens[d]);
      CHECK(matches(pd["rs"], n ? moetb_ref::Opt(sum / n) : std::nullopt));
    }

    // expert paths
    for (double tau : {0.25, 0.5, 0.75, 1.0}) {
      const json paths = moetb::expert_paths_json(m, tau);
      for (std::size_t d = 0; d < r.domains.size(); ++d)
        for (std::size_t l = 0; l < r.layers.size(); ++l) {
          INFO("tau " << tau << " domain " << d << " layer " << l);
          CHECK(paths[r.domains[d]][l] == json(moetb_ref::path_ref(r.layers[l].counts, static_cast<int>(d), tau)));
        }
    }
  }
}

TEST_CASE("router saturation matches the reference across differently cut shards", "[metrics][reference]") {
  for (uint64_t seed = 100; seed < 130; ++seed) {
    INFO("seed " << seed);
    std::mt19937_64 rng(seed);
    const TraceData a = random_trace(seed);
    TraceData b = random_trace(seed);  // same tokens; reroute some slots (and drop some layers)
    const int E = static_cast<int>(b.meta_data.num_experts);
    for (auto& layer : b.experts) {
      const std::size_t k = layer.size() / a.token_ids.size();
      for (std::size_t i = 0; i < layer.size(); ++i) {
        if (!coin(rng, 0.3)) continue;
        const int32_t e = coin(rng, 0.3) ? -1 : uni(rng, 0, E - 1);
        bool dup = false;  // keep each token's experts distinct
        for (std::size_t s = i - i % k; s < i - i % k + k; ++s) dup |= e >= 0 && layer[s] == e;
        if (!dup) layer[i] = e;
      }
    }
    if (b.experts.size() > 1 && coin(rng, 0.5)) { b.experts.pop_back(); b.k.pop_back(); }
    const SlicedSource sa(a, random_cuts(rng, static_cast<int64_t>(a.token_ids.size())), coin(rng, 0.5));
    const SlicedSource sb(b, random_cuts(rng, static_cast<int64_t>(b.token_ids.size())), coin(rng, 0.5));
    const auto got = moetb::router_saturation(sa, sb);
    const auto want = moetb_ref::saturation_ref(a, b);
    REQUIRE(got.size() == want.size());
    for (std::size_t l = 0; l < got.size(); ++l) {
      INFO("layer " << l);
      CHECK(matches(got[l] ? json(*got[l]) : json(nullptr), want[l]));
    }
    const auto self = moetb::router_saturation(sa, sa);
    for (const auto& s : self) CHECK((!s || std::fabs(*s - 1.0) <= kTol));
  }
}

TEST_CASE("a layer subset and any thread count give the same per-layer numbers", "[metrics][reference]") {
  for (uint64_t seed = 200; seed < 210; ++seed) {
    Case c = random_case(seed);
    const json all = moetb::metrics_to_json(moetb::compute_trace_metrics(c.tr, c.opt));
    moetb::MetricsOptions o = c.opt;
    o.threads = 3;
    o.layers = {c.tr.n_layers() - 1, 0};
    const json sub = moetb::metrics_to_json(moetb::compute_trace_metrics(c.tr, o));
    REQUIRE(sub["layers"].size() == 2);
    CHECK(sub["layers"][0] == all["layers"][static_cast<std::size_t>(c.tr.n_layers() - 1)]);
    CHECK(sub["layers"][1] == all["layers"][0]);
  }
}

TEST_CASE("radix_sort_keys agrees with std::sort", "[metrics][reference]") {
  std::mt19937_64 rng(42);
  std::vector<uint64_t> scratch;
  for (int trial = 0; trial < 60; ++trial) {
    const std::size_t n = trial < 4 ? static_cast<std::size_t>(trial) : static_cast<std::size_t>(uni(rng, 2, 5000));
    std::vector<uint64_t> keys(n);
    const int mode = trial % 5;
    for (auto& k : keys) {
      const uint64_t x = rng();
      if (mode == 0) k = x;                                    // full 64-bit
      else if (mode == 1) k = x >> 60 << 60 | 0xABCDEF;        // only the top digit varies
      else if (mode == 2) k = x % 7;                           // many duplicates
      else if (mode == 3) k = ~uint64_t{0} - (x % 3000);       // near the top of the range
      else k = (x & 0xFFFFFFFF00000000ull) | (x % 13);         // two varying bands
    }
    std::vector<uint64_t> want = keys;
    std::sort(want.begin(), want.end());
    moetb::radix_sort_keys(keys, scratch);
    INFO("trial " << trial << " n " << n);
    CHECK(keys == want);
  }
}

TEST_CASE("RssCounter sums match counting by hand, dense and sparse, across shards", "[metrics][reference]") {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    INFO("trial " << trial);
    const int E = uni(rng, 1, 70), K = uni(rng, 1, 5), T = uni(rng, 0, 300);
    TraceData tr;
    tr.meta_data.num_experts = E;
    tr.k = {K};
    tr.experts.resize(1);
    const int id_mode = trial % 3;  // 0: small ids, 1: huge ids, 2: some negative ids
    std::map<int32_t, std::map<int, int64_t>> c;
    std::map<int32_t, int64_t> nv;
    for (int t = 0; t < T; ++t) {
      int32_t v = uni(rng, 0, 12);
      if (id_mode == 1 && coin(rng, 0.3)) v = 2147483647 - uni(rng, 0, 3);
      if (id_mode == 2 && coin(rng, 0.3)) v = -uni(rng, 1, 4);
      tr.token_ids.push_back(v);
      tr.positions.push_back(t % 5);
      tr.domain_ids.push_back(-1);
      std::vector<int32_t> slots(static_cast<std::size_t>(K), -1);
      for (int j = 0; j < K; ++j) {
        const int32_t e = coin(rng, 0.3) ? -1 : uni(rng, 0, E - 1);
        if (std::find(slots.begin(), slots.end(), e) == slots.end()) slots[static_cast<std::size_t>(j)] = e;
      }
      bool routed = false;
      for (int32_t e : slots)
        if (e >= 0) { ++c[v][e]; routed = true; }
      nv[v] += routed;
      tr.experts[0].insert(tr.experts[0].end(), slots.begin(), slots.end());
    }
    double want_sum = 0;
    int64_t want_occ = 0;
    for (const auto& [v, n] : nv) {
      if (n < 2) continue;
      double s2 = 0, s1 = 0;
      for (const auto& [e, x] : c[v]) { s2 += double(x) * double(x); s1 += double(x); }
      want_sum += (s2 - s1) / double(n - 1);
      want_occ += n;
    }
    int64_t lo = 0, hi = -1;
    for (int32_t v : tr.token_ids) { lo = std::min<int64_t>(lo, v); hi = std::max<int64_t>(hi, v); }
    const SlicedSource src(tr, random_cuts(rng, T), coin(rng, 0.5));
    for (int force_sparse = 0; force_sparse < 2; ++force_sparse) {
      moetb::RssCounter counter(E, force_sparse ? -1 : lo, hi);
      CHECK(counter.dense() == (force_sparse == 0 && id_mode == 0 && T > 0));
      for (std::size_t sh = 0; sh < src.n_shards(); ++sh) {
        const moetb::ShardView v = src.shard(sh);
        if (v.layers[0].experts_i16) counter.consume(v, v.layers[0].experts_i16, K);
        else counter.consume(v, v.layers[0].experts_i32, K);
      }
      const auto sums = counter.finish();
      INFO("force_sparse " << force_sparse);
      CHECK(sums.occurrences == want_occ);
      CHECK(std::fabs(sums.weighted_overlap_sum - want_sum) <= kTol * std::max(1.0, want_sum));
    }
  }
}

TEST_CASE("RSS over more than 8M sparse keys (chunks merged) matches direct counts", "[metrics][reference]") {
  // 3M tokens x (2 experts + 1 occurrence key) = 9M keys > the 8M flush threshold of sparse
  // mode (ids offset by 1e8 so the dense table would exceed 2^26 cells).
  const int64_t T = 3'000'000, E = 8, V = 500;
  const auto start = std::chrono::steady_clock::now();
  TraceData tr;
  tr.meta_data.num_experts = E;
  tr.meta_data.top_k = 2;
  tr.k = {2};
  tr.experts.resize(1);
  tr.token_ids.resize(T);
  tr.positions.resize(T);
  tr.domain_ids.assign(T, -1);
  tr.experts[0].resize(2 * T);
  std::vector<int64_t> c(V * E, 0), nv(V, 0), load(E, 0);
  uint64_t x = 88172645463325252ull;
  for (int64_t t = 0; t < T; ++t) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    const int v = static_cast<int>(x % V);
    const int e0 = static_cast<int>((v + (x >> 20) % 2) % E), e1 = static_cast<int>((e0 + 1 + (x >> 30) % 7) % E);
    tr.token_ids[t] = 100'000'000 + v;
    tr.positions[t] = static_cast<int32_t>(t % 64);
    tr.experts[0][2 * t] = e0;
    tr.experts[0][2 * t + 1] = e1;
    ++c[v * E + e0]; ++c[v * E + e1]; ++nv[v]; ++load[e0]; ++load[e1];
  }
  moetb::MetricsOptions opt;
  opt.threads = 1;
  const auto m = moetb::compute_trace_metrics(tr, opt);
  const auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN("8M-key sparse RSS case took " << elapsed << " s");
  double num = 0, den = 0, o0 = 0;
  for (int v = 0; v < V; ++v) {
    if (nv[v] < 2) continue;
    double s2 = 0;
    for (int e = 0; e < E; ++e) s2 += double(c[v * E + e]) * double(c[v * E + e]) - double(c[v * E + e]);
    num += s2 / (2.0 * double(nv[v] - 1));  // kbar = 2
    den += double(nv[v]);
  }
  for (int e = 0; e < E; ++e) o0 += 2.0 * std::pow(double(load[e]) / (2.0 * T), 2);
  REQUIRE(m.layers[0].rss);
  CHECK(std::fabs(*m.layers[0].rss - (num / den - o0) / (1 - o0)) <= kTol);
  CHECK(m.layers[0].stats.rss.occurrences == T);
}
