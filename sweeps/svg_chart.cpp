// SVG rendering for sweep charts (see svg_chart.h): line and scatter charts with error bars on
// categorical, linear or log10 x axes, and heatmaps with a viridis-like colour scale and legend.
// No font metrics are available, so layout works from estimated text widths: labels are thinned,
// rotated or truncated (the full text kept in a <title> tooltip) rather than overlapped.
// Output is deterministic and self-contained (no scripts, ids or external references) and never
// prints a non-finite number.
#include "sweeps/svg_chart.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace moetb::sweeps {
namespace {

// Okabe-Ito, ordered for contrast on white (the yellow last).
constexpr std::array<const char*, 8> kSeriesColours = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                                       "#56B4E9", "#E69F00", "#000000", "#F0E442"};
constexpr int kMarkerShapes = 5;
constexpr double kTitleFont = 16;
constexpr double kAxisTitleFont = 13;
constexpr double kTickFont = 11;
constexpr double kLegendFont = 12;
constexpr double kSin45 = 0.7071;
const std::string kEllipsis = "\xE2\x80\xA6";

// Compact number: "0.25", "1.2e-05"; "n/a" for non-finite values.
std::string format_number(double value, int significant) {
  if (!std::isfinite(value)) return "n/a";
  if (value == 0) return "0";
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "%.*g", significant, value);
  return buffer;
}

// A coordinate with at most two decimals and no trailing zeros.
std::string px(double value) {
  if (!std::isfinite(value)) value = 0;
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "%.2f", value);
  std::string text = buffer;
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text == "-0" ? "0" : text;
}

// Estimated advance of a glyph in em, on the wide side (DejaVu Sans, the usual Linux default
// sans-serif) so that text fitted with it also fits in narrower fonts such as Arial.
double glyph_em(unsigned char c) {
  if (c >= 0x80) return 0.7;
  if (std::string_view(" .,:;'|!ijlI").find(static_cast<char>(c)) != std::string_view::npos) return 0.32;
  if (std::string_view("ftr()[]-\"").find(static_cast<char>(c)) != std::string_view::npos) return 0.42;
  if (c == 'm' || c == 'w' || c == 'M' || c == 'W') return 0.98;
  if (c >= 'A' && c <= 'Z') return 0.72;
  return 0.63;
}

double text_width(const std::string& text, double font) {
  double em = 0;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c & 0xC0) != 0x80) em += glyph_em(c);  // UTF-8 continuation bytes add nothing
  }
  return em * font;
}

// The text, cut at a code point and ended with an ellipsis when wider than max_width.
std::string fit_text(const std::string& text, double font, double max_width) {
  if (max_width <= 0 || text_width(text, font) <= max_width) return text;
  std::string cut = text;
  while (!cut.empty()) {
    unsigned char removed = 0;
    do {
      removed = static_cast<unsigned char>(cut.back());
      cut.pop_back();
    } while (!cut.empty() && (removed & 0xC0) == 0x80);
    if (text_width(cut + kEllipsis, font) <= max_width) break;
  }
  return cut + kEllipsis;
}

// <text>, fitted to max_width (<= 0: no limit); a cut text carries the full one as a tooltip.
void add_text(std::string& out, double x, double y, const std::string& text, double font, const char* anchor,
              double max_width = 0, const std::string& extra = "") {
  if (text.empty()) return;
  const std::string shown = fit_text(text, font, max_width);
  out += "<text x=\"" + px(x) + "\" y=\"" + px(y) + "\" font-size=\"" + px(font) + "\" text-anchor=\"" + anchor +
         "\"" + extra + ">";
  if (shown != text) out += "<title>" + xml_escape(text) + "</title>";
  out += xml_escape(shown) + "</text>\n";
}

void add_line(std::string& out, double x1, double y1, double x2, double y2, const std::string& style) {
  out += "<line x1=\"" + px(x1) + "\" y1=\"" + px(y1) + "\" x2=\"" + px(x2) + "\" y2=\"" + px(y2) + "\" " + style +
         "/>\n";
}

std::string svg_open(double width, double height, const std::string& title) {
  width = std::ceil(width), height = std::ceil(height);
  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + px(width) + "\" height=\"" + px(height) +
                    "\" viewBox=\"0 0 " + px(width) + " " + px(height) +
                    "\" font-family=\"sans-serif\" role=\"img\" aria-label=\"" + xml_escape(title) + "\">\n";
  if (!title.empty()) out += "<title>" + xml_escape(title) + "</title>\n";
  out += "<rect width=\"" + px(width) + "\" height=\"" + px(height) + "\" fill=\"#ffffff\"/>\n";
  return out;
}

std::string no_data_svg(const std::string& title) {
  std::string out = svg_open(320, 120, title);
  if (!title.empty()) add_text(out, 160, 30, title, kTitleFont, "middle", 300, " font-weight=\"bold\"");
  add_text(out, 160, 72, "no data", 14, "middle", 0, " fill=\"#666666\"");
  return out + "</svg>\n";
}

// ---- axes and ticks ----

struct Axis {
  double d0 = 0, d1 = 1;  // domain, in log10 units on a log axis
  double p0 = 0, p1 = 1;  // pixel range
  bool log = false;
  double at(double value) const {
    const double t = log ? std::log10(value) : value;
    return p0 + (t - d0) / (d1 - d0) * (p1 - p0);
  }
};

struct Ticks {
  std::vector<double> values;
  std::vector<std::string> labels;
};

double nice_step(double span, double target_count) {
  const double raw = span / std::max(1.0, target_count);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / magnitude;
  return magnitude * (fraction <= 1.5 ? 1 : fraction <= 3 ? 2 : fraction <= 7 ? 5 : 10);
}

std::string strip_zeros(std::string text) {
  const std::size_t exponent = text.find('e');
  std::string mantissa = text.substr(0, exponent), suffix = exponent == std::string::npos ? "" : text.substr(exponent);
  if (mantissa.find('.') != std::string::npos) {
    while (mantissa.back() == '0') mantissa.pop_back();
    if (mantissa.back() == '.') mantissa.pop_back();
  }
  return mantissa == "-0" ? "0" : mantissa + suffix;
}

// Labels for values spaced by about step, each within tolerance * step of its value: plain
// decimals for magnitudes in [1e-3, 1e6), else exponent notation for all (no mixing).
std::vector<std::string> tick_labels(const std::vector<double>& values, double step, double tolerance = 1e-6) {
  double largest = 0;
  for (double v : values) largest = std::max(largest, std::fabs(v));
  const bool plain = largest < 1e6 && (largest >= 1e-3 || largest == 0);
  std::vector<std::string> labels;
  for (int digits = plain ? std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9))) : 0; digits <= 15; ++digits) {
    labels.clear();
    bool accurate = true;
    for (double v : values) {
      char buffer[64];
      std::snprintf(buffer, sizeof buffer, plain ? "%.*f" : "%.*e", digits, v);
      labels.push_back(v == 0 || !std::isfinite(v) ? format_number(v, 1) : strip_zeros(buffer));
      if (std::fabs(std::strtod(buffer, nullptr) - v) > std::fabs(step) * tolerance) accurate = false;
    }
    if (accurate) break;
  }
  return labels;
}

// Multiples of step within [lo, hi] (snapped so that zero prints as 0).
Ticks linear_ticks(double lo, double hi, double step) {
  Ticks ticks;
  if (!(std::isfinite(step) && step > 0 && std::isfinite(lo) && std::isfinite(hi))) return ticks;
  const double first = std::ceil(lo / step - 1e-9);
  const double last = std::floor(hi / step + 1e-9);
  if (!(last - first < 200)) return ticks;
  for (double k = first; k <= last; ++k) ticks.values.push_back(std::fabs(k) < 0.5 ? 0.0 : k * step);
  ticks.labels = tick_labels(ticks.values, step);
  return ticks;
}

// Ticks for a log10 axis over [lo, hi] (log10 units): decades, thinned to every k-th when
// crowded, with 2x and 5x added on short ranges; plain nice ticks within a single decade.
Ticks log_ticks(double lo, double hi, double plot_width) {
  Ticks ticks;
  const double decades = hi - lo;
  const double decade_px = std::max(plot_width, 1.0) / decades;
  const int every = std::max(1, static_cast<int>(std::ceil(48 / decade_px)));
  for (double e = std::ceil(lo - 1e-9); e <= hi + 1e-9; ++e) {
    for (double m : {1.0, 2.0, 5.0}) {
      if (m != 1 && decades > 2.5) continue;
      if (m == 1 && std::fmod(e, every) != 0) continue;
      const double t = e + std::log10(m);
      if (t >= lo - 1e-9 && t <= hi + 1e-9) ticks.values.push_back(m * std::pow(10.0, e));
    }
  }
  if (ticks.values.size() < 2) {
    const double a = std::pow(10.0, lo), b = std::pow(10.0, hi);
    return linear_ticks(a, b, nice_step(b - a, 4));
  }
  const bool plain = ticks.values.front() >= 1e-3 && ticks.values.back() < 1e6;
  for (double v : ticks.values) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, plain ? "%.10g" : "%.0e", v);  // the mantissa is 1, 2 or 5
    ticks.labels.push_back(buffer);
  }
  return ticks;
}

// ---- colours and markers ----

std::string hex_colour(double r, double g, double b) {
  char buffer[8];
  auto channel = [](double c) { return static_cast<int>(std::lround(std::clamp(c, 0.0, 255.0))); };
  std::snprintf(buffer, sizeof buffer, "#%02x%02x%02x", channel(r), channel(g), channel(b));
  return buffer;
}

// Viridis, sampled at 11 evenly spaced points and interpolated linearly; also the luminance.
std::string viridis(double fraction, double* luminance = nullptr) {
  static constexpr double kStops[11][3] = {{68, 1, 84},    {72, 36, 117},  {65, 68, 135},  {53, 95, 141},
                                           {42, 120, 142}, {33, 145, 140}, {34, 168, 132}, {68, 191, 112},
                                           {122, 209, 81}, {189, 223, 38}, {253, 231, 37}};
  const double position = std::clamp(std::isfinite(fraction) ? fraction : 0.0, 0.0, 1.0) * 10;
  const int index = std::min(9, static_cast<int>(position));
  const double w = position - index;
  double rgb[3];
  for (int c = 0; c < 3; ++c) rgb[c] = kStops[index][c] * (1 - w) + kStops[index + 1][c] * w;
  if (luminance) *luminance = (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255;
  return hex_colour(rgb[0], rgb[1], rgb[2]);
}

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

// Widens a zero-width range around its value.
void widen_if_flat(double& lo, double& hi) {
  if (hi - lo > 1e-12 * std::max(std::fabs(lo), std::fabs(hi))) return;
  const double pad = lo != 0 ? std::fabs(lo) * 0.1 : 1.0;
  lo -= pad;
  hi += pad;
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:  // control characters other than tab and newlines are not allowed in XML 1.0
        if (static_cast<unsigned char>(ch) >= 0x20 || ch == '\t' || ch == '\n' || ch == '\r') out += ch;
    }
  }
  return out;
}

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

std::string render_heatmap(const Heatmap& map) {
  const std::size_t rows = map.rows.size(), cols = map.cols.size();
  if (rows == 0 || cols == 0) return no_data_svg(map.title);
  auto value_at = [&](std::size_t r, std::size_t c) {
    const std::size_t i = r * cols + c;
    return i < map.values.size() ? map.values[i] : NAN;
  };

  // Colour range: the given one, else the data's; a flat range is widened around its value.
  double lo = std::min(map.vmin, map.vmax), hi = std::max(map.vmin, map.vmax);
  bool any_missing = false;
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) {
    lo = INFINITY, hi = -INFINITY;
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t c = 0; c < cols; ++c)
        if (std::isfinite(value_at(r, c))) lo = std::min(lo, value_at(r, c)), hi = std::max(hi, value_at(r, c));
    if (lo > hi) lo = 0, hi = 1;
    widen_if_flat(lo, hi);
    const double step = nice_step(hi - lo, 4);  // round outwards, so the legend reads 0 .. 0.25
    lo = std::floor(lo / step) * step, hi = std::ceil(hi / step) * step;
  }
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) any_missing = any_missing || !std::isfinite(value_at(r, c));

  // Layout: row labels left, column labels below (rotated and thinned when crowded), legend right.
  const double n_rows = static_cast<double>(rows), n_cols = static_cast<double>(cols);
  const double cell = map.cell > 0 ? map.cell : std::clamp(std::floor(std::min(600 / n_cols, 480 / n_rows)), 6.0, 44.0);
  const double cell_h = map.cell_height > 0 ? std::max(6, map.cell_height) : cell;  // rows may be taller than wide
  double row_label_width = 0, col_label_width = 0;
  for (const std::string& r : map.rows) row_label_width = std::max(row_label_width, text_width(r, kTickFont));
  for (const std::string& c : map.cols) col_label_width = std::max(col_label_width, text_width(c, kTickFont));
  row_label_width = std::min(row_label_width, 150.0);
  col_label_width = std::min(col_label_width, 110.0);
  const std::size_t row_every = static_cast<std::size_t>(std::max(1.0, std::ceil(13 / cell_h)));
  const bool rotate_cols = col_label_width > cell - 4;
  const std::size_t col_every = static_cast<std::size_t>(std::max(1.0, std::ceil((rotate_cols ? 17 : 13) / cell)));
  const double col_labels_height = rotate_cols ? col_label_width * kSin45 + 16 : 18;

  double left = 10 + (map.row_label.empty() ? 0 : 22) + row_label_width + 8;
  if (rotate_cols) left = std::max(left, col_label_width * kSin45 - cell / 2 + 8);
  const double top = map.title.empty() ? 14 : 44;
  const double grid_w = cell * n_cols, grid_h = cell_h * n_rows;
  const double bar_h = std::clamp(grid_h - 20, 100.0, 240.0);
  std::vector<double> scale_values = {hi, (lo + hi) / 2, lo};
  const std::vector<std::string> scale_labels = tick_labels(scale_values, (hi - lo) / 2, 1e-2);
  double scale_label_width = text_width("missing", kTickFont);
  for (const std::string& label : scale_labels) scale_label_width = std::max(scale_label_width, text_width(label, kTickFont));
  const double value_label_width = std::min(text_width(map.value_label, kTickFont), 160.0);
  const double legend_x = left + grid_w + 20;
  const double legend_w = std::max(14 + 6 + scale_label_width, value_label_width) + 14;
  double width = legend_x + legend_w;
  if (!map.title.empty()) width = std::max(width, std::min(text_width(map.title, kTitleFont) * 1.1 + 24, 900.0));  // bold
  const double bottom = 8 + col_labels_height + (map.col_label.empty() ? 0 : 22);
  const double bar_y0 = top + 24;  // room for the legend title above the top tick label
  const double height = std::max(top + grid_h + bottom, bar_y0 + bar_h + (any_missing ? 34 : 0) + 14);

  std::string out = svg_open(width, height, map.title);
  if (!map.title.empty())
    add_text(out, width / 2, 28, map.title, kTitleFont, "middle", width - 16, " font-weight=\"bold\"");

  // Cells, each with a tooltip; missing cells grey and hatched.
  const std::string row_name = map.row_label.empty() ? "row" : map.row_label;
  const std::string col_name = map.col_label.empty() ? "column" : map.col_label;
  const std::string value_name = map.value_label.empty() ? "value" : map.value_label;
  const std::string gap = std::min(cell, cell_h) >= 12 ? " stroke=\"#ffffff\" stroke-width=\"1\"" : "";
  out += "<g class=\"cells\">\n";
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c) {
      const double v = value_at(r, c), x = left + cell * static_cast<double>(c), y = top + cell_h * static_cast<double>(r);
      const bool missing = !std::isfinite(v);
      double luminance = 1;
      const std::string fill = missing ? "#d9d9d9" : viridis((v - lo) / (hi - lo), &luminance);
      const std::string tooltip = row_name + ": " + map.rows[r] + ", " + col_name + ": " + map.cols[c] + ", " +
                                  value_name + ": " + (missing ? "missing" : format_number(v, 6));
      out += "<rect class=\"cell\" x=\"" + px(x) + "\" y=\"" + px(y) + "\" width=\"" + px(cell) + "\" height=\"" +
             px(cell_h) + "\" fill=\"" + fill + "\"" + gap + "><title>" + xml_escape(tooltip) + "</title></rect>\n";
      if (missing) {
        out += "<path class=\"missing-hatch\" d=\"M" + px(x + 1) + " " + px(y + cell_h - 1) + "L" + px(x + cell - 1) + " " +
               px(y + 1) + "\" stroke=\"#8c8c8c\" stroke-width=\"1\" pointer-events=\"none\"/>\n";
      } else if (cell >= 30 && cell_h >= 16) {
        const std::string shown = format_number(v, 2);
        if (text_width(shown, 10) <= cell - 4)
          add_text(out, x + cell / 2, y + cell_h / 2 + 3.5, shown, 10, "middle", 0,
                   std::string(" pointer-events=\"none\" fill=\"") + (luminance < 0.45 ? "#ffffff" : "#111111") + "\"");
      }
    }
  }
  out += "</g>\n";

  // Row and column labels and axis titles.
  out += "<g class=\"labels\" fill=\"#333333\">\n";
  for (std::size_t r = 0; r < rows; r += row_every)
    add_text(out, left - 6, top + cell_h * (static_cast<double>(r) + 0.5) + 4, map.rows[r], kTickFont, "end", 150);
  const double label_y = top + grid_h + 6;
  for (std::size_t c = 0; c < cols; c += col_every) {
    const double x = left + cell * (static_cast<double>(c) + 0.5);
    if (rotate_cols)
      add_text(out, x + 3, label_y + 6, map.cols[c], kTickFont, "end", 110,
               " transform=\"rotate(-45 " + px(x + 3) + " " + px(label_y + 6) + ")\"");
    else
      add_text(out, x, label_y + 12, map.cols[c], kTickFont, "middle");
  }
  if (!map.col_label.empty())
    add_text(out, left + grid_w / 2, top + grid_h + bottom - 10, map.col_label, kAxisTitleFont, "middle", std::max(grid_w, 120.0));
  if (!map.row_label.empty())
    add_text(out, 18, top + grid_h / 2, map.row_label, kAxisTitleFont, "middle", std::max(grid_h, 80.0),
             " transform=\"rotate(-90 18 " + px(top + grid_h / 2) + ")\"");
  out += "</g>\n";

  // Colour legend: a bar of slices (top = max), min/mid/max labels, title, missing swatch.
  out += "<g class=\"colour-legend\">\n";
  add_text(out, legend_x, bar_y0 - 12, map.value_label, kTickFont, "start", 160, " font-weight=\"bold\"");
  constexpr int kSlices = 48;
  const double slice_h = bar_h / kSlices;
  for (int k = 0; k < kSlices; ++k) {
    out += "<rect class=\"scale\" x=\"" + px(legend_x) + "\" y=\"" + px(bar_y0 + slice_h * k) + "\" width=\"14\" height=\"" +
           px(slice_h + 0.5) + "\" fill=\"" + viridis(1 - (k + 0.5) / kSlices) + "\"/>\n";
  }
  out += "<rect x=\"" + px(legend_x) + "\" y=\"" + px(bar_y0) + "\" width=\"14\" height=\"" + px(bar_h) +
         "\" fill=\"none\" stroke=\"#666666\" stroke-width=\"0.5\"/>\n";
  for (std::size_t i = 0; i < scale_labels.size(); ++i) {
    const double y = bar_y0 + bar_h * static_cast<double>(i) / 2;
    add_line(out, legend_x + 14, y, legend_x + 18, y, "stroke=\"#666666\"");
    add_text(out, legend_x + 20, y + 4, scale_labels[i], kTickFont, "start", 0, " fill=\"#333333\"");
  }
  if (any_missing) {
    const double y = bar_y0 + bar_h + 18;
    out += "<rect x=\"" + px(legend_x) + "\" y=\"" + px(y) + "\" width=\"14\" height=\"14\" fill=\"#d9d9d9\"/>\n";
    out += "<path d=\"M" + px(legend_x + 1) + " " + px(y + 13) + "L" + px(legend_x + 13) + " " + px(y + 1) +
           "\" stroke=\"#8c8c8c\" stroke-width=\"1\"/>\n";
    add_text(out, legend_x + 20, y + 11, "missing", kTickFont, "start", 0, " fill=\"#333333\"");
  }
  out += "</g>\n";
  return out + "</svg>\n";
}

}  // namespace moetb::sweeps
