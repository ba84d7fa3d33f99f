// The seed-aware side of `moetb compare`: two groups of runs (several run directories or traces
// per side, e.g. one per seed). Runs are paired by seed (else by the order given); for every
// summary metric, and the validation loss where the runs have one, the paired difference B - A
// over the pairs with its 95% t interval (sweeps/paired.h). Verdict "differs" only when that
// interval excludes zero: a difference larger than the variation between seeds. With one run
// per side only the token-level jackknife of trace_compare.h applies, and the output says so.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/trace_input.h"
#include "metrics/trace_metrics.h"

namespace moetb::cli {

// {"format": "moetb-compare-runs/1", "pairing": "seed" | "order", "pairs": [{"seed", "a", "b"}],
//  "unpaired": [paths], "notes": [...], "summary": {key: {"a_mean", "a_sd", "b_mean", "b_sd", "n",
//  "delta", "sd", "ci95", "lo", "hi", "agree", "verdict"}}, "differs": [keys]}.
// Throws std::invalid_argument with one line when nothing can be paired.
nlohmann::json compare_runs_json(const std::vector<TraceInput>& a, const std::vector<TraceInput>& b, const MetricsOptions& options);
std::string compare_runs_table(const nlohmann::json& j);

// The sentence printed under a one-pair comparison: its verdicts reflect only token-sampling noise.

}  // namespace moetb::cli
