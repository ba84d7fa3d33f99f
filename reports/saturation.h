// Router saturation over training for a run report (OLMoE, arXiv 2409.02060; metrics.md §9):
// each evaluation trace RUN/traces/step-NNNNNN.safetensors is compared with the last one
// (metrics/trace_compare.h, streaming), giving per layer the share of the final experts that
// the router already chose at that step. Rendered as a chart and a step x layer table.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace moetb::reports {

// The evaluation traces of a run, (step, path), in step order; empty when there are none.
std::vector<std::pair<int64_t, std::string>> run_traces(const std::string& run_dir);

// The contents of the saturation section (figure, table, notes).
std::string saturation_content(const std::vector<std::pair<int64_t, std::string>>& traces);

}  // namespace moetb::reports
