// Routing heatmaps and the load heatmap of the reports (see routing_figures.h). All layers
// share one colour scale per figure kind, so layers can be compared by colour; captions say
// how to read each figure and give the layer's RS and DI.
#include "reports/routing_figures.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "reports/html.h"
#include "charts/heatmap.h"

namespace moetb::reports {
namespace {

// The upper end of a colour scale: the data's maximum rounded up to a multiple of `step`.
double scale_top(double max_value, double step, double at_least) {
  return std::max(at_least, std::ceil(max_value / step - 1e-9) * step);
}

std::vector<double> domain_shares(const CountMatrix& c, std::size_t n_domains, const std::vector<int64_t>& order) {
  std::vector<double> values(n_domains * order.size(), NAN);
  for (std::size_t d = 0; d < n_domains; ++d) {
    const auto dd = static_cast<int>(d);
    const int64_t n_d = dd < c.n_domains ? c.row_sum(dd) : 0;
    if (n_d == 0) continue;  // the domain has no assignment in this layer: a blank row
    for (std::size_t j = 0; j < order.size(); ++j)
      values[d * order.size() + j] = static_cast<double>(c.at(dd, order[j])) / static_cast<double>(n_d);
  }
  return values;
}

}  // namespace

TraceMetrics measure_trace(const std::string& path) {
  const Trace trace({path});
  return compute_trace_metrics(trace, MetricsOptions{});
}

std::vector<int64_t> expert_order(const CountMatrix& c) {
  std::vector<int64_t> row_sum(static_cast<std::size_t>(std::max(0, c.n_domains)));
  for (int d = 0; d < c.n_domains; ++d) row_sum[static_cast<std::size_t>(d)] = c.row_sum(d);
  struct Key {
    int domain;    // dominant domain, n_domains when no labelled token uses the expert
    double share;  // its p_d(e)
  };
  std::vector<Key> keys(static_cast<std::size_t>(c.n_experts), Key{c.n_domains, 0.0});
  for (int64_t e = 0; e < c.n_experts; ++e)
    for (int d = 0; d < c.n_domains; ++d) {
      const int64_t n_d = row_sum[static_cast<std::size_t>(d)];
      if (n_d == 0 || c.at(d, e) == 0) continue;
      const double p = static_cast<double>(c.at(d, e)) / static_cast<double>(n_d);
      Key& k = keys[static_cast<std::size_t>(e)];
      if (p > k.share) k = {d, p};
    }
  std::vector<int64_t> order(static_cast<std::size_t>(c.n_experts));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    const Key& ka = keys[static_cast<std::size_t>(a)];
    const Key& kb = keys[static_cast<std::size_t>(b)];
    if (ka.domain != kb.domain) return ka.domain < kb.domain;
    return ka.share > kb.share;
  });
  return order;
}

double routing_scale_top(const TraceMetrics& m) {
  double top = 0;
  for (const LayerMetrics& lm : m.layers) {
    const CountMatrix& c = lm.stats.counts;
    for (int d = 0; d < c.n_domains; ++d) {
      const int64_t n_d = c.row_sum(d);
      for (int64_t e = 0; n_d > 0 && e < c.n_experts; ++e) top = std::max(top, static_cast<double>(c.at(d, e)) / static_cast<double>(n_d));
    }
  }
  return top;
}

std::string routing_heatmaps(const TraceMetrics& m, double shared_top, const std::string& shared_with) {
  const std::size_t n_domains = m.domains.size();
  // One colour scale for every layer (and every run compared): diverging around the chance level
  // 1/E, from 0 to the largest p_d(e) rounded up, at least 2/E so that chance is never near the top.
  const double chance = m.num_experts > 0 ? 1.0 / static_cast<double>(m.num_experts) : NAN;
  double top = std::isfinite(shared_top) ? shared_top : routing_scale_top(m);
  std::vector<std::vector<int64_t>> orders;
  std::vector<std::vector<double>> values;
  for (const LayerMetrics& lm : m.layers) {
    orders.push_back(expert_order(lm.stats.counts));
    values.push_back(domain_shares(lm.stats.counts, n_domains, orders.back()));
  }
  top = std::max(top, std::isfinite(chance) ? 2 * chance : 0.0);
  top = std::min(1.0, scale_top(top, top > 0.5 ? 0.1 : 0.05, 0.05));
  std::string out = "<div class=\"figures\">\n";
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const LayerMetrics& lm = m.layers[i];
    charts::Heatmap map;
    map.title = "Layer " + std::to_string(lm.layer) + ": where each domain's tokens go";
    map.row_label = "domain";
    map.col_label = "expert id (reordered)";
    map.value_label = "p_d(e)";
    map.rows = m.domains;
    for (int64_t e : orders[i]) map.cols.push_back(std::to_string(e));
    map.values = values[i];
    map.vmin = 0;
    map.vmax = top;
    map.neutral = chance;
    map.neutral_label = "(1/E)";
    if (!map.cols.empty() && map.rows.size() < map.cols.size())  // few domains, many experts: taller rows
      map.cell_height = std::clamp(static_cast<int>(220 / std::max<std::size_t>(1, map.rows.size())), 0, 44);
    std::string caption = "<b>Layer " + std::to_string(lm.layer) + "</b> \xC2\xB7 RS " +
                          (lm.rs ? fmt(*lm.rs) : fmt(NAN)) + " \xC2\xB7 DI " + (lm.di ? fmt(*lm.di) : fmt(NAN)) +
                          ". Each row is a domain; colour is p_d(e), the share of domain d's assignments that go to "
                          "expert e (a row sums to 1). Columns are experts, labelled with their ids and grouped by the "
                          "domain that uses each one most, then by that share. The colours diverge around the chance "
                          "level 1/E = " + fmt(chance, 3) + " (light grey): red cells get more of the domain than "
                          "chance, blue cells less, so specialised experts form red blocks along the diagonal while "
                          "grey rows mean routing that ignores the domain.";
    if (n_domains == 0) caption += " This trace labels no token with a domain, so there is nothing to show.";
    bool blank = false;
    for (std::size_t d = 0; d < n_domains; ++d) blank = blank || (!values[i].empty() && !std::isfinite(values[i][d * orders[i].size()]));
    if (blank) caption += " Hatched rows: domains with no token in this layer.";
    caption += " The colour scale (0 to " + fmt(top, 2) + ") is the same for every layer" +
               (shared_with.empty() ? std::string(".") : " and for " + esc(shared_with) + ".");
    out += figure("chart heatmap", " data-layer=\"" + std::to_string(lm.layer) + "\"", charts::render_heatmap(map), caption);
  }
  return out + "</div>\n";
}

std::string load_heatmap(const TraceMetrics& m) {
  charts::Heatmap map;
  map.title = "Expert load per layer (1 = balanced share)";
  map.row_label = "MoE layer";
  map.col_label = "expert id";
  map.value_label = "E \xC2\xB7 f_e";
  double top = 0;
  for (int64_t e = 0; e < m.num_experts; ++e) map.cols.push_back(std::to_string(e));
  for (const LayerMetrics& lm : m.layers) {
    map.rows.push_back("layer " + std::to_string(lm.layer));
    const auto& load = lm.stats.expert_load;
    const double total = static_cast<double>(std::accumulate(load.begin(), load.end(), int64_t{0}));
    for (int64_t e = 0; e < m.num_experts; ++e) {
      const auto ue = static_cast<std::size_t>(e);
      const double v = total > 0 && ue < load.size() ? static_cast<double>(m.num_experts) * static_cast<double>(load[ue]) / total : NAN;
      map.values.push_back(v);
      if (std::isfinite(v)) top = std::max(top, v);
    }
  }
  map.vmin = 0;
  map.vmax = scale_top(top, 0.5, 2.0);  // at least 0..2, so that the balanced value 1 sits mid-scale
  if (!map.cols.empty() && map.rows.size() < map.cols.size())
    map.cell_height = std::clamp(static_cast<int>(260 / std::max<std::size_t>(1, map.rows.size())), 0, 36);
  const std::string caption =
      "Rows are MoE layers, columns experts by id (not reordered). Colour is E \xC2\xB7 f_e: the expert's share f_e of "
      "all assignments in the layer (labelled or not) times the number of experts E = " + std::to_string(m.num_experts) +
      ", so 1 is exactly a balanced share, 0 an expert that gets nothing and 2 one that gets twice its share. A balanced "
      "layer is an even stripe at the middle colour of the scale.";
  return "<div class=\"figures\">\n" + figure("chart heatmap load", "", charts::render_heatmap(map), caption) + "</div>\n";
}

}  // namespace moetb::reports
