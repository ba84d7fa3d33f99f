// Expert paths (metrics.md §8; the "high-specialization expert paths" of DBES,
// arXiv 2605.18498): per domain and layer, the experts that carry the first `tau`
// of the domain's routing mass. A domain fine-tune updates these and freezes the rest.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <vector>

#include "metrics/trace_metrics.h"

namespace moetb {

// Experts of one domain row sorted by share (ties by id), kept until the cumulative
// share reaches tau. Empty if the domain has no assignment in the layer.
std::vector<int> expert_path(const CountMatrix& counts, int domain, double tau);

// {domain name: [[layer-0 experts], [layer-1 experts], ...]} over the metrics' layers.
nlohmann::json expert_paths_json(const TraceMetrics& metrics, double tau);

}  // namespace moetb
