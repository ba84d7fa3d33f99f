// Paths that `moetb compare`, `metrics` and `report` accept for a routing trace: a trace file, a
// folder of shards, or a training run directory, which stands for its latest evaluation trace
// (the one eval.json names, else the newest traces/step-*.safetensors). A run also gives its seed
// and validation loss, which the seed-aware comparison of groups of runs pairs and reports.
// Torch-free. When the runs/ library (runs/run_reader.h) is merged, resolve through
// runs::final_trace and read_final_eval instead of reading eval.json here.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace moetb::cli {

struct TraceInput {
  std::string path;                 // as given
  std::string trace;                // the trace file or shard folder to read
  bool is_run = false;              // path was a run directory
  std::optional<long long> seed;    // the run's train.seed
  std::optional<double> val_bits;   // the run's final validation loss (bits/token)
};

// Throws std::invalid_argument with one line for a run directory without a trace.
TraceInput resolve_trace_input(const std::string& path);
// Each path resolved (trace paths as given).
std::vector<std::string> resolve_trace_paths(const std::vector<std::string>& paths);

}  // namespace moetb::cli
