// The metric suite over a whole trace (metrics.md): streams shards once, layers in
// parallel across threads, and returns per-layer metrics plus the summary and the
// per-domain view that `moetb metrics --json` prints ("moetb-metrics/1").
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "metrics/layer_accumulator.h"
#include "metrics/routing_metrics.h"
#include "metrics/trace.h"

namespace moetb {

struct MetricsOptions {
  int ne_groups = 8;                 // G for ne_group
  int threads = 0;                   // 0 = hardware concurrency (layers run in parallel)
  std::vector<int> layers;           // empty = all layers
  std::optional<std::vector<std::vector<int>>> reference_groups;  // overrides the trace's
  // >= 2: also compute delete-one-block jackknife replicates of every layer (moetb compare's
  // noise estimate) from the same pass: contiguous token blocks, hashed token-id groups for RSS.
  int jackknife_blocks = 0;
};

struct LayerMetrics {
  int layer = 0;
  Opt rs, rs_mm, ner, di, rss;
  std::vector<Opt> rs_per_domain;            // [n_domains]
  std::vector<std::vector<Opt>> di_pairs;    // [n_domains][n_domains]
  std::array<Opt, 3> ne, ne_chance, ne_group;  // for kNgramLengths
  bool has_ne_group = false;
  LoadStats load;
  std::optional<PurityResult> purity;        // only with reference groups
  LayerStats stats;                          // the raw counts behind the numbers
  std::vector<LayerMetrics> replicates;      // [jackknife blocks] block b left out (their stats are empty)
};

struct TraceMetrics {
  int64_t tokens = 0;
  int64_t num_experts = 0, top_k = 0;
  int n_layers = 0;
  std::vector<std::string> domains;          // names, index = domain id
  std::vector<int64_t> domain_tokens;        // labelled tokens per domain
  std::vector<LayerMetrics> layers;          // the selected layers, in order
  int jackknife_blocks = 0;                  // replicates per layer (0 = none)
};

// Throws TraceError for malformed contents, std::invalid_argument for bad options.
TraceMetrics compute_trace_metrics(const ShardSource& trace, const MetricsOptions& options = {});
// The metrics of one layer from its accumulated counts.
LayerMetrics layer_metrics_from_stats(int layer, LayerStats stats, int n_domains,
                                      const std::optional<std::vector<std::vector<int>>>& groups);

nlohmann::json metrics_to_json(const TraceMetrics& m);
// The summary of jackknife replicate b (every layer with block b left out), as in metrics_to_json.
nlohmann::json replicate_summary_json(const TraceMetrics& m, int b);
// Leaves of a JSON document by path: object keys joined with '.', array items as "[i]"
// (e.g. "summary.ne.2", "layers[0].rs"). Used to compare and diff metric documents.
std::map<std::string, nlohmann::json> flatten_json(const nlohmann::json& j);
// The summary object alone: for every scalar key of the layer objects, the mean of the non-null values.
nlohmann::json summarize_layers(const nlohmann::json& layers);

}  // namespace moetb
