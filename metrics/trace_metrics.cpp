// Orchestrates the metric suite: layer-major streaming (each thread takes one layer through
// every shard in chunks of 256 Ki tokens, giving each chunk's mapped pages back), then
// per-layer formulas (and jackknife replicates if asked), then the JSON of metrics.md
// ("moetb-metrics/1"). Undefined values are null, never NaN.
#include "metrics/trace_metrics.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

namespace moetb {
namespace {

// Runs fn(i) for i in [0, n) on up to `threads` threads; rethrows the first exception.
template <typename Fn>
void parallel_for(int n, int threads, Fn fn) {
  std::atomic<int> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto worker = [&] {
    for (int i = next++; i < n; i = next++) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = n;
      }
    }
  };
  const int n_threads = std::max(1, std::min(threads, n));
  std::vector<std::thread> pool;
  for (int t = 1; t < n_threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

// Tokens streamed between giving mapped pages back: what a pass keeps resident per thread is
// this many tokens of token arrays and expert ids (7 MB at k = 8), whatever the shard size.
constexpr int64_t kChunkTokens = int64_t{1} << 18;

// Tokens [begin, end) of a shard: token arrays and expert ids only (what the accumulators read).
ShardView slice_tokens(const ShardView& v, int64_t begin, int64_t end, bool with_layers = true) {
  ShardView out;
  out.label = v.label;
  out.first_token = v.first_token + begin;
  out.n_tokens = end - begin;
  out.token_ids = v.token_ids + begin;
  out.positions = v.positions + begin;
  out.domain_ids = v.domain_ids + begin;
  if (!with_layers) return out;
  for (const LayerView& l : v.layers) {
    LayerView lv;
    lv.k = l.k;
    if (l.experts_i16 != nullptr) lv.experts_i16 = l.experts_i16 + begin * l.k;
    if (l.experts_i32 != nullptr) lv.experts_i32 = l.experts_i32 + begin * l.k;
    out.layers.push_back(lv);
  }
  return out;
}

// Gives back the token arrays of tokens [begin, end) of shard s (and the expert ids of `layer` if >= 0).
void release_tokens(const ShardSource& trace, std::size_t s, const ShardView& v, int64_t begin, int64_t end,
                    int layer) {
  for (const int32_t* a : {v.token_ids, v.positions, v.domain_ids}) trace.release_range(s, a + begin, a + end);
  if (layer < 0) return;
  const LayerView& l = v.layers.at(static_cast<std::size_t>(layer));
  if (l.experts_i16 != nullptr) trace.release_range(s, l.experts_i16 + begin * l.k, l.experts_i16 + end * l.k);
  if (l.experts_i32 != nullptr) trace.release_range(s, l.experts_i32 + begin * l.k, l.experts_i32 + end * l.k);
}

nlohmann::json opt_json(const Opt& v) {
  if (!v || !std::isfinite(*v)) return nullptr;
  return *v;
}

nlohmann::json ngram_json(const std::array<Opt, 3>& values) {
  nlohmann::json j = nlohmann::json::object();
  for (std::size_t i = 0; i < kNgramLengths.size(); ++i) j[std::to_string(kNgramLengths[i])] = opt_json(values[i]);
  return j;
}

// RSS (metrics.md §4) from the occurrence sums and the load: (O - O_0) / (1 - O_0).
Opt rss_from_stats(const LayerStats& stats) {
  if (stats.assignments <= 0 || stats.rss.occurrences <= 0) return std::nullopt;
  const double assignments = static_cast<double>(stats.assignments);
  const double kbar = assignments / static_cast<double>(stats.routed_tokens);
  double sum_f2 = 0;
  for (int64_t x : stats.expert_load) {
    const double f = static_cast<double>(x) / assignments;
    sum_f2 += f * f;
  }
  const double overlap = stats.rss.weighted_overlap_sum / (kbar * static_cast<double>(stats.rss.occurrences));
  const double chance = kbar * sum_f2;
  if (chance >= 1.0) return std::nullopt;
  return (overlap - chance) / (1.0 - chance);
}

}  // namespace

LayerMetrics layer_metrics_from_stats(int layer, LayerStats stats, int n_domains,
                                      const std::optional<std::vector<std::vector<int>>>& groups) {
  LayerMetrics out;
  out.layer = layer;
  CountMatrix& counts = stats.counts;
  if (counts.n_domains < n_domains) {  // pad to the trace's domain list
    counts.c.resize(static_cast<std::size_t>(n_domains * counts.n_experts), 0);
    counts.n_domains = n_domains;
  }
  RsResult rs = routing_specialization(counts);
  out.rs = rs.rs;
  out.rs_mm = rs.rs_mm;
  out.rs_per_domain = std::move(rs.per_domain);
  out.ner = normalized_effective_rank(counts);
  DiResult di = domain_isolation(counts);
  out.di = di.di;
  out.di_pairs = std::move(di.pairs);
  out.load = load_stats(stats.expert_load);

  const double assignments = static_cast<double>(stats.assignments);
  out.rss = rss_from_stats(stats);
  if (stats.assignments > 0) {
    const double kbar = assignments / static_cast<double>(stats.routed_tokens);
    std::vector<double> kf(stats.expert_load.size());
    for (std::size_t e = 0; e < kf.size(); ++e) kf[e] = kbar * static_cast<double>(stats.expert_load[e]) / assignments;
    for (std::size_t i = 0; i < kNgramLengths.size(); ++i) {
      double s = 0;
      for (double x : kf) s += std::pow(x, kNgramLengths[i]);
      out.ne_chance[i] = std::min(1.0, s);
    }
  }
  out.has_ne_group = stats.has_groups;
  for (std::size_t i = 0; i < kNgramLengths.size(); ++i) {
    if (stats.windows[i] == 0) continue;
    const double w = static_cast<double>(stats.windows[i]);
    out.ne[i] = static_cast<double>(stats.held[i]) / w;
    if (stats.has_groups) out.ne_group[i] = static_cast<double>(stats.held_group[i]) / w;
  }
  if (groups) out.purity = purity_against(counts, *groups);
  out.stats = std::move(stats);
  return out;
}

TraceMetrics compute_trace_metrics(const ShardSource& trace, const MetricsOptions& options) {
  const TraceMeta& meta = trace.meta();
  std::vector<int> layers = options.layers;
  if (layers.empty())
    for (int l = 0; l < trace.n_layers(); ++l) layers.push_back(l);
  for (int l : layers)
    if (l < 0 || l >= trace.n_layers())
      throw std::invalid_argument("layer " + std::to_string(l) + " is outside the trace's layers [0, " +
                                  std::to_string(trace.n_layers()) + ")");
  const auto& groups = options.reference_groups ? options.reference_groups : meta.reference_groups;
  if (groups) {
    try {
      check_reference_groups(*groups, meta.num_experts);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("reference groups: ") + e.what());
    }
  }
  if (options.ne_groups < 0) throw std::invalid_argument("--groups must be positive");

  int threads = options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::max(1, threads);

  // Pass 1, token level: domain ids checked and counted, token-id range for the RSS table.
  TraceMetrics out;
  out.num_experts = meta.num_experts;
  out.top_k = meta.top_k;
  out.n_layers = trace.n_layers();
  int max_domain = -1;
  int64_t min_id = 0, max_id = -1;
  for (std::size_t s = 0; s < trace.n_shards(); ++s) {
    const ShardView shard = trace.shard(s);
    for (int64_t begin = 0; begin < shard.n_tokens; begin += kChunkTokens) {
      const int64_t end = std::min(shard.n_tokens, begin + kChunkTokens);
      check_domain_ids(shard, begin, end);
      for (int64_t t = begin; t < end; ++t) {
        const int32_t d = shard.domain_ids[t];
        min_id = std::min<int64_t>(min_id, shard.token_ids[t]);
        max_id = std::max<int64_t>(max_id, shard.token_ids[t]);
        if (d < 0) continue;
        if (d >= static_cast<int>(out.domain_tokens.size())) out.domain_tokens.resize(d + 1, 0);
        ++out.domain_tokens[d];
        max_domain = std::max(max_domain, static_cast<int>(d));
      }
      release_tokens(trace, s, shard, begin, end, -1);
    }
    out.tokens += shard.n_tokens;
  }
  out.domains = trace.domain_list(max_domain);
  const int n_domains = static_cast<int>(out.domains.size());
  out.domain_tokens.resize(n_domains, 0);

  // Pass 2, layer-major: each thread streams one layer through every shard, finishes it and
  // drops its state (and its mapped pages) before taking the next, so memory holds at most
  // `threads` layers' tables at once whatever the number of layers or tokens.
  // Jackknife blocks hold B copies of the domain x expert counts per thread: capped at 2^24 cells.
  const int64_t cells = (static_cast<int64_t>(n_domains) + 1) * meta.num_experts;
  int blocks = static_cast<int>(std::min<int64_t>(options.jackknife_blocks, (int64_t{1} << 24) / cells));
  if (blocks < 2) blocks = 0;
  out.jackknife_blocks = blocks;
  out.layers.resize(layers.size());
  // One view per shard, made once: a view holds every layer, so making (or slicing) one per
  // layer would cost O(layers^2) (issue 13: metrics stays linear in the number of layers).
  std::vector<ShardView> views;
  for (std::size_t s = 0; s < trace.n_shards(); ++s) views.push_back(trace.shard(s));
  parallel_for(static_cast<int>(layers.size()), threads, [&](int i) {
    LayerAccumulator acc(layers[i], meta.num_experts, options.ne_groups, min_id, max_id);
    acc.set_blocks(out.tokens, blocks);
    for (std::size_t s = 0; s < trace.n_shards(); ++s) {
      const ShardView& shard = views[s];
      const LayerView& layer = shard.layers.at(static_cast<std::size_t>(layers[i]));
      for (int64_t begin = 0; begin < shard.n_tokens; begin += kChunkTokens) {
        const int64_t end = std::min(shard.n_tokens, begin + kChunkTokens);
        LayerView lv;
        lv.k = layer.k;
        if (layer.experts_i16 != nullptr) lv.experts_i16 = layer.experts_i16 + begin * layer.k;
        if (layer.experts_i32 != nullptr) lv.experts_i32 = layer.experts_i32 + begin * layer.k;
        acc.consume(slice_tokens(shard, begin, end, /*with_layers=*/false), lv);
        release_tokens(trace, s, shard, begin, end, layers[i]);  // other threads re-read from the page cache
      }
      trace.release_layer(s, layers[i]);
    }
    LayerStats stats = acc.finish();
    std::vector<LayerMetrics> replicates;
    for (std::size_t b = 0; b < stats.blocks.size(); ++b) {
      replicates.push_back(layer_metrics_from_stats(layers[i], stats_without_block(stats, b), n_domains, groups));
      replicates.back().rss = rss_from_stats(stats_without_id_group(stats, b));
      replicates.back().stats = LayerStats{};  // the summary needs none of these: drop them
      std::vector<Opt>().swap(replicates.back().rs_per_domain);
      std::vector<std::vector<Opt>>().swap(replicates.back().di_pairs);
    }
    stats.blocks.clear();
    out.layers[i] = layer_metrics_from_stats(layers[i], std::move(stats), n_domains, groups);
    out.layers[i].replicates = std::move(replicates);
  });
  return out;
}

namespace {
void flatten_into(const nlohmann::json& j, const std::string& path, std::map<std::string, nlohmann::json>* out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) flatten_into(it.value(), path.empty() ? it.key() : path + "." + it.key(), out);
  } else if (j.is_array()) {
    for (std::size_t i = 0; i < j.size(); ++i) flatten_into(j[i], path + "[" + std::to_string(i) + "]", out);
  } else {
    (*out)[path] = j;
  }
}
}  // namespace

std::map<std::string, nlohmann::json> flatten_json(const nlohmann::json& j) {
  std::map<std::string, nlohmann::json> out;
  flatten_into(j, "", &out);
  return out;
}

nlohmann::json summarize_layers(const nlohmann::json& layers) {
  // Walk the first layer's keys; nested objects (ne, load, ...) are summarised key by key.
  std::function<nlohmann::json(const std::vector<const nlohmann::json*>&)> mean_of;
  mean_of = [&](const std::vector<const nlohmann::json*>& values) -> nlohmann::json {
    if (!values.empty() && values.front()->is_object()) {
      nlohmann::json obj = nlohmann::json::object();
      for (auto it = values.front()->begin(); it != values.front()->end(); ++it) {
        std::vector<const nlohmann::json*> sub;
        for (const auto* v : values)
          if (v->contains(it.key())) sub.push_back(&(*v)[it.key()]);
        obj[it.key()] = mean_of(sub);
      }
      return obj;
    }
    double sum = 0;
    int n = 0;
    for (const auto* v : values)
      if (v->is_number()) {
        sum += v->get<double>();
        ++n;
      }
    if (n == 0) return nullptr;
    return sum / n;
  };
  nlohmann::json summary = nlohmann::json::object();
  if (layers.empty()) return summary;
  static const char* kSkip[] = {"layer", "rs_per_domain", "di_pairs"};
  for (auto it = layers.front().begin(); it != layers.front().end(); ++it) {
    if (std::find(std::begin(kSkip), std::end(kSkip), it.key()) != std::end(kSkip)) continue;
    std::vector<const nlohmann::json*> values;
    for (const auto& layer : layers)
      if (layer.contains(it.key())) values.push_back(&layer[it.key()]);
    summary[it.key()] = mean_of(values);
  }
  return summary;
}

namespace {
nlohmann::json layers_json(const TraceMetrics& m, int replicate) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& layer : m.layers) {
    const LayerMetrics& lm = replicate < 0 ? layer : layer.replicates.at(static_cast<std::size_t>(replicate));
    nlohmann::json j;
    j["layer"] = lm.layer;
    j["rs"] = opt_json(lm.rs);
    nlohmann::json per_domain = nlohmann::json::object();
    for (std::size_t d = 0; d < lm.rs_per_domain.size() && d < m.domains.size(); ++d)  // replicates have none
      per_domain[m.domains[d]] = opt_json(lm.rs_per_domain[d]);
    j["rs_per_domain"] = per_domain;
    j["rs_mm"] = opt_json(lm.rs_mm);
    j["ner"] = opt_json(lm.ner);
    j["di"] = opt_json(lm.di);
    nlohmann::json pairs = nlohmann::json::array();
    for (const auto& row : lm.di_pairs) {
      nlohmann::json r = nlohmann::json::array();
      for (const auto& v : row) r.push_back(opt_json(v));
      pairs.push_back(r);
    }
    j["di_pairs"] = pairs;
    j["rss"] = opt_json(lm.rss);
    j["ne"] = ngram_json(lm.ne);
    j["ne_chance"] = ngram_json(lm.ne_chance);
    if (lm.has_ne_group) j["ne_group"] = ngram_json(lm.ne_group);
    j["load"] = {{"utilization", opt_json(lm.load.utilization)},
                 {"entropy", opt_json(lm.load.entropy)},
                 {"max_vio", opt_json(lm.load.max_vio)},
                 {"cv", opt_json(lm.load.cv)},
                 {"dead_experts", lm.load.dead_experts}};
    if (lm.purity) {
      j["purity"] = opt_json(lm.purity->purity);
      j["purity_ids"] = opt_json(lm.purity->purity_ids);
      j["purity_majority"] = opt_json(lm.purity->purity_majority);
    }
    layers.push_back(std::move(j));
  }
  return layers;
}
}  // namespace

nlohmann::json replicate_summary_json(const TraceMetrics& m, int b) { return summarize_layers(layers_json(m, b)); }

nlohmann::json metrics_to_json(const TraceMetrics& m) {
  nlohmann::json layers = layers_json(m, -1);
  nlohmann::json per_domain = nlohmann::json::object();
  for (std::size_t d = 0; d < m.domains.size(); ++d) {
    double sum = 0;
    int n = 0;
    for (const auto& lm : m.layers)
      if (lm.rs_per_domain[d]) {
        sum += *lm.rs_per_domain[d];
        ++n;
      }
    per_domain[m.domains[d]] = {{"rs", n ? nlohmann::json(sum / n) : nlohmann::json(nullptr)},
                                {"tokens", m.domain_tokens[d]}};
  }
  nlohmann::json out;
  out["format"] = "moetb-metrics/1";
  out["trace"] = {{"tokens", m.tokens}, {"layers", m.n_layers}, {"num_experts", m.num_experts},
                  {"top_k", m.top_k}, {"domains", m.domains}};
  out["summary"] = summarize_layers(layers);
  out["layers"] = std::move(layers);
  out["per_domain"] = std::move(per_domain);
  return out;
}

}  // namespace moetb
