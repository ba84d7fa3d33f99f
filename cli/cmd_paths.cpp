// `moetb paths TRACE...`: expert paths per domain and layer (metrics.md §8), as JSON.
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/output.h"
#include "metrics/expert_paths.h"

namespace moetb::cli {

void add_paths(CLI::App& app) {
  auto* cmd = app.add_subcommand("paths", "Per-domain expert paths: experts covering tau of each domain's routing");
  struct Args {
    std::vector<std::string> traces;
    double tau = 0.5;
    std::string out = "-", layers;
    bool force = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("traces", a->traces, "Trace files or directories of shards")->required();
  cmd->add_option("--tau", a->tau, "Cumulative routing share to cover, in (0, 1]")->capture_default_str();
  cmd->add_option("--layers", a->layers, "Only these layers, e.g. 0-3,7");
  cmd->add_option("--out,-o", a->out, "Write to this file (atomically) instead of stdout");
  cmd->add_flag("--force", a->force, "Replace an existing --out file");
  cmd->callback([a] {
    const OutputOptions out_opt = output_options(a->force, a->traces);
    if (a->out != "-") check_output(a->out, OutputKind::file, out_opt);  // before the work
    if (!(a->tau > 0 && a->tau <= 1)) throw std::invalid_argument("--tau " + std::to_string(a->tau) + " is not in (0, 1]");
    MetricsOptions options;
    if (!a->layers.empty()) options.layers = parse_layer_ranges(a->layers);
    const Trace trace(a->traces);
    const nlohmann::json paths = expert_paths_json(compute_trace_metrics(trace, options), a->tau);
    // One line per layer: {"domain": [[layer-0 experts], ...]} stays readable for 48 layers.
    std::string text = "{\n";
    for (auto it = paths.begin(); it != paths.end(); ++it) {
      text += "  " + nlohmann::json(it.key()).dump() + ": [\n";
      for (std::size_t l = 0; l < it.value().size(); ++l)
        text += "    " + it.value()[l].dump() + (l + 1 < it.value().size() ? ",\n" : "\n");
      text += std::string("  ]") + (std::next(it) != paths.end() ? ",\n" : "\n");
    }
    write_output(a->out, text + "}\n", out_opt);
  });
}

}  // namespace moetb::cli
