// Self-contained SVG line charts for sweep results and reports: lines with error bars on a
// categorical, linear or log10 x axis, and scatter plots (markers only). Output is one <svg>
// element (no scripts, no external fonts or links), readable on its own or inlined into an
// HTML report. Torch-free.
#pragma once
#include <string>
#include <vector>

namespace moetb::charts {

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

std::string render_line_chart(const LineChart& chart);

}  // namespace moetb::charts
