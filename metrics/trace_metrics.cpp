// Orchestrates the metric suite: shard-major streaming (each shard is mapped, consumed by
// every selected layer in parallel, then released), then per-layer formulas, then the
// JSON of metrics.md ("moetb-metrics/1"). Undefined values are null, never NaN.
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

nlohmann::json opt_json(const Opt& v) {
  if (!v || !std::isfinite(*v)) return nullptr;
  return *v;
}

nlohmann::json ngram_json(const std::array<Opt, 3>& values) {
  nlohmann::json j = nlohmann::json::object();
  for (std::size_t i = 0; i < kNgramLengths.size(); ++i) j[std::to_string(kNgramLengths[i])] = opt_json(values[i]);
  return j;
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
  if (stats.assignments > 0) {
    const double kbar = assignments / static_cast<double>(stats.routed_tokens);
    double sum_f2 = 0;
    std::vector<double> kf(stats.expert_load.size());
    for (std::size_t e = 0; e < kf.size(); ++e) {
      const double f = static_cast<double>(stats.expert_load[e]) / assignments;
      sum_f2 += f * f;
      kf[e] = kbar * f;
    }
    if (stats.rss.occurrences > 0) {
      const double overlap = stats.rss.weighted_overlap_sum / (kbar * static_cast<double>(stats.rss.occurrences));
      const double chance = kbar * sum_f2;
      if (chance < 1.0) out.rss = (overlap - chance) / (1.0 - chance);
    }
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
    check_domain_ids(shard);
    for (int64_t t = 0; t < shard.n_tokens; ++t) {
      const int32_t d = shard.domain_ids[t];
      min_id = std::min<int64_t>(min_id, shard.token_ids[t]);
      max_id = std::max<int64_t>(max_id, shard.token_ids[t]);
      if (d < 0) continue;
      if (d >= static_cast<int>(out.domain_tokens.size())) out.domain_tokens.resize(d + 1, 0);
      ++out.domain_tokens[d];
      max_domain = std::max(max_domain, static_cast<int>(d));
    }
    out.tokens += shard.n_tokens;
  }
  out.domains = trace.domain_list(max_domain);
  const int n_domains = static_cast<int>(out.domains.size());
  out.domain_tokens.resize(n_domains, 0);

  // Pass 2, layer-major: each thread streams one layer through every shard, finishes it and
  // drops its state (and its mapped pages) before taking the next, so memory holds at most
  // `threads` layers' tables at once whatever the number of layers or tokens.
  out.layers.resize(layers.size());
  parallel_for(static_cast<int>(layers.size()), threads, [&](int i) {
    LayerAccumulator acc(layers[i], meta.num_experts, options.ne_groups, min_id, max_id);
    for (std::size_t s = 0; s < trace.n_shards(); ++s) {
      acc.consume(trace.shard(s));
      trace.release_layer(s, layers[i]);
    }
    out.layers[i] = layer_metrics_from_stats(layers[i], acc.finish(), n_domains, groups);
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

nlohmann::json metrics_to_json(const TraceMetrics& m) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& lm : m.layers) {
    nlohmann::json j;
    j["layer"] = lm.layer;
    j["rs"] = opt_json(lm.rs);
    nlohmann::json per_domain = nlohmann::json::object();
    for (std::size_t d = 0; d < m.domains.size(); ++d) per_domain[m.domains[d]] = opt_json(lm.rs_per_domain[d]);
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
