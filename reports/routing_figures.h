// The routing figures of run and trace reports, from the streamed metrics of one trace
// (compute_trace_metrics keeps each layer's domain x expert counts C[d,e] and expert load,
// so memory does not grow with the trace): one heatmap of p_d(e) per MoE layer with the
// experts reordered so that specialisation shows as blocks, and a layer x expert load heatmap.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "metrics/trace_metrics.h"

namespace moetb::reports {

// Measures a trace (file or folder of shards) with the streaming metric suite.
TraceMetrics measure_trace(const std::string& path);

// Expert ids in display order: grouped by the domain with the largest p_d(e) (domain order),
// within a group by that share (descending), then experts no labelled token uses, by id.
std::vector<int64_t> expert_order(const CountMatrix& counts);

// The largest p_d(e) over the layers of `m` (0 for a trace without labelled tokens).
double routing_scale_top(const TraceMetrics& m);
// One <figure class="chart heatmap" data-layer="L"> per layer of `m`, in a flex container. The
// colour scale diverges around the chance level 1/E and runs from 0 to the largest p_d(e), or to
// shared_top when given (the largest over every run compared; shared_with names them in the caption).
std::string routing_heatmaps(const TraceMetrics& m, double shared_top = NAN, const std::string& shared_with = "");
// The <figure class="chart heatmap load"> of E * f_e per layer and expert.
std::string load_heatmap(const TraceMetrics& m);

}  // namespace moetb::reports
