// `moetb metrics TRACE...`: the metric suite of metrics.md on a trace (files or
// directories of shards): a readable per-layer table, or the JSON schema with --json.
// --per-domain adds, per layer and domain, RS_d, the normalised routing entropy
// H(p_d) / log E and the top experts by share p_d(e), under "per_domain" (an addition).
// --before-capacity measures moetb's optional layers.{l}.experts_before_capacity instead: the
// router's choices before a capacity limit dropped some (docs/trace-format.md).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/trace_input.h"
#include "metrics/metrics_table.h"
#include "metrics/trace_metrics.h"

namespace moetb::cli {
namespace {

// Adds per_domain[name]["layers"] = [{"layer", "rs", "entropy", "assignments", "top_experts": [[e, share]]}]
// and per_domain[name]["entropy"] (mean over layers of the non-null values).
void add_domain_breakdown(const TraceMetrics& m, int top, nlohmann::json* j) {
  for (std::size_t d = 0; d < m.domains.size(); ++d) {
    nlohmann::json layers = nlohmann::json::array();
    double entropy_sum = 0;
    int entropy_n = 0;
    for (const LayerMetrics& lm : m.layers) {
      const CountMatrix& c = lm.stats.counts;
      const auto dd = static_cast<int>(d);
      const int64_t n_d = dd < c.n_domains ? c.row_sum(dd) : 0;
      nlohmann::json row = {{"layer", lm.layer}, {"assignments", n_d}};
      row["rs"] = lm.rs_per_domain[d] ? nlohmann::json(*lm.rs_per_domain[d]) : nlohmann::json(nullptr);
      row["entropy"] = nullptr;
      nlohmann::json tops = nlohmann::json::array();
      if (n_d > 0) {
        double h = 0;
        std::vector<int64_t> experts;
        for (int64_t e = 0; e < c.n_experts; ++e) {
          const int64_t x = c.at(dd, e);
          if (x == 0) continue;
          const double p = static_cast<double>(x) / static_cast<double>(n_d);
          h -= p * std::log(p);
          experts.push_back(e);
        }
        if (c.n_experts > 1) {
          row["entropy"] = h / std::log(static_cast<double>(c.n_experts));
          entropy_sum += row["entropy"].get<double>();
          ++entropy_n;
        }
        const auto n_top = std::min<std::size_t>(experts.size(), static_cast<std::size_t>(top));
        std::partial_sort(experts.begin(), experts.begin() + static_cast<std::ptrdiff_t>(n_top), experts.end(),
                          [&](int64_t x, int64_t y) {
                            return c.at(dd, x) != c.at(dd, y) ? c.at(dd, x) > c.at(dd, y) : x < y;
                          });
        for (std::size_t i = 0; i < n_top; ++i)
          tops.push_back({experts[i], static_cast<double>(c.at(dd, experts[i])) / static_cast<double>(n_d)});
      }
      row["top_experts"] = tops;
      layers.push_back(std::move(row));
    }
    nlohmann::json& pd = (*j)["per_domain"][m.domains[d]];
    pd["entropy"] = entropy_n ? nlohmann::json(entropy_sum / entropy_n) : nlohmann::json(nullptr);
    pd["layers"] = std::move(layers);
  }
}

std::string domain_breakdown_table(const nlohmann::json& j) {
  std::ostringstream out;
  out << "\nper domain and layer (RS_d specialization, H entropy of the domain's routing / log E, top experts "
         "with their share of the domain's assignments):\n";
  char line[96];
  std::snprintf(line, sizeof line, "%-6s %-16s %7s %7s  %s\n", "layer", "domain", "RS_d", "H", "top experts");
  out << line;
  const auto& per_domain = j["per_domain"];
  const std::size_t n_layers = j["layers"].size();
  for (std::size_t i = 0; i < n_layers; ++i)
    for (auto it = per_domain.begin(); it != per_domain.end(); ++it) {
      const auto& row = it.value()["layers"][i];
      std::string tops;
      for (const auto& t : row["top_experts"]) {
        char cell[32];
        std::snprintf(cell, sizeof cell, "%s%lld:%.3f", tops.empty() ? "" : " ",
                      static_cast<long long>(t[0].get<int64_t>()), t[1].get<double>());
        tops += cell;
      }
      std::snprintf(line, sizeof line, "%-6d %-16.16s %7s %7s  ", row["layer"].get<int>(), it.key().c_str(),
                    format_number(row["rs"]).c_str(), format_number(row["entropy"]).c_str());
      out << line << (tops.empty() ? "-" : tops) << "\n";
    }
  out << "\nper domain, mean over layers: ";
  for (auto it = per_domain.begin(); it != per_domain.end(); ++it)
    out << (it == per_domain.begin() ? "" : "; ") << it.key() << " RS " << format_number(it.value()["rs"]) << " H "
        << format_number(it.value()["entropy"]);
  out << "\n";
  return out.str();
}

}  // namespace

void add_metrics(CLI::App& app) {
  auto* cmd = app.add_subcommand("metrics", "Compute the routing metrics of a trace");
  struct Args {
    std::vector<std::string> traces;
    bool json = false, per_domain = false, force = false, before_capacity = false;
    std::string out = "-", layers, reference;
    int groups = 8, threads = 0, top = 4;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("traces", a->traces, "Trace files, directories of shards, or run directories (their latest evaluation trace)")->required();
  cmd->add_flag("--json", a->json, "Print the moetb-metrics/1 JSON instead of the table");
  cmd->add_option("--out,-o", a->out, "Write to this file (atomically) instead of stdout");
  cmd->add_flag("--force", a->force, "Replace an existing --out file");
  cmd->add_option("--layers", a->layers, "Only these layers, e.g. 0-3,7");
  cmd->add_option("--reference", a->reference, "Reference groups: JSON list of expert-id lists, or a file");
  cmd->add_option("--groups", a->groups, "G for ne_group (E must be divisible by G)")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->add_flag("--per-domain", a->per_domain,
                "Per layer and domain: RS_d, routing entropy, top experts (table rows; JSON per_domain.NAME.layers)");
  cmd->add_option("--top", a->top, "Top experts listed per domain and layer with --per-domain")->capture_default_str();
  cmd->add_flag("--before-capacity", a->before_capacity,
                "Measure the router's choices before capacity dropped some (layers.L.experts_before_capacity, written "
                "by moetb train where a capacity limit applied at evaluation)");
  cmd->callback([a] {
    if (a->top < 1 || a->top > 65536) throw std::invalid_argument("--top must lie in [1, 65536]");
    std::vector<std::string> inputs = a->traces;
    if (!a->reference.empty() && a->reference[0] != '[') inputs.push_back(a->reference);
    const OutputOptions out_opt = output_options(a->force, inputs);
    if (a->out != "-") check_output(a->out, OutputKind::file, out_opt);  // before the work
    MetricsOptions options;
    options.ne_groups = a->groups;
    options.threads = a->threads;
    if (!a->layers.empty()) options.layers = parse_layer_ranges(a->layers);
    if (!a->reference.empty()) options.reference_groups = parse_reference_groups(a->reference);
    const Trace trace(resolve_trace_paths(a->traces), a->before_capacity ? ExpertsTensor::kBeforeCapacity : ExpertsTensor::kRouted);
    const TraceMetrics m = compute_trace_metrics(trace, options);
    nlohmann::json j = metrics_to_json(m);
    if (a->per_domain) add_domain_breakdown(m, a->top, &j);
    std::string text = a->json ? j.dump(2) + "\n" : metrics_table(j);
    if (a->per_domain && !a->json) text += domain_breakdown_table(j);
    write_output(a->out, text, out_opt);
  });
}

}  // namespace moetb::cli
