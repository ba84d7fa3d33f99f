// Self-contained SVG heatmaps for reports (e.g. p_d(e), the share of a domain's tokens per
// expert): cells with tooltips, missing cells hatched, row and column labels thinned or rotated
// when crowded, and a viridis colour-scale legend, or a diverging one (blue below, red above a
// neutral value such as the chance level 1/E, which is drawn light grey), so that what is at
// chance never looks bright. One <svg> element, no scripts. Torch-free.
#pragma once
#include <cmath>
#include <string>
#include <vector>

namespace moetb::charts {

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
  double neutral = NAN;                  // finite, inside (vmin, vmax): a diverging scale, neutral at this value
  std::string neutral_label;             // legend label of the neutral tick, e.g. "chance 1/E"
  int cell = 0;                          // cell size in px (0: chosen from the matrix size)
  int cell_height = 0;                   // cell height in px (0: square cells), e.g. for few rows and many columns
};

std::string render_heatmap(const Heatmap& map);

}  // namespace moetb::charts
