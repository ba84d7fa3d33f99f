// Paired-by-seed differences between sweep groups that differ in one axis (see paired.h):
// matching runs by seed, the t interval of the mean difference (Student's t from stats.h),
// the Markdown section and CSV, and the charts (charts/line_chart.h). The sweep design is the
// MoE Routing Testbed's (arXiv 2604.07030).
#include "sweeps/paired.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <stdexcept>

#include "charts/line_chart.h"
#include "sweeps/collect.h"

namespace moetb::sweeps {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string axis_value(const ResultRow& row, const std::string& axis) {
  for (const auto& [k, v] : row.entry.axes)
    if (k == axis) return v;
  return "";
}

std::string last_part(const std::string& key) { return key == "router.name" ? "router" : key.substr(key.rfind('.') + 1); }

std::string file_part(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_';
  return out;
}

}  // namespace

bool PairedDifference::excludes_zero() const { return n >= 2 && std::isfinite(lo) && std::isfinite(hi) && (lo > 0 || hi < 0); }

std::size_t PairedDifference::agree() const {
  if (!(n > 0) || !std::isfinite(mean) || mean == 0) return 0;
  return mean > 0 ? b_higher : a_higher;
}

PairedDifference paired_difference(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size())
    throw std::invalid_argument("paired_difference: " + std::to_string(a.size()) + " values against " + std::to_string(b.size()));
  std::vector<double> d;
  PairedDifference out;
  for (std::size_t i = 0; i < a.size(); ++i) {
    d.push_back(b[i] - a[i]);
    if (b[i] > a[i]) ++out.b_higher;
    else if (b[i] < a[i]) ++out.a_higher;
    else ++out.ties;
  }
  const SampleSummary s = summarize(d);
  out.n = s.n;
  out.mean = s.mean;
  out.sd = s.sd;
  out.ci95 = s.ci95;
  out.lo = s.n >= 2 ? s.mean - s.ci95 : kNaN;
  out.hi = s.n >= 2 ? s.mean + s.ci95 : kNaN;
  return out;
}

std::string paired_text(const PairedDifference& d) {
  if (d.n == 0) return "no paired seeds";
  const std::string seeds = std::to_string(d.agree()) + " of " + std::to_string(d.n) + " seeds";
  if (d.n < 2) return table_number(d.mean, 3, true) + " (n = 1: no interval)";
  return table_number(d.mean, 3, true) + " [" + table_number(d.lo, 3, true) + ", " + table_number(d.hi, 3, true) + "], " + seeds;
}

const PairedDifference* PairedComparison::find(const std::string& column) const {
  for (const auto& [c, d] : diffs)
    if (c == column) return &d;
  return nullptr;
}

std::vector<PairedComparison> paired_comparisons(const ResultsTable& t, const std::vector<GroupSummary>& groups) {
  // Each group's ok rows, by seed (a repeated seed keeps its first run).
  std::vector<std::map<int64_t, const ResultRow*>> by_seed(groups.size());
  for (const auto& row : t.rows) {
    if (row.status != "ok") continue;
    std::vector<std::string> key;
    for (const auto& axis : t.axis_keys) key.push_back(axis_value(row, axis));
    for (std::size_t g = 0; g < groups.size(); ++g)
      if (groups[g].axis_values == key) by_seed[g].emplace(row.entry.seed, &row);
  }
  std::vector<PairedComparison> out;
  for (std::size_t a = 0; a < t.axis_keys.size(); ++a) {
    std::vector<std::string> order;  // the axis's values, first-seen order
    for (const auto& g : groups)
      if (!g.axis_values[a].empty() && std::find(order.begin(), order.end(), g.axis_values[a]) == order.end())
        order.push_back(g.axis_values[a]);
    auto rank = [&](const std::string& v) { return std::find(order.begin(), order.end(), v) - order.begin(); };
    for (std::size_t i = 0; i < groups.size(); ++i) {
      for (std::size_t j = 0; j < groups.size(); ++j) {
        const auto& gi = groups[i].axis_values;
        const auto& gj = groups[j].axis_values;
        if (gi[a].empty() || gj[a].empty() || rank(gi[a]) >= rank(gj[a])) continue;
        bool others_equal = true;
        for (std::size_t b = 0; b < t.axis_keys.size(); ++b) others_equal = others_equal && (b == a || gi[b] == gj[b]);
        if (!others_equal) continue;
        PairedComparison c;
        c.axis = a;
        c.group_a = i;
        c.group_b = j;
        for (std::size_t b = 0; b < t.axis_keys.size(); ++b)
          if (b != a && !gi[b].empty()) c.context += (c.context.empty() ? "" : ", ") + last_part(t.axis_keys[b]) + "=" + gi[b];
        bool any = false;
        for (const auto& col : t.columns) {
          std::vector<double> xa, xb;
          for (const auto& [seed, ra] : by_seed[i]) {
            const auto rb = by_seed[j].find(seed);
            if (rb == by_seed[j].end()) continue;
            const auto va = ra->values.find(col);
            const auto vb = rb->second->values.find(col);
            if (va == ra->values.end() || vb == rb->second->values.end() || !std::isfinite(va->second) || !std::isfinite(vb->second))
              continue;
            xa.push_back(va->second);
            xb.push_back(vb->second);
          }
          c.diffs.emplace_back(col, paired_difference(xa, xb));
          any = any || !xa.empty();
        }
        if (any) out.push_back(std::move(c));
      }
    }
  }
  return out;
}

std::string comparison_label(const ResultsTable& t, const std::vector<GroupSummary>& groups, const PairedComparison& c) {
  return last_part(t.axis_keys[c.axis]) + ": " + groups[c.group_b].axis_values[c.axis] + " - " + groups[c.group_a].axis_values[c.axis];
}

std::string paired_csv(const ResultsTable& t, const std::vector<GroupSummary>& groups, const std::vector<PairedComparison>& comps) {
  std::string s = "axis,context,a,b,column,n,mean_diff,sd,ci95,lo,hi,b_higher,a_higher,ties,excludes_zero\n";
  for (const auto& c : comps)
    for (const auto& [col, d] : c.diffs) {
      if (d.n == 0) continue;
      s += csv_field(t.axis_keys[c.axis]) + "," + csv_field(c.context) + "," + csv_field(groups[c.group_a].axis_values[c.axis]) + "," +
           csv_field(groups[c.group_b].axis_values[c.axis]) + "," + csv_field(col) + "," + std::to_string(d.n) + "," +
           format_number(d.mean) + "," + format_number(d.sd) + "," + format_number(d.ci95) + "," + format_number(d.lo) + "," +
           format_number(d.hi) + "," + std::to_string(d.b_higher) + "," + std::to_string(d.a_higher) + "," +
           std::to_string(d.ties) + "," + (d.excludes_zero() ? "true" : "false") + "\n";
    }
  return s;
}

std::string paired_markdown(const ResultsTable& t, const std::vector<GroupSummary>& groups, const std::vector<PairedComparison>& comps,
                            const std::vector<std::string>& columns) {
  if (comps.empty()) return "";
  std::string s = "## Paired differences (by seed)\n\n| comparison (B - A) | other axes | n |";
  for (const auto& c : columns) s += " " + c + " |";
  s += "\n|";
  for (std::size_t i = 0; i < 3 + columns.size(); ++i) s += " --- |";
  s += "\n";
  for (const auto& c : comps) {
    std::size_t n = 0;
    for (const auto& col : columns)
      if (const auto* d = c.find(col)) n = std::max(n, d->n);
    s += "| " + comparison_label(t, groups, c) + " | " + (c.context.empty() ? "-" : c.context) + " | " + std::to_string(n) + " |";
    for (const auto& col : columns) {
      const PairedDifference* d = c.find(col);
      if (d == nullptr || d->n == 0) {
        s += " |";
        continue;
      }
      const std::string text = paired_text(*d);
      s += " " + (d->excludes_zero() ? "**" + text + "**" : text) + " |";
    }
    s += "\n";
  }
  s += "\nEach cell: the mean over seeds of (B - A), run against run with the same seed, then its 95% confidence "
       "interval (Student's t with n-1 degrees of freedom) and how many seeds differ in the direction of the mean. "
       "Bold: the interval excludes zero, a difference larger than the seed-to-seed variation; the rest are within "
       "seed noise at this n.\n";
  return s;
}

std::vector<std::pair<std::string, std::string>> paired_plots(const ResultsTable& t, const std::vector<GroupSummary>& groups,
                                                              const std::vector<PairedComparison>& comps,
                                                              const std::vector<std::string>& columns) {
  std::vector<std::pair<std::string, std::string>> plots;
  if (comps.empty()) return plots;
  for (const auto& col : columns) {
    charts::LineChart chart;
    charts::ChartSeries diff{"mean of B - A, 95% t interval", {}, {}, {}};
    std::size_t n_lo = SIZE_MAX, n_hi = 0;
    for (const auto& c : comps) {
      const PairedDifference* d = c.find(col);
      if (d == nullptr || d->n == 0) continue;
      diff.x.push_back(static_cast<double>(chart.x_categories.size()));
      diff.y.push_back(d->mean);
      diff.err.push_back(d->n >= 2 ? d->ci95 : NAN);
      diff.x.push_back(static_cast<double>(chart.x_categories.size()) + 0.5);  // a gap: no line between comparisons
      diff.y.push_back(NAN);
      diff.err.push_back(NAN);
      chart.x_categories.push_back(comparison_label(t, groups, c) + (c.context.empty() ? "" : " (" + c.context + ")"));
      n_lo = std::min(n_lo, d->n);
      n_hi = std::max(n_hi, d->n);
    }
    if (diff.x.empty()) continue;
    const std::string n = n_lo == n_hi ? std::to_string(n_lo) : std::to_string(n_lo) + "-" + std::to_string(n_hi);
    chart.title = "Paired difference in " + column_title(col) + " (n = " + n + " seeds)";
    chart.x_label = "comparison (B - A, same seed)";
    chart.y_label = "difference in " + col;
    charts::ChartSeries zero{"no difference", {-0.4, static_cast<double>(chart.x_categories.size()) - 0.6}, {0, 0}, {}};
    zero.dashed = true;
    zero.markers = false;
    chart.series.push_back(diff);
    chart.series.push_back(zero);
    plots.emplace_back("plots/paired-" + file_part(col) + ".svg", charts::render_line_chart(chart));
  }
  return plots;
}

}  // namespace moetb::sweeps
