// `moetb metrics TRACE...`: the metric suite of metrics.md on a trace (files or
// directories of shards): a readable per-layer table, or the JSON schema with --json.
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/output.h"
#include "metrics/metrics_table.h"
#include "metrics/trace_metrics.h"

namespace moetb::cli {

void add_metrics(CLI::App& app) {
  auto* cmd = app.add_subcommand("metrics", "Compute the routing metrics of a trace");
  struct Args {
    std::vector<std::string> traces;
    bool json = false;
    std::string out = "-", layers, reference;
    int groups = 8, threads = 0;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("traces", a->traces, "Trace files or directories of shards")->required();
  cmd->add_flag("--json", a->json, "Print the moetb-metrics/1 JSON instead of the table");
  cmd->add_option("--out,-o", a->out, "Write to this file (atomically) instead of stdout");
  cmd->add_option("--layers", a->layers, "Only these layers, e.g. 0-3,7");
  cmd->add_option("--reference", a->reference, "Reference groups: JSON list of expert-id lists, or a file");
  cmd->add_option("--groups", a->groups, "G for ne_group (E must be divisible by G)")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->callback([a] {
    MetricsOptions options;
    options.ne_groups = a->groups;
    options.threads = a->threads;
    if (!a->layers.empty()) options.layers = parse_layer_ranges(a->layers);
    if (!a->reference.empty()) options.reference_groups = parse_reference_groups(a->reference);
    const Trace trace(a->traces);
    const nlohmann::json j = metrics_to_json(compute_trace_metrics(trace, options));
    write_output(a->out, a->json ? j.dump(2) + "\n" : metrics_table(j));
  });
}

}  // namespace moetb::cli
