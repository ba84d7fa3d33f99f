// Comparing two traces over the same tokens (metrics.md §9): per-layer router
// saturation mean_t |S_t^A ∩ S_t^B| / |S_t^B| (OLMoE, arXiv 2409.02060, when A is an
// early checkpoint and B the final one) and the change of every summary metric.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <vector>

#include "metrics/trace_metrics.h"

namespace moetb {

// Per layer (min of both traces' layer counts): saturation, null if B routes no token.
// Throws TraceError if token_ids or positions differ, naming the first differing token.
std::vector<std::optional<double>> router_saturation(const ShardSource& a, const ShardSource& b);

// {"format": "moetb-compare/1", "a": {...}, "b": {...}, "saturation": [...],
//  "summary": {key: {"a": x, "b": y, "delta": y - x}}} over the flattened summary keys.
nlohmann::json compare_json(const TraceMetrics& a, const TraceMetrics& b,
                            const std::vector<std::optional<double>>& saturation);

}  // namespace moetb
