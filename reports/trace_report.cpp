// The report of one routing trace (a file or a folder of shards, e.g. from a large
// checkpoint): what the trace holds, the metric summary and per-layer tables, one p_d(e)
// heatmap per MoE layer and the load heatmap. The trace is streamed once by the metric
// suite (bounded memory); everything else is drawn from its per-layer counts.
#include <filesystem>

#include "metrics/trace_metrics.h"
#include "reports/html.h"
#include "reports/metric_table.h"
#include "reports/report_kinds.h"
#include "reports/routing_figures.h"

namespace moetb::reports {

std::string render_trace(const std::string& path, const ReportOptions& options) {
  const Trace trace({path});
  const std::vector<Reference> refs = load_references(options.references, "");
  const TraceMetrics m = compute_trace_metrics(trace, MetricsOptions{});
  const nlohmann::json j = metrics_to_json(m);
  const TraceMeta& meta = trace.meta();

  Table facts;
  facts.id = "trace-facts";
  facts.header = {"property", "value"};
  auto fact = [&](const std::string& k, const std::string& v) { facts.rows.push_back({"<th scope=\"row\">" + esc(k) + "</th>", v}); };
  fact("file" + std::string(trace.files().size() == 1 ? "" : "s"),
       trace.files().size() == 1 ? "<code>" + esc(trace.files()[0]) + "</code>"
                                 : std::to_string(trace.files().size()) + " shards in <code>" + esc(path) + "</code>");
  fact("tokens", std::to_string(m.tokens));
  fact("MoE layers", std::to_string(m.n_layers));
  fact("experts E / top-k", std::to_string(m.num_experts) + " / " + std::to_string(m.top_k));
  std::string domains;
  for (std::size_t d = 0; d < m.domains.size(); ++d)
    domains += (d ? ", " : "") + esc(m.domains[d]) + " (" + std::to_string(m.domain_tokens[d]) + " tokens)";
  fact("domains", domains.empty() ? "none labelled" : domains);
  if (!meta.model.empty()) fact("model", esc(meta.model));
  if (!meta.source.empty()) fact("source", esc(meta.source));
  fact("reference groups", meta.reference_groups ? "yes (purity is measured against them)" : "none (no purity)");
  std::string raw;
  for (const auto& [k, v] : meta.raw) raw += k + " = " + v + "\n";

  std::string body = intro_section(options);
  body += section("config", "Trace", "What the trace holds (routing trace format v1, docs/trace-format.md).",
                  table(facts) + "<details><summary>All metadata keys</summary><pre>" + esc(raw) + "</pre></details>\n");
  body += section("metrics", "Metrics",
                  "The metric suite of docs/metrics.md. The summary is the mean over MoE layers of each metric" +
                      std::string(refs.empty() ? "" : ", beside the reference runs") + "; per-layer values follow.",
                  metric_table(j["summary"], refs, "this trace") + domain_table(j) + layer_table(j["layers"]));
  body += section("routing", "Routing per layer",
                  "Which experts each domain's tokens are routed to, one heatmap per MoE layer (all tokens of the trace "
                  "with a domain label).",
                  routing_heatmaps(m));
  body += section("load", "Expert load", "How evenly each layer spreads its assignments over the experts.",
                  load_heatmap(m) + load_table(j["layers"]));

  const std::string title = options.title.empty() ? "Trace report: " + base_name(path) : options.title;
  const std::string subtitle = "Routing trace \xC2\xB7 <code>" + esc(path) + "</code> \xC2\xB7 " + std::to_string(m.tokens) +
                               " tokens, " + std::to_string(m.n_layers) + " MoE layers, E = " + std::to_string(m.num_experts) +
                               ", top-k = " + std::to_string(m.top_k);
  return page(title, "trace", subtitle,
              {{"config", "Trace"}, {"metrics", "Metrics"}, {"routing", "Routing"}, {"load", "Load"}}, body);
}

}  // namespace moetb::reports
