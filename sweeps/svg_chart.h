// Self-contained SVG charts for sweep results and reports: line charts with error bars
// (categorical or numeric x), scatter plots, and heatmaps with a colour-scale legend.
// Output is one <svg> element (no scripts, no external fonts or links), readable on its
// own or inlined into an HTML report. Torch-free.
#pragma once
#include <string>
#include <vector>

namespace moetb::sweeps {

struct ChartSeries {
  std::string name;        // legend entry
  std::vector<double> x;   // x values, or indices into LineChart::x_categories
  std::vector<double> y;   // NaN = missing point (the line breaks there)
  std::vector<double> err; // empty, or one half-width per point (NaN = no bar)
  bool dashed = false;     // a dashed line (e.g. a reference level such as an entropy floor)
  bool markers = true;     // false: the line alone (dense series such as per-step training curves)
  int colour = -1;         // palette index (-1: the series' position), to pair related series
};

struct LineChart {
  std::string title;
  std::string x_label;                   // with units where there are any
  std::string y_label;
  std::vector<std::string> x_categories; // non-empty: a categorical x axis
  std::vector<ChartSeries> series;
  bool draw_lines = true;                // false: markers only (a scatter plot)
  bool log_x = false;                    // numeric x on a log10 axis (all x > 0)
  int width = 640;
  int height = 400;
};

struct Heatmap {
  std::string title;
  std::string row_label;                 // axis title for the rows, e.g. "domain"
  std::string col_label;                 // e.g. "expert"
  std::string value_label;               // colour legend title, e.g. "p_d(e)"
  std::vector<std::string> rows;         // row names, top to bottom
  std::vector<std::string> cols;         // column names, left to right
  std::vector<double> values;            // rows.size() * cols.size(), row-major; NaN = blank cell
  double vmin = 0;                       // colour scale range (vmin == vmax: take the data's range)
  double vmax = 0;
  int cell = 0;                          // cell size in px (0: chosen from the matrix size)
  int cell_height = 0;                   // cell height in px (0: square cells), e.g. for few rows and many columns
};

std::string render_line_chart(const LineChart& chart);
std::string render_heatmap(const Heatmap& map);

// Escapes &, <, >, " and ' for SVG/HTML text and attributes.
std::string xml_escape(const std::string& text);

}  // namespace moetb::sweeps
