// Collecting a sweep: the tables (sweeps/results_table.h) and the plots (charts/line_chart.h),
// every file written atomically.
#include "sweeps/collect.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>

#include "charts/line_chart.h"
#include "sweeps/paired.h"

namespace fs = std::filesystem;

namespace moetb::sweeps {
namespace {

using charts::ChartSeries;
using charts::LineChart;
using charts::render_line_chart;

const std::vector<std::string> kDefaultMetrics = {"val_bits", "gap_closed", "rs", "ner", "di", "load.max_vio"};

std::string file_part(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_';
  return out;
}

bool parse_number(const std::string& s, double& x) {
  if (s.empty()) return false;
  char* end = nullptr;
  x = std::strtod(s.c_str(), &end);
  return end != nullptr && *end == '\0' && std::isfinite(x);
}

std::string short_axis(const std::string& key) { return key == "router.name" ? "router" : key; }
std::string last_part(const std::string& key) { return key.substr(key.rfind('.') + 1); }

std::vector<std::string> chosen_metrics(const ResultsTable& t, const std::vector<std::string>& wanted) {
  std::vector<std::string> out;
  for (const auto& m : wanted)
    if (std::find(t.columns.begin(), t.columns.end(), m) != t.columns.end()) out.push_back(m);
  return out;
}

}  // namespace

std::string column_title(const std::string& c) {
  static const std::map<std::string, std::string> titles = {
      {"val_bits", "validation loss (bits/token)"},   {"floor_bits", "entropy-rate floor (bits/token)"},
      {"gap_closed", "share of the unigram-to-floor gap closed"}, {"rs", "Routing Specialization (RS)"},
      {"rs_mm", "RS, Miller-Madow corrected"},        {"ner", "Normalized Effective Rank (NER)"},
      {"di", "Domain Isolation (DI)"},                {"rss", "Routing Stiffness Score (RSS)"},
      {"purity", "purity against the oracle groups"}, {"load.utilization", "expert utilization"},
      {"load.max_vio", "MaxVio (0 = balanced)"},      {"load.entropy", "load entropy / log E"},
      {"load.cv", "load coefficient of variation"},   {"wall_s", "wall time (s)"}};
  if (auto it = titles.find(c); it != titles.end()) return it->second;
  if (c.rfind("val_bits.", 0) == 0) return "validation loss on " + c.substr(9) + " (bits/token)";
  return c;
}

std::vector<std::pair<std::string, std::string>> sweep_plots(const ResultsTable& t, const std::vector<GroupSummary>& groups,
                                                             const std::vector<std::string>& metrics) {
  std::vector<std::pair<std::string, std::string>> plots;
  for (std::size_t a = 0; a < t.axis_keys.size(); ++a) {
    std::vector<std::string> xs;  // the axis's values, first-seen order
    for (const auto& g : groups)
      if (!g.axis_values[a].empty() && std::find(xs.begin(), xs.end(), g.axis_values[a]) == xs.end()) xs.push_back(g.axis_values[a]);
    if (xs.size() < 2) continue;
    bool numeric = true;
    double lo = INFINITY, hi = -INFINITY;
    for (const auto& x : xs) {
      double v = 0;
      numeric = numeric && parse_number(x, v);
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    for (const auto& m : metrics) {
      LineChart chart;
      chart.title = column_title(m) + " by " + short_axis(t.axis_keys[a]);
      chart.x_label = short_axis(t.axis_keys[a]);
      chart.y_label = column_title(m);
      if (!numeric) chart.x_categories = xs;
      chart.log_x = numeric && lo > 0 && hi / lo >= 100;
      // Lines: the other axes that vary among the groups on this plot (e.g. the router).
      std::vector<bool> varies(t.axis_keys.size(), false);
      for (std::size_t b = 0; b < t.axis_keys.size(); ++b) {
        std::set<std::string> values;
        for (const auto& g : groups)
          if (!g.axis_values[a].empty()) values.insert(g.axis_values[b]);
        varies[b] = b != a && values.size() > 1;
      }
      std::map<std::string, std::size_t> line_of;  // other axes' values -> series
      for (const auto& g : groups) {
        if (g.axis_values[a].empty()) continue;
        std::string label;
        for (std::size_t b = 0; b < t.axis_keys.size(); ++b)
          if (varies[b] && !g.axis_values[b].empty())
            label += (label.empty() ? "" : ", ") + (t.axis_keys[b] == "router.name" ? g.axis_values[b] : last_part(t.axis_keys[b]) + "=" + g.axis_values[b]);
        const bool any_varies = std::find(varies.begin(), varies.end(), true) != varies.end();
        if (label.empty()) label = any_varies ? "other axes at the base config" : g.router.empty() ? "mean over seeds" : g.router;
        auto [it, fresh] = line_of.emplace(label, chart.series.size());
        if (fresh) chart.series.push_back({label, {}, {}, {}});
        ChartSeries& s = chart.series[it->second];
        const SampleSummary& st = g.stats.at(m);
        double x = 0;
        if (numeric) parse_number(g.axis_values[a], x);
        else x = static_cast<double>(std::find(xs.begin(), xs.end(), g.axis_values[a]) - xs.begin());
        s.x.push_back(x);
        s.y.push_back(st.n > 0 ? st.mean : NAN);
        s.err.push_back(st.n >= 2 ? st.ci95 : NAN);
      }
      for (auto& s : chart.series) {  // numeric axes: points left to right
        std::vector<std::size_t> order(s.x.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::sort(order.begin(), order.end(), [&](std::size_t i, std::size_t j) { return s.x[i] < s.x[j]; });
        ChartSeries sorted{s.name, {}, {}, {}};
        for (std::size_t i : order) {
          sorted.x.push_back(s.x[i]);
          sorted.y.push_back(s.y[i]);
          sorted.err.push_back(s.err[i]);
        }
        s = sorted;
      }
      std::size_t n_lo = SIZE_MAX, n_hi = 0;  // seeds per point, said in the title
      for (const auto& g : groups)
        if (!g.axis_values[a].empty() && g.stats.at(m).n > 0) {
          n_lo = std::min(n_lo, g.stats.at(m).n);
          n_hi = std::max(n_hi, g.stats.at(m).n);
        }
      if (n_hi > 0)
        chart.title += n_hi < 2 ? " (n = 1 seed: no interval)"
                                : " (mean, 95% t interval; n = " + (n_lo == n_hi ? std::to_string(n_hi) : std::to_string(n_lo) + "-" + std::to_string(n_hi)) + " seeds)";
      plots.emplace_back("plots/" + file_part(m) + "-vs-" + file_part(short_axis(t.axis_keys[a])) + ".svg", render_line_chart(chart));
    }
  }
  // Utilization against RS, one point per completed run, one colour per combination of the axes
  // that vary among the runs (the router, the coefficient, ...), so no axis hides inside a colour.
  LineChart scatter;
  scatter.title = "Expert utilization against Routing Specialization (one point per run)";
  scatter.x_label = column_title("rs");
  scatter.y_label = column_title("load.utilization") + " (1 = balanced)";
  scatter.draw_lines = false;
  std::vector<bool> varies(t.axis_keys.size(), false);
  for (std::size_t b = 0; b < t.axis_keys.size(); ++b) {
    std::set<std::string> values;
    for (const auto& r : t.rows)
      if (r.status == "ok")
        for (const auto& [k, v] : r.entry.axes)
          if (k == t.axis_keys[b]) values.insert(v);
    varies[b] = values.size() > 1;
  }
  std::map<std::string, std::size_t> series_of;
  for (const auto& r : t.rows) {
    const auto rs = r.values.find("rs");
    const auto util = r.values.find("load.utilization");
    if (r.status != "ok" || rs == r.values.end() || util == r.values.end()) continue;
    std::string name;
    for (std::size_t b = 0; b < t.axis_keys.size(); ++b) {
      if (!varies[b]) continue;
      for (const auto& [k, v] : r.entry.axes)
        if (k == t.axis_keys[b]) name += (name.empty() ? "" : ", ") + (k == "router.name" ? v : last_part(k) + "=" + v);
    }
    if (name.empty()) name = r.router.empty() ? "runs" : r.router;
    auto [it, fresh] = series_of.emplace(name, scatter.series.size());
    if (fresh) scatter.series.push_back({name, {}, {}, {}});
    scatter.series[it->second].x.push_back(rs->second);
    scatter.series[it->second].y.push_back(util->second);
  }
  if (!scatter.series.empty()) plots.emplace_back("plots/utilization-vs-rs.svg", render_line_chart(scatter));
  return plots;
}

CollectReport collect(const SweepDir& dir, const CollectOptions& options) {
  const SweepPlan plan = dir.load();
  const ResultsTable table = load_results(dir, plan);
  const std::vector<GroupSummary> groups = summarize_groups(table);
  const std::vector<std::string> metrics =
      chosen_metrics(table, !options.metrics.empty() ? options.metrics : !plan.metrics.empty() ? plan.metrics : kDefaultMetrics);
  for (const auto& m : options.metrics)
    if (std::find(metrics.begin(), metrics.end(), m) == metrics.end() && table.columns.size() > 0)
      throw std::invalid_argument("--metrics: no column '" + m + "' in the results (see the header of results.csv)");
  CollectReport report;
  for (const auto& r : table.rows) {
    if (r.status == "ok") ++report.ok;
    else if (r.status == "pending") ++report.pending;
    else ++report.failed;
  }
  const fs::path out = options.out.empty() ? dir.root() : fs::path(options.out);
  fs::create_directories(out / "plots");
  auto plots = sweep_plots(table, groups, metrics);
  const std::vector<PairedComparison> paired = paired_comparisons(table, groups);
  for (auto& p : paired_plots(table, groups, paired, metrics)) plots.push_back(std::move(p));
  std::vector<std::string> plot_names;
  for (const auto& [name, svg] : plots) {
    write_file_atomic(out / name, svg);
    plot_names.push_back(name);
  }
  std::string md = "# Sweep " + plan.name + "\n\n" + std::to_string(report.ok) + " runs complete, " + std::to_string(report.failed) +
                   " failed, " + std::to_string(report.pending) + " pending (results.csv has one row per run; summary.csv every column).\n\n";
  md += summary_markdown(table, groups, metrics, {});
  if (const std::string pm = paired_markdown(table, groups, paired, metrics); !pm.empty()) md += "\n" + pm;
  if (!plot_names.empty()) {
    md += "\n## Plots\n\n";
    for (const auto& p : plot_names) md += "![" + p + "](" + p + ")\n";
  }
  write_file_atomic(out / "results.csv", results_csv(table));
  write_file_atomic(out / "summary.csv", summary_csv(table, groups));
  write_file_atomic(out / "summary.md", md);
  report.files = {"results.csv", "summary.csv", "summary.md"};
  if (!paired.empty()) {
    write_file_atomic(out / "paired.csv", paired_csv(table, groups, paired));
    report.files.push_back("paired.csv");
  }
  report.files.insert(report.files.end(), plot_names.begin(), plot_names.end());
  return report;
}

}  // namespace moetb::sweeps
