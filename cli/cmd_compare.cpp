// `moetb compare A B`: router saturation per layer and the change of every summary
// metric between two traces of the same tokens (metrics.md §9).
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/output.h"
#include "metrics/metrics_table.h"
#include "metrics/trace_compare.h"

namespace moetb::cli {

void add_compare(CLI::App& app) {
  auto* cmd = app.add_subcommand("compare", "Compare two traces of the same tokens (saturation, metric changes)");
  struct Args {
    std::string a, b, out = "-";
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("A", a->a, "First trace (e.g. an early checkpoint)")->required();
  cmd->add_option("B", a->b, "Second trace (e.g. the final checkpoint)")->required();
  cmd->add_flag("--json", a->json, "Print JSON (moetb-compare/1)");
  cmd->add_option("--out,-o", a->out, "Write to this file (atomically) instead of stdout");
  cmd->callback([a] {
    const Trace ta({a->a}), tb({a->b});
    const auto saturation = router_saturation(ta, tb);
    const nlohmann::json j = compare_json(compute_trace_metrics(ta), compute_trace_metrics(tb), saturation);
    if (a->json) {
      write_output(a->out, j.dump(2) + "\n");
      return;
    }
    std::ostringstream text;
    text << "router saturation |S_A ∩ S_B| / |S_B| per layer:\n";
    for (std::size_t l = 0; l < j["saturation"].size(); ++l)
      text << "  layer " << l << ": " << format_number(j["saturation"][l]) << "\n";
    text << "\n";
    char line[160];
    std::snprintf(line, sizeof line, "%-28s %12s %12s %12s\n", "summary metric", "A", "B", "B - A");
    text << line;
    for (auto it = j["summary"].begin(); it != j["summary"].end(); ++it) {
      const auto& v = it.value();
      std::snprintf(line, sizeof line, "%-28s %12s %12s %12s\n", it.key().c_str(), format_number(v["a"]).c_str(),
                    format_number(v["b"]).c_str(), format_number(v["delta"]).c_str());
      text << line;
    }
    write_output(a->out, text.str());
  });
}

}  // namespace moetb::cli
