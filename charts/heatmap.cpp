// SVG rendering of heatmaps (see heatmap.h): a viridis-like colour scale (sampled at 11 points,
// interpolated linearly) or a diverging one around a neutral value, cell values printed when cells are large enough (dark or light text by
// luminance), and a legend with min, mid and max and a "missing" swatch when needed.
#include "charts/heatmap.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "charts/svg_common.h"

namespace moetb::charts {

using namespace detail;

namespace {

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

// A diverging blue - light grey - red scale (ColorBrewer RdBu, 7 stops): fraction 0.5 is neutral.
std::string diverging(double fraction, double* luminance = nullptr) {
  static constexpr double kStops[7][3] = {{33, 102, 172}, {103, 169, 207}, {209, 229, 240}, {240, 240, 240},
                                          {253, 219, 199}, {239, 138, 98},  {178, 24, 43}};
  const double position = std::clamp(std::isfinite(fraction) ? fraction : 0.5, 0.0, 1.0) * 6;
  const int index = std::min(5, static_cast<int>(position));
  const double w = position - index;
  double rgb[3];
  for (int c = 0; c < 3; ++c) rgb[c] = kStops[index][c] * (1 - w) + kStops[index + 1][c] * w;
  if (luminance) *luminance = (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255;
  return hex_colour(rgb[0], rgb[1], rgb[2]);
}

}  // namespace

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
  // Diverging around `neutral`: each side of it spans half of the scale.
  const bool centred = std::isfinite(map.neutral) && map.neutral > lo && map.neutral < hi;
  auto fraction_of = [&](double v) {
    if (!centred) return (v - lo) / (hi - lo);
    return v <= map.neutral ? 0.5 * (v - lo) / (map.neutral - lo) : 0.5 + 0.5 * (v - map.neutral) / (hi - map.neutral);
  };
  auto colour_of = [&](double v, double* luminance) { return centred ? diverging(fraction_of(v), luminance) : viridis(fraction_of(v), luminance); };

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
  std::vector<double> scale_values = {hi, centred ? map.neutral : (lo + hi) / 2, lo};
  std::vector<std::string> scale_labels = tick_labels(scale_values, centred ? std::min(hi - map.neutral, map.neutral - lo) : (hi - lo) / 2, 1e-2);
  if (centred && !map.neutral_label.empty()) scale_labels[1] += " " + map.neutral_label;
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
      const std::string fill = missing ? "#d9d9d9" : colour_of(v, &luminance);
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
           px(slice_h + 0.5) + "\" fill=\"" + (centred ? diverging(1 - (k + 0.5) / kSlices) : viridis(1 - (k + 0.5) / kSlices)) + "\"/>\n";
  }
  out += "<rect x=\"" + px(legend_x) + "\" y=\"" + px(bar_y0) + "\" width=\"14\" height=\"" + px(bar_h) +
         "\" fill=\"none\" stroke=\"#666666\" stroke-width=\"0.5\"/>\n";
  for (std::size_t i = 0; i < scale_labels.size(); ++i) {
    const double y = bar_y0 + bar_h * (1 - fraction_of(scale_values[i]));  // centred: the neutral tick mid-bar
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

}  // namespace moetb::charts
