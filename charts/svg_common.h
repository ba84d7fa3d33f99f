// Shared pieces of the SVG charts (charts/line_chart.h, charts/heatmap.h): XML escaping, compact
// number and coordinate formatting, estimated text widths (no font metrics are available, so
// labels are fitted from estimates and cut with an ellipsis), the <svg> frame, and the axis and
// tick helpers (nice steps, linear and log10 ticks). The detail:: helpers are for the chart
// renderers; xml_escape is for anyone writing SVG or HTML (reports/). Torch-free.
#pragma once
#include <string>
#include <vector>

namespace moetb::charts {

// Escapes &, <, >, " and ' for SVG/HTML text and attributes.
std::string xml_escape(const std::string& text);

namespace detail {

inline constexpr double kTitleFont = 16;
inline constexpr double kAxisTitleFont = 13;
inline constexpr double kTickFont = 11;
inline constexpr double kLegendFont = 12;
inline constexpr double kSin45 = 0.7071;

// Compact number: "0.25", "1.2e-05"; "n/a" for non-finite values.
std::string format_number(double value, int significant);
// A coordinate with at most two decimals and no trailing zeros.
std::string px(double value);
// Estimated width of text in px at a font size (on the wide side, so fitted text fits).
double text_width(const std::string& text, double font);
// The text, cut at a code point and ended with an ellipsis when wider than max_width.
std::string fit_text(const std::string& text, double font, double max_width);
// <text>, fitted to max_width (<= 0: no limit); a cut text carries the full one as a tooltip.
void add_text(std::string& out, double x, double y, const std::string& text, double font, const char* anchor,
              double max_width = 0, const std::string& extra = "");
void add_line(std::string& out, double x1, double y1, double x2, double y2, const std::string& style);
// The opening <svg> element with a white background and the title as its tooltip.
std::string svg_open(double width, double height, const std::string& title);
// A small complete <svg> that says "no data".
std::string no_data_svg(const std::string& title);

struct Axis {
  double d0 = 0, d1 = 1;  // domain, in log10 units on a log axis
  double p0 = 0, p1 = 1;  // pixel range
  bool log = false;
  double at(double value) const;
};

struct Ticks {
  std::vector<double> values;
  std::vector<std::string> labels;
};

// A 1, 2 or 5 times a power of ten near span / target_count.
double nice_step(double span, double target_count);
// Labels for values spaced by about step, each within tolerance * step of its value.
std::vector<std::string> tick_labels(const std::vector<double>& values, double step, double tolerance = 1e-6);
// Multiples of step within [lo, hi] (snapped so that zero prints as 0).
Ticks linear_ticks(double lo, double hi, double step);
// Ticks for a log10 axis over [lo, hi] (log10 units).
Ticks log_ticks(double lo, double hi, double plot_width);
// Widens a zero-width range around its value.
void widen_if_flat(double& lo, double& hi);

}  // namespace detail
}  // namespace moetb::charts
