// Metric tables of the reports (see metric_table.h). The meanings paraphrase docs/metrics.md
// in one sentence each; rows whose metric is absent everywhere (purity without a reference,
// ne_group when G does not divide E) are left out.
#include "reports/metric_table.h"

#include <algorithm>

#include "reports/html.h"

namespace moetb::reports {
namespace {

struct MetricInfo {
  const char* key;
  const char* label;
  const char* meaning;
};

const MetricInfo kMetrics[] = {
    {"rs", "Routing Specialization (RS)",
     "How much the chosen expert reveals about the token's domain, I(D;E)/H(D): 1 = domains use disjoint experts, "
     "0 = every domain routes like the pooled routing (load balance is set aside)."},
    {"rs_mm", "RS, Miller\xE2\x80\x93Madow corrected",
     "RS with its finite-sample upward bias removed; prefer it when tokens are few compared with domains \xC3\x97 experts."},
    {"ner", "Normalized Effective Rank (NER)",
     "How many genuinely different routing profiles the domains have: 1 = mutually orthogonal profiles (modular "
     "experts), 0 = all domains share one profile."},
    {"di", "Domain Isolation (DI)",
     "Mean total-variation distance between two domains' expert distributions: 1 = every pair of domains uses "
     "disjoint experts, 0 = all domains route identically."},
    {"rss", "Routing Stiffness Score (RSS)",
     "Whether repeats of a token id go to the same experts beyond what the load explains: 1 = routing is decided by "
     "the token id alone, about 0 = the context moves it (may be negative)."},
    {"ne.2", "N-gram Expertise NE(2)",
     "Share of 2-token windows in which one expert serves every token; read it against its chance level."},
    {"ne_chance.2", "NE(2) chance level",
     "The NE(2) that the load alone would give (an upper bound); NE well above it means experts own spans of text."},
    {"ne.4", "N-gram Expertise NE(4)", "Share of 4-token windows in which one expert serves every token."},
    {"ne_chance.4", "NE(4) chance level", "The NE(4) that the load alone would give (an upper bound)."},
    {"ne.10", "N-gram Expertise NE(10)",
     "Share of 10-token windows in which one expert serves every token (DBES's default window)."},
    {"ne_chance.10", "NE(10) chance level", "The NE(10) that the load alone would give (an upper bound)."},
    {"ne_group.2", "NE(2), grouped experts",
     "NE(2) with experts merged into G blocks of consecutive ids (G = 8 unless set otherwise); depends on expert numbering."},
    {"ne_group.10", "NE(10), grouped experts", "NE(10) with experts merged into G blocks of consecutive ids."},
    {"purity", "Purity (best relabelling)",
     "Share of labelled assignments that land in their domain's reference experts after the best relabelling of "
     "experts: 1 = the router recovers the reference groups, whatever its expert numbering."},
    {"purity_ids", "Purity by expert id",
     "The same with expert ids read literally; meaningful for the oracle router, whose ids are the reference."},
    {"purity_majority", "Majority purity",
     "Share of assignments whose expert is most used by their own domain; an upper bound on purity."},
    {"load.utilization", "Expert utilization",
     "\xCE\xA3_e min(f_e, 1/E) over the load shares f_e: 1 = perfectly balanced, 1/E = everything on one expert."},
    {"load.entropy", "Load entropy", "Entropy of the expert load divided by log E: 1 = perfectly balanced."},
    {"load.max_vio", "MaxVio",
     "E \xC2\xB7 max_e f_e \xE2\x88\x92 1: how far the busiest expert sits above its balanced share (0 = balanced)."},
    {"load.cv", "Load coefficient of variation",
     "Standard deviation over mean of the per-expert assignment counts: 0 = balanced."},
    {"load.dead_experts", "Dead experts",
     "Experts that received no assignment (a mean over layers, so it may be fractional)."},
};

std::string metric_cell(const MetricInfo& m) {
  return "<td class=\"key\">" + esc(m.label) + "<br><code>" + esc(m.key) + "</code></td>";
}

}  // namespace

nlohmann::json at_path(const nlohmann::json& j, const std::string& dotted) {
  const nlohmann::json* cur = &j;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = dotted.find('.', start);
    const std::string part = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object() || !cur->contains(part)) return nullptr;
    cur = &(*cur)[part];
    if (dot == std::string::npos) return *cur;
    start = dot + 1;
  }
}

std::string metric_table(const nlohmann::json& summary, const std::vector<Reference>& references,
                         const std::string& value_title) {
  Table t;
  t.id = "metric-table";
  t.header = {"metric", value_title};
  for (const auto& r : references) t.header.push_back(r.name);
  t.header.push_back("what it means");
  for (std::size_t i = 1; i <= 1 + references.size(); ++i) t.numeric.push_back(i);
  for (const MetricInfo& m : kMetrics) {
    bool present = !at_path(summary, m.key).is_null();
    for (const auto& r : references) present = present || !at_path(r.summary, m.key).is_null();
    if (!present) continue;
    std::vector<std::string> row = {metric_cell(m), number_cell(at_path(summary, m.key))};
    for (const auto& r : references) row.push_back(number_cell(at_path(r.summary, m.key)));
    row.push_back("<td class=\"meaning\">" + esc(m.meaning) + "</td>");
    t.rows.push_back(std::move(row));
    t.row_attrs.push_back(" data-key=\"" + esc(m.key) + "\"");
  }
  return table(t);
}

std::string layer_table(const nlohmann::json& layers) {
  Table t;
  t.id = "layer-table";
  t.caption = "Routing metrics per MoE layer";
  bool purity = false;
  for (const auto& l : layers) purity = purity || !at_path(l, "purity").is_null();
  t.header = {"layer", "RS", "RS (MM)", "NER", "DI", "RSS", "NE(2)", "chance", "NE(10)", "chance"};
  if (purity) t.header.push_back("purity");
  for (std::size_t i = 0; i < t.header.size(); ++i) t.numeric.push_back(i);
  for (const auto& l : layers) {
    std::vector<std::string> row = {"<td class=\"num\">" + esc(l.value("layer", nlohmann::json()).dump()) + "</td>"};
    for (const char* key : {"rs", "rs_mm", "ner", "di", "rss", "ne.2", "ne_chance.2", "ne.10", "ne_chance.10"})
      row.push_back(number_cell(at_path(l, key)));
    if (purity) row.push_back(number_cell(at_path(l, "purity")));
    t.rows.push_back(std::move(row));
    t.row_attrs.push_back(" data-layer=\"" + esc(l.value("layer", nlohmann::json()).dump()) + "\"");
  }
  return table(t);
}

std::string load_table(const nlohmann::json& layers) {
  Table t;
  t.id = "load-table";
  t.caption = "Load metrics per MoE layer (1 = balanced for utilization and entropy, 0 = balanced for MaxVio and CV)";
  t.header = {"layer", "utilization", "load entropy", "MaxVio", "CV", "dead experts"};
  t.numeric = {0, 1, 2, 3, 4, 5};
  for (const auto& l : layers) {
    std::vector<std::string> row = {"<td class=\"num\">" + esc(l.value("layer", nlohmann::json()).dump()) + "</td>"};
    for (const char* key : {"load.utilization", "load.entropy", "load.max_vio", "load.cv"})
      row.push_back(number_cell(at_path(l, key)));
    row.push_back(number_cell(at_path(l, "load.dead_experts"), 0));
    t.rows.push_back(std::move(row));
    t.row_attrs.push_back(" data-layer=\"" + esc(l.value("layer", nlohmann::json()).dump()) + "\"");
  }
  return table(t);
}

std::string domain_table(const nlohmann::json& metrics) {
  const nlohmann::json per_domain = at_path(metrics, "per_domain");
  if (!per_domain.is_object() || per_domain.empty()) return "";
  std::vector<std::string> names;  // the trace's domain order (JSON objects sort their keys)
  const nlohmann::json order = at_path(metrics, "trace.domains");
  if (order.is_array())
    for (const auto& d : order)
      if (d.is_string() && per_domain.contains(d.get<std::string>())) names.push_back(d.get<std::string>());
  for (auto it = per_domain.begin(); it != per_domain.end(); ++it)
    if (std::find(names.begin(), names.end(), it.key()) == names.end()) names.push_back(it.key());
  Table t;
  t.id = "domain-table";
  t.caption = "Per domain: labelled tokens and RS_d, how specialised that domain's routing is (mean over layers)";
  t.header = {"domain", "tokens", "RS_d"};
  t.numeric = {1, 2};
  for (const auto& name : names) {
    const nlohmann::json& d = per_domain[name];
    t.rows.push_back({esc(name), number_cell(at_path(d, "tokens"), 0), number_cell(at_path(d, "rs"))});
    t.row_attrs.push_back(" data-domain=\"" + esc(name) + "\"");
  }
  return table(t);
}

}  // namespace moetb::reports
