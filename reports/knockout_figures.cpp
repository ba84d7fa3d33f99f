// Knockout heatmaps (knockout_figures.h): per MoE layer, domain x expert loss increase when
// the expert is removed, one colour scale for all layers, captioned with the Spearman
// correlations against routing specialization (docs/finetune.md).
#include "reports/knockout_figures.h"

#include <algorithm>
#include <cmath>

#include "charts/heatmap.h"
#include "reports/html.h"

namespace moetb::reports {

namespace {
std::string number(const nlohmann::json& v, int decimals) {
  if (!v.is_number()) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v.get<double>());
  return buf;
}
}  // namespace

std::string knockout_figures(const nlohmann::json& ko) {
  if (!ko.is_object() || ko.value("format", std::string()) != "moetb-knockout/1" || !ko.contains("layers"))
    return note("knockout.json is not a moetb-knockout/1 document: no knockout figures.");
  const auto domains = ko.value("domains", std::vector<std::string>());
  double lo = 0.0, hi = 0.0;
  for (const auto& layer : ko["layers"])
    for (const auto& e : layer["experts"])
      for (const auto& d : domains) {
        const auto& v = e["loss_increase_bits"][d];
        if (v.is_number()) lo = std::min(lo, v.get<double>()), hi = std::max(hi, v.get<double>());
      }
  const auto& corr = ko["correlation"];
  std::string out = "<p>Validation loss increase (bits per token) of each domain when one expert is removed (never selected; "
                    "the token's other experts renormalised), beside routing: Spearman(p_d(e), increase) over every "
                    "(layer, expert, domain) = <b>" + number(corr["cell"]["spearman"], 3) +
                    "</b>; Spearman(specialization, knockout concentration) over experts = <b>" +
                    number(corr["expert"]["spearman"], 3) + "</b> (docs/finetune.md defines both).</p>\n<div class=\"figures\">\n";
  for (const auto& layer : ko["layers"]) {
    charts::Heatmap map;
    const std::string l = std::to_string(layer.value("layer", 0));
    map.title = "Layer " + l + ": loss increase when an expert is removed";
    map.row_label = "domain";
    map.col_label = "expert id";
    map.value_label = "bits";
    map.rows = domains;
    for (const auto& e : layer["experts"]) map.cols.push_back(std::to_string(e.value("expert", 0)));
    for (const auto& d : domains)
      for (const auto& e : layer["experts"]) {
        const auto& v = e["loss_increase_bits"][d];
        map.values.push_back(v.is_number() ? v.get<double>() : NAN);
      }
    map.vmin = lo;
    map.vmax = hi > lo ? hi : lo + 1e-9;
    if (!map.cols.empty() && map.rows.size() < map.cols.size())
      map.cell_height = std::clamp(static_cast<int>(220 / std::max<std::size_t>(1, map.rows.size())), 0, 44);
    const std::string caption = "<b>Layer " + l + "</b>. Each cell: domain d's validation loss with expert e removed minus "
                                "without it. Bright = the domain depends on that expert; the colour scale (" +
                                number(lo, 3) + " to " + number(hi, 3) + " bits) is the same for every layer.";
    out += figure("chart heatmap knockout", " data-layer=\"" + l + "\"", charts::render_heatmap(map), caption);
  }
  return out + "</div>\n";
}

}  // namespace moetb::reports
