// The shared SVG chart helpers (see svg_common.h): escaping, number and coordinate formatting,
// text-width estimates and fitting, the <svg> frame, and nice linear and log10 ticks. Output is
// deterministic and never prints a non-finite number.
#include "charts/svg_common.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace moetb::charts {

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

namespace detail {
namespace {

const std::string kEllipsis = "\xE2\x80\xA6";

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

std::string strip_zeros(std::string text) {
  const std::size_t exponent = text.find('e');
  std::string mantissa = text.substr(0, exponent), suffix = exponent == std::string::npos ? "" : text.substr(exponent);
  if (mantissa.find('.') != std::string::npos) {
    while (mantissa.back() == '0') mantissa.pop_back();
    if (mantissa.back() == '.') mantissa.pop_back();
  }
  return mantissa == "-0" ? "0" : mantissa + suffix;
}

}  // namespace

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
              double max_width, const std::string& extra) {
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

double Axis::at(double value) const {
  const double t = log ? std::log10(value) : value;
  return p0 + (t - d0) / (d1 - d0) * (p1 - p0);
}

double nice_step(double span, double target_count) {
  const double raw = span / std::max(1.0, target_count);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / magnitude;
  return magnitude * (fraction <= 1.5 ? 1 : fraction <= 3 ? 2 : fraction <= 7 ? 5 : 10);
}


// Labels for values spaced by about step, each within tolerance * step of its value: plain
// decimals for magnitudes in [1e-3, 1e6), else exponent notation for all (no mixing).
std::vector<std::string> tick_labels(const std::vector<double>& values, double step, double tolerance) {
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

// Widens a zero-width range around its value.
void widen_if_flat(double& lo, double& hi) {
  if (hi - lo > 1e-12 * std::max(std::fabs(lo), std::fabs(hi))) return;
  const double pad = lo != 0 ? std::fabs(lo) * 0.1 : 1.0;
  lo -= pad;
  hi += pad;
}

}  // namespace detail
}  // namespace moetb::charts
