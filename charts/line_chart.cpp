// SVG rendering of line and scatter charts (see line_chart.h): error bars with caps, lines broken
// at missing points, categorical labels rotated and thinned when crowded, numeric x ticks chosen
// to fit, a legend right of the plot. Colours are Okabe-Ito, markers cycle through five shapes.
#include "charts/line_chart.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "charts/svg_common.h"

namespace moetb::charts {

using namespace detail;

namespace {

// Okabe-Ito, ordered for contrast on white (the yellow last).
constexpr std::array<const char*, 8> kSeriesColours = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                                       "#56B4E9", "#E69F00", "#000000", "#F0E442"};
constexpr int kMarkerShapes = 5;

// A marker of shape index % kMarkerShapes (circle, square, triangle, diamond, down-triangle).
void add_marker(std::string& out, double x, double y, int shape, const std::string& colour) {
  // Light fills (the Okabe-Ito yellow) get a dark outline to stand out on white.
  const std::string outline = colour == "#F0E442" ? "#6b6400" : "#ffffff";
  const std::string style = " fill=\"" + colour + "\" stroke=\"" + outline + "\" stroke-width=\"0.8\"/>\n";
  const double r = 4;
  auto polygon = [&](std::initializer_list<std::pair<double, double>> points) {
    out += "<polygon class=\"marker\" points=\"";
    for (const auto& [dx, dy] : points) out += px(x + dx) + "," + px(y + dy) + " ";
    out.pop_back();
    out += "\"" + style;
  };
  switch (shape % kMarkerShapes) {
    case 0: out += "<circle class=\"marker\" cx=\"" + px(x) + "\" cy=\"" + px(y) + "\" r=\"" + px(r) + "\"" + style; break;
    case 1:
      out += "<rect class=\"marker\" x=\"" + px(x - 3.5) + "\" y=\"" + px(y - 3.5) + "\" width=\"7\" height=\"7\"" + style;
      break;
    case 2: polygon({{0, -r - 0.5}, {r, r - 0.5}, {-r, r - 0.5}}); break;
    case 3: polygon({{0, -r - 0.5}, {r + 0.5, 0}, {0, r + 0.5}, {-r - 0.5, 0}}); break;
    default: polygon({{0, r + 0.5}, {r, -r + 0.5}, {-r, -r + 0.5}}); break;
  }
}

// ---- line chart pieces ----

struct PointFilter {
  const LineChart& chart;
  bool valid(const ChartSeries& s, std::size_t i) const {
    if (i >= s.x.size() || i >= s.y.size() || !std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) return false;
    if (!chart.x_categories.empty()) return s.x[i] > -0.5 && s.x[i] < static_cast<double>(chart.x_categories.size()) - 0.5;
    return !chart.log_x || s.x[i] > 0;
  }
  double error(const ChartSeries& s, std::size_t i) const {
    return i < s.err.size() && std::isfinite(s.err[i]) ? std::fabs(s.err[i]) : 0.0;
  }
};

std::string series_colour(const ChartSeries& s, std::size_t index) {
  const std::size_t i = s.colour >= 0 ? static_cast<std::size_t>(s.colour) : index;
  return kSeriesColours[i % kSeriesColours.size()];
}

// Dashed when asked for, or when the palette has wrapped around (to tell the lines apart).
std::string series_dash(const ChartSeries& s, std::size_t index) {
  if (s.dashed) return " stroke-dasharray=\"7 4\"";
  return s.colour < 0 && index >= kSeriesColours.size() ? " stroke-dasharray=\"6 3\"" : "";
}

}  // namespace

std::string render_line_chart(const LineChart& chart) {
  const PointFilter filter{chart};
  const bool categorical = !chart.x_categories.empty();
  double width = std::max(chart.width, 200);
  double height = std::max(chart.height, 150);

  // Data ranges.
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  bool any_error = false;
  for (const ChartSeries& s : chart.series) {
    for (std::size_t i = 0; i < s.y.size(); ++i) {
      if (!filter.valid(s, i)) continue;
      const double e = filter.error(s, i);
      any_error = any_error || e > 0;
      x_lo = std::min(x_lo, s.x[i]);
      x_hi = std::max(x_hi, s.x[i]);
      y_lo = std::min(y_lo, s.y[i] - e);
      y_hi = std::max(y_hi, s.y[i] + e);
    }
  }
  const bool has_data = y_lo <= y_hi;
  if (!has_data) {
    y_lo = 0, y_hi = 1;
    x_lo = chart.log_x ? 1 : 0, x_hi = chart.log_x ? 10 : 1;
  }
  widen_if_flat(y_lo, y_hi);

  // Margins: title on top, legend on the right, y tick labels and title on the left.
  const double top = chart.title.empty() ? 16 : 42;
  double legend_width = 0;
  for (const ChartSeries& s : chart.series) legend_width = std::max(legend_width, text_width(s.name, kLegendFont));
  legend_width = chart.series.empty() ? 0 : legend_width + 34;
  // Long legend entries widen the chart (by up to half its width) rather than being cut short.
  if (legend_width > width * 0.3) {
    const double plot_share = width * 0.7;
    width += std::min(legend_width - width * 0.3, width * 0.5);
    legend_width = std::min(legend_width, width - plot_share);
  }
  const double right = legend_width + 18;
  const double y_step = nice_step(y_hi - y_lo, std::clamp((height - top - 70) / 50, 3.0, 8.0));
  Axis y_axis;
  y_axis.d0 = std::floor(y_lo / y_step) * y_step;
  y_axis.d1 = std::ceil(y_hi / y_step) * y_step;
  if (!(y_axis.d1 > y_axis.d0)) y_axis.d1 = y_axis.d0 + 1;
  const Ticks y_ticks = has_data ? linear_ticks(y_axis.d0, y_axis.d1, y_step) : Ticks{};
  double y_label_width = 0;
  for (const std::string& label : y_ticks.labels) y_label_width = std::max(y_label_width, text_width(label, kTickFont));
  double left = 12 + (chart.y_label.empty() ? 0 : 22) + y_label_width + 8;
  auto plot_width = [&] { return std::max(20.0, width - left - right); };

  // The x axis: category labels (horizontal, else rotated and thinned) or numeric ticks.
  Axis x_axis;
  x_axis.log = chart.log_x && !categorical;
  Ticks x_ticks;
  bool rotate_x = false;
  std::size_t label_every = 1;
  double x_labels_height = 18;
  if (categorical) {
    const double n = static_cast<double>(chart.x_categories.size());
    double widest = 0;
    for (const std::string& c : chart.x_categories) widest = std::min(std::max(widest, text_width(c, kTickFont)), 130.0);
    double band = plot_width() / n;
    if (widest > band - 6) {
      rotate_x = true;
      left = std::max(left, widest * kSin45 - band / 2 + 6);
      band = plot_width() / n;
      label_every = static_cast<std::size_t>(std::max(1.0, std::ceil(17 / band)));
      x_labels_height = widest * kSin45 + 16;
    }
    x_axis.d0 = -0.5, x_axis.d1 = n - 0.5;
  } else if (x_axis.log) {
    double lo = std::log10(x_lo), hi = std::log10(x_hi);
    const double pad = hi > lo ? (hi - lo) * 0.04 : 0.5;
    x_axis.d0 = lo - pad, x_axis.d1 = hi + pad;
    x_ticks = log_ticks(x_axis.d0, x_axis.d1, plot_width());
  } else {
    widen_if_flat(x_lo, x_hi);
    const double pad = (x_hi - x_lo) * 0.04;
    x_axis.d0 = x_lo - pad, x_axis.d1 = x_hi + pad;
    for (double target = std::clamp(plot_width() / 80, 2.0, 10.0); target >= 1; --target) {
      x_ticks = linear_ticks(x_axis.d0, x_axis.d1, nice_step(x_axis.d1 - x_axis.d0, target));
      double widest = 0;
      for (const std::string& label : x_ticks.labels) widest = std::max(widest, text_width(label, kTickFont));
      const double spacing = plot_width() / std::max(1.0, static_cast<double>(x_ticks.values.size()) - 1);
      if (widest + 12 <= spacing * 0.9) break;
    }
  }
  const double bottom = 10 + x_labels_height + (chart.x_label.empty() ? 0 : 22);
  height = std::max(height, top + 10 + 18 * static_cast<double>(chart.series.size()) + bottom);
  x_axis.p0 = left, x_axis.p1 = left + plot_width();
  y_axis.p0 = std::max(top + 20, height - bottom), y_axis.p1 = top;
  const double plot_mid_x = (x_axis.p0 + x_axis.p1) / 2, plot_mid_y = (y_axis.p0 + y_axis.p1) / 2;

  std::string out = svg_open(width, height, chart.title);
  if (!chart.title.empty())
    add_text(out, width / 2, 26, chart.title, kTitleFont, "middle", width - 16, " font-weight=\"bold\"");

  // Grid, axes, ticks and axis titles.
  out += "<g class=\"axes\">\n";
  for (std::size_t i = 0; i < y_ticks.values.size(); ++i) {
    const double y = y_axis.at(y_ticks.values[i]);
    add_line(out, x_axis.p0, y, x_axis.p1, y, "stroke=\"#e6e6e6\"");
    add_text(out, x_axis.p0 - 6, y + 4, y_ticks.labels[i], kTickFont, "end", 0, " fill=\"#333333\"");
  }
  add_line(out, x_axis.p0, y_axis.p0, x_axis.p1, y_axis.p0, "stroke=\"#333333\"");
  add_line(out, x_axis.p0, y_axis.p0, x_axis.p0, y_axis.p1, "stroke=\"#333333\"");
  const double tick_y = y_axis.p0;
  if (categorical) {
    for (std::size_t i = 0; i < chart.x_categories.size(); i += label_every) {
      const double x = x_axis.at(static_cast<double>(i));
      add_line(out, x, tick_y, x, tick_y + 4, "stroke=\"#333333\"");
      if (rotate_x)
        add_text(out, x + 3, tick_y + 12, chart.x_categories[i], kTickFont, "end", 130,
                 " fill=\"#333333\" transform=\"rotate(-45 " + px(x + 3) + " " + px(tick_y + 12) + ")\"");
      else
        add_text(out, x, tick_y + 16, chart.x_categories[i], kTickFont, "middle", 0, " fill=\"#333333\"");
    }
  } else if (has_data) {
    for (std::size_t i = 0; i < x_ticks.values.size(); ++i) {
      const double x = x_axis.at(x_ticks.values[i]);
      add_line(out, x, tick_y, x, tick_y + 4, "stroke=\"#333333\"");
      add_text(out, x, tick_y + 16, x_ticks.labels[i], kTickFont, "middle", 0, " fill=\"#333333\"");
    }
  }
  if (!chart.x_label.empty())
    add_text(out, plot_mid_x, height - 10, chart.x_label, kAxisTitleFont, "middle", x_axis.p1 - x_axis.p0);
  if (!chart.y_label.empty())
    add_text(out, 18, plot_mid_y, chart.y_label, kAxisTitleFont, "middle", y_axis.p0 - y_axis.p1,
             " transform=\"rotate(-90 18 " + px(plot_mid_y) + ")\"");
  out += "</g>\n";

  // Series: lines broken at missing points, error bars with caps, markers.
  const double series_count = static_cast<double>(chart.series.size());
  const double band = (x_axis.p1 - x_axis.p0) / std::max(1.0, x_axis.d1 - x_axis.d0);
  const double dodge = categorical && any_error && series_count > 1 ? std::min(6.0, band * 0.5 / series_count) : 0.0;
  for (std::size_t si = 0; si < chart.series.size(); ++si) {
    const ChartSeries& s = chart.series[si];
    const std::string colour = series_colour(s, si);
    const double offset = (static_cast<double>(si) - (series_count - 1) / 2) * dodge;
    auto point_x = [&](std::size_t i) { return x_axis.at(s.x[i]) + offset; };
    out += "<g class=\"series\">\n";
    if (chart.draw_lines) {
      const std::string dash = series_dash(s, si);
      std::vector<std::string> run;
      auto flush = [&] {
        if (run.size() >= 2) {
          out += "<polyline class=\"line\" fill=\"none\" stroke=\"" + colour + "\" stroke-width=\"2\"" + dash +
                 " points=\"";
          for (const std::string& p : run) out += p + " ";
          out.pop_back();
          out += "\"/>\n";
        }
        run.clear();
      };
      for (std::size_t i = 0; i < s.y.size(); ++i) {
        if (filter.valid(s, i)) run.push_back(px(point_x(i)) + "," + px(y_axis.at(s.y[i])));
        else flush();
      }
      flush();
    }
    for (std::size_t i = 0; i < s.y.size(); ++i) {
      const double e = filter.error(s, i);
      if (!filter.valid(s, i) || e <= 0) continue;
      const double x = point_x(i), y1 = y_axis.at(s.y[i] - e), y2 = y_axis.at(s.y[i] + e);
      const std::string style = "stroke=\"" + colour + "\" stroke-width=\"1.3\"";
      out += "<g class=\"err-bar\">\n";
      add_line(out, x, y1, x, y2, style);
      add_line(out, x - 4, y1, x + 4, y1, style);
      add_line(out, x - 4, y2, x + 4, y2, style);
      out += "</g>\n";
    }
    std::size_t n_valid = 0;  // a line-only series with one point shows it as a marker
    for (std::size_t i = 0; i < s.y.size(); ++i) n_valid += filter.valid(s, i) ? 1 : 0;
    const bool markers = s.markers || !chart.draw_lines || n_valid == 1;
    for (std::size_t i = 0; i < s.y.size(); ++i)
      if (markers && filter.valid(s, i)) add_marker(out, point_x(i), y_axis.at(s.y[i]), static_cast<int>(si), colour);
    out += "</g>\n";
  }
  if (!has_data) add_text(out, plot_mid_x, plot_mid_y, "no data", 14, "middle", 0, " fill=\"#666666\"");

  // Legend: one entry per series, right of the plot.
  if (!chart.series.empty()) {
    out += "<g class=\"legend\">\n";
    const double lx = x_axis.p1 + 14;
    for (std::size_t si = 0; si < chart.series.size(); ++si) {
      const ChartSeries& s = chart.series[si];
      const std::string colour = series_colour(s, si);
      const double ly = top + 8 + 18 * static_cast<double>(si);
      if (chart.draw_lines)
        add_line(out, lx, ly, lx + 20, ly, "stroke=\"" + colour + "\" stroke-width=\"2\"" + series_dash(s, si));
      if (s.markers || !chart.draw_lines) add_marker(out, lx + 10, ly, static_cast<int>(si), colour);
      add_text(out, lx + 26, ly + 4, chart.series[si].name, kLegendFont, "start", width - lx - 30);
    }
    out += "</g>\n";
  }
  return out + "</svg>\n";
}

}  // namespace moetb::charts
