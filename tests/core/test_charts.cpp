// Tests of charts/ (line_chart.h, heatmap.h): every chart is one well-formed, standalone <svg> (checked with a
// small tag-balance checker), carries its titles, labels, legend and category labels, escapes
// text, never prints NaN/inf, draws error bars, broken lines and scatter markers as asked, and
// renders heatmaps with one cell (and tooltip) per value plus a labelled colour legend.
// Degenerate inputs (no series, all NaN, one point, flat ranges, empty heatmaps) must not crash.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "charts/heatmap.h"
#include "charts/line_chart.h"
#include "charts/svg_common.h"

using moetb::charts::ChartSeries;
using moetb::charts::Heatmap;
using moetb::charts::LineChart;
using moetb::charts::render_heatmap;
using moetb::charts::render_line_chart;
using moetb::charts::xml_escape;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Empty when the document is one balanced element tree rooted at <svg>, with quoted attributes
// and no raw '<' or bare '&' in text; otherwise what is wrong.
std::string xml_problem(const std::string& xml) {
  std::vector<std::string> open;
  std::size_t pos = 0;
  bool root_seen = false;
  while (pos < xml.size()) {
    const std::size_t lt = xml.find('<', pos);
    const std::string text = xml.substr(pos, lt == std::string::npos ? std::string::npos : lt - pos);
    for (std::size_t amp = text.find('&'); amp != std::string::npos; amp = text.find('&', amp + 1)) {
      const std::size_t semi = text.find(';', amp);
      if (semi == std::string::npos || semi - amp > 6) return "bare & in text near: " + text.substr(amp, 20);
    }
    if (open.empty() && root_seen && text.find_first_not_of(" \n\t\r") != std::string::npos) return "text after the root";
    if (lt == std::string::npos) break;
    const std::size_t gt = xml.find('>', lt);
    if (gt == std::string::npos) return "unterminated tag";
    const std::string tag = xml.substr(lt + 1, gt - lt - 1);
    if (tag.find('<') != std::string::npos) return "'<' inside a tag: " + tag;
    if (std::count(tag.begin(), tag.end(), '"') % 2 != 0) return "unbalanced quotes in: " + tag;
    if (tag.empty()) return "empty tag";
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (open.empty() || open.back() != name) return "mismatched </" + name + ">";
      open.pop_back();
    } else {
      const std::string name = tag.substr(0, tag.find_first_of(" \n\t/"));
      if (open.empty()) {
        if (root_seen) return "second root element <" + name + ">";
        if (name != "svg") return "root is <" + name + ">, not <svg>";
        root_seen = true;
      }
      if (tag.back() != '/') open.push_back(name);
    }
    pos = gt + 1;
  }
  if (!root_seen) return "no root element";
  if (!open.empty()) return "unclosed <" + open.back() + ">";
  return "";
}

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + needle.size())) ++n;
  return n;
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// The text between <g class="NAME"> and its closing tag (groups of this name hold no nested <g>).
std::string group(const std::string& svg, const std::string& name) {
  const std::size_t start = svg.find("<g class=\"" + name + "\"");
  if (start == std::string::npos) return "";
  return svg.substr(start, svg.find("</g>", start) - start);
}

void check_standalone_svg(const std::string& svg) {
  INFO(svg.substr(0, 400));
  CHECK(xml_problem(svg).empty());
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK(svg.find(" width=\"") != std::string::npos);
  CHECK(svg.find(" height=\"") != std::string::npos);
  CHECK(svg.find(" viewBox=\"0 0 ") != std::string::npos);
  CHECK(svg.find("font-family=\"sans-serif\"") != std::string::npos);
  CHECK(count(svg, "http") == 1);  // the namespace only: no links, fonts or images
  CHECK(svg.find("<script") == std::string::npos);
  CHECK(svg.find("href") == std::string::npos);
  CHECK(svg.find("url(") == std::string::npos);
  CHECK(lower(svg).find("nan") == std::string::npos);
  CHECK(lower(svg).find("inf") == std::string::npos);
}

LineChart router_chart() {
  LineChart chart;
  chart.title = "Routing sparsity by router";
  chart.x_label = "router";
  chart.y_label = "RS";
  chart.x_categories = {"top1", "top2", "hash", "expert-choice"};
  chart.series = {{"lr=1e-3", {0, 1, 2, 3}, {0.42, 0.51, 0.12, 0.66}, {0.03, 0.05, kNaN, 0.04}},
                  {"lr=3e-4", {0, 1, 2, 3}, {0.38, 0.47, 0.11, 0.61}, {}}};
  return chart;
}

}  // namespace

TEST_CASE("xml_escape escapes markup characters and drops control characters", "[sweeps]") {
  CHECK(xml_escape("<&>\"'") == "&lt;&amp;&gt;&quot;&apos;");
  CHECK(xml_escape("plain text, 1.5") == "plain text, 1.5");
  CHECK(xml_escape(std::string("a\x01" "b\tc")) == "ab\tc");
  CHECK(xml_escape("p\xC3\xA9") == "p\xC3\xA9");  // UTF-8 passes through
}

TEST_CASE("the tag-balance checker itself rejects broken documents", "[sweeps]") {
  CHECK(xml_problem("<svg><g></g></svg>").empty());
  CHECK_FALSE(xml_problem("<svg><g></svg>").empty());
  CHECK_FALSE(xml_problem("<svg><text>a < b</text></svg>").empty());
  CHECK_FALSE(xml_problem("<svg><text>a & b</text></svg>").empty());
  CHECK_FALSE(xml_problem("<svg/><svg/>").empty());
  CHECK_FALSE(xml_problem("<svg a=\"1></svg>").empty());
}

TEST_CASE("line chart: standalone svg with titles, category labels and a legend entry per series", "[sweeps]") {
  const LineChart chart = router_chart();
  const std::string svg = render_line_chart(chart);
  check_standalone_svg(svg);
  CHECK(svg.find(">Routing sparsity by router</text>") != std::string::npos);
  CHECK(svg.find("<title>Routing sparsity by router</title>") != std::string::npos);
  CHECK(svg.find(">router</text>") != std::string::npos);
  CHECK(svg.find(">RS</text>") != std::string::npos);
  for (const std::string& category : chart.x_categories) CHECK(svg.find(">" + category + "</text>") != std::string::npos);
  const std::string legend = group(svg, "legend");
  CHECK(count(legend, "<text") == 2);
  CHECK(legend.find(">lr=1e-3</text>") != std::string::npos);
  CHECK(legend.find(">lr=3e-4</text>") != std::string::npos);
  CHECK(svg.find("#0072B2") != std::string::npos);  // Okabe-Ito blue for the first series
  CHECK(svg.find("#D55E00") != std::string::npos);  // and vermillion for the second
  CHECK(count(svg, "<polyline") == 2);
  CHECK(count(svg, "class=\"marker\"") == 8 + 2);  // points plus one marker per legend entry
}

TEST_CASE("line chart: error bars with caps where err is given and finite", "[sweeps]") {
  const std::string svg = render_line_chart(router_chart());
  CHECK(count(svg, "<g class=\"err-bar\">") == 3);  // first series: 4 errors, one NaN; second: none
  const std::string bar = group(svg, "err-bar");
  CHECK(count(bar, "<line") == 3);  // the bar and its two caps

  LineChart without = router_chart();
  for (ChartSeries& s : without.series) s.err.clear();
  CHECK(render_line_chart(without).find("err-bar") == std::string::npos);
}

TEST_CASE("line chart: text is escaped", "[sweeps]") {
  LineChart chart = router_chart();
  chart.title = "a<b & c>d";
  chart.x_label = "x \"quoted\"";
  chart.series[0].name = "<&>";
  chart.x_categories[1] = "top<2>&co";
  const std::string svg = render_line_chart(chart);
  check_standalone_svg(svg);
  CHECK(svg.find("a&lt;b &amp; c&gt;d") != std::string::npos);
  CHECK(svg.find("&lt;&amp;&gt;") != std::string::npos);
  CHECK(svg.find("top&lt;2&gt;&amp;co") != std::string::npos);
  CHECK(svg.find("x &quot;quoted&quot;") != std::string::npos);
  CHECK(svg.find("a<b") == std::string::npos);
}

TEST_CASE("line chart: lines break at NaN and NaN is never printed", "[sweeps]") {
  LineChart chart;
  chart.title = "gaps";
  chart.series = {{"broken", {1, 2, 3, 4, 5}, {1, 2, kNaN, 3, 4}, {0.1, kNaN, 0.2, kNaN, 0.1}},
                  {"isolated", {1, 2, 3, 4, 5}, {1, kNaN, 2, kNaN, 3}, {}},
                  {"bad x", {kNaN, 2, std::numeric_limits<double>::infinity(), 4, 5}, {1, 2, 3, 4, 5}, {}}};
  const std::string svg = render_line_chart(chart);
  check_standalone_svg(svg);
  // "broken": runs {1,2} and {4,5}; "isolated": single points only; "bad x": {2} and {4,5}.
  CHECK(count(svg, "<polyline") == 3);
  CHECK(count(svg, "<g class=\"err-bar\">") == 2);
  CHECK(count(svg, "class=\"marker\"") == (4 + 3 + 3) + 3);
}

TEST_CASE("line chart: draw_lines = false gives a scatter plot without lines", "[sweeps]") {
  LineChart chart;
  chart.title = "DI vs RS";
  chart.x_label = "RS";
  chart.y_label = "DI";
  chart.draw_lines = false;
  for (int s = 0; s < 10; ++s) {  // more series than palette colours
    ChartSeries series{"router " + std::to_string(s), {}, {}, {}};
    for (int i = 0; i < 5; ++i) {
      series.x.push_back(0.1 * s + 0.01 * i);
      series.y.push_back(1e-5 * (1 + s) + 1e-6 * i);
    }
    chart.series.push_back(series);
  }
  const std::string svg = render_line_chart(chart);
  check_standalone_svg(svg);
  CHECK(svg.find("<polyline") == std::string::npos);
  CHECK(svg.find("<path") == std::string::npos);
  CHECK(count(group(svg, "legend"), "<line") == 0);
  CHECK(count(svg, "class=\"marker\"") == 50 + 10);
  CHECK(count(group(svg, "legend"), "<text") == 10);
  CHECK(svg.find(">1e-04</text>") != std::string::npos);  // compact exponent tick labels
  CHECK(svg.find(">0.2</text>") != std::string::npos);
}

TEST_CASE("line chart: numeric and log10 x axes get nice, compact tick labels", "[sweeps]") {
  LineChart linear;
  linear.series = {{"s", {0, 0.25, 0.5, 0.75, 1}, {0.1, 0.2, 0.3, 0.4, 0.5}, {}}};
  const std::string linear_svg = render_line_chart(linear);
  check_standalone_svg(linear_svg);
  for (const char* label : {">0</text>", ">0.2</text>", ">0.4</text>", ">1</text>"})
    CHECK(linear_svg.find(label) != std::string::npos);
  CHECK(linear_svg.find("0000000") == std::string::npos);  // no 0.30000000000000004

  LineChart log = linear;
  log.log_x = true;
  log.series = {{"loss", {1e3, 1e4, 1e5, -1, 0}, {3, 2.5, 2, 1.9, 1.8}, {}}};  // x <= 0 is skipped
  const std::string log_svg = render_line_chart(log);
  check_standalone_svg(log_svg);
  for (const char* label : {">1000</text>", ">10000</text>", ">100000</text>"}) CHECK(log_svg.find(label) != std::string::npos);
  CHECK(count(log_svg, "class=\"marker\"") == 3 + 1);
}

TEST_CASE("line chart: many categories are rotated and thinned", "[sweeps]") {
  LineChart chart;
  ChartSeries series{"acc", {}, {}, {}};
  for (int i = 0; i < 60; ++i) {
    chart.x_categories.push_back("configuration_" + std::to_string(i));
    series.x.push_back(i);
    series.y.push_back(0.5 + 0.01 * (i % 7));
  }
  chart.series = {series};
  const std::string svg = render_line_chart(chart);
  check_standalone_svg(svg);
  CHECK(svg.find("rotate(-45") != std::string::npos);
  const std::size_t shown = count(svg, ">configuration_");
  CHECK(shown >= 10);
  CHECK(shown < 60);
}

TEST_CASE("line chart: degenerate input renders without crashing", "[sweeps]") {
  LineChart empty;
  empty.title = "nothing";
  const std::string no_series = render_line_chart(empty);
  check_standalone_svg(no_series);
  CHECK(no_series.find(">no data</text>") != std::string::npos);

  LineChart all_missing;
  all_missing.series = {{"missing", {1, 2, 3}, {kNaN, kNaN, kNaN}, {kNaN, 1, 1}}};
  const std::string missing_svg = render_line_chart(all_missing);
  check_standalone_svg(missing_svg);
  CHECK(missing_svg.find(">no data</text>") != std::string::npos);
  CHECK(count(group(missing_svg, "legend"), "<text") == 1);

  LineChart one_point;
  one_point.series = {{"one", {3}, {2}, {0.5}}};
  const std::string one_svg = render_line_chart(one_point);
  check_standalone_svg(one_svg);
  CHECK(count(one_svg, "<g class=\"err-bar\">") == 1);
  CHECK(one_svg.find("<polyline") == std::string::npos);

  LineChart flat;
  flat.log_x = true;
  flat.series = {{"flat", {10, 10, 10}, {5, 5, 5}, {}}, {"zero", {10, 100}, {0, 0}, {}}};
  const std::string flat_svg = render_line_chart(flat);
  check_standalone_svg(flat_svg);
  CHECK(count(group(flat_svg, "axes"), "text-anchor=\"end\"") >= 2);  // y tick labels

  LineChart odd;
  odd.width = 0;
  odd.height = -5;
  odd.x_categories = {"only"};
  odd.series = {{"short x", {0}, {1, 2, 3}, {1, 2, 3, 4}}, {"out of range", {-3, 7}, {1, 2}, {}}};
  check_standalone_svg(render_line_chart(odd));

  LineChart huge;
  huge.series = {{"huge", {0, 1}, {-1e308, 1e308}, {}}};
  check_standalone_svg(render_line_chart(huge));
}

TEST_CASE("line chart and heatmap output is deterministic", "[sweeps]") {
  CHECK(render_line_chart(router_chart()) == render_line_chart(router_chart()));
  Heatmap map;
  map.rows = {"a", "b"};
  map.cols = {"x", "y", "z"};
  map.values = {1, 2, 3, 4, kNaN, 6};
  CHECK(render_heatmap(map) == render_heatmap(map));
}

TEST_CASE("heatmap: one cell per value with tooltips, labels and a labelled colour legend", "[sweeps]") {
  Heatmap map;
  map.title = "Expert usage";
  map.row_label = "domain";
  map.col_label = "expert";
  map.value_label = "p_d(e)";
  map.rows = {"code", "math", "prose"};
  map.cols = {"e0", "e1", "e2", "e3"};
  map.values = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.25, 0.0};
  map.vmin = 0;
  map.vmax = 1;
  const std::string svg = render_heatmap(map);
  check_standalone_svg(svg);
  CHECK(count(svg, "class=\"cell\"") == 12);
  CHECK(count(svg, "class=\"scale\"") >= 16);  // the colour bar
  for (const char* text : {">Expert usage</text>", ">domain</text>", ">expert</text>", ">p_d(e)</text>", ">code</text>",
                           ">prose</text>", ">e0</text>", ">e3</text>"})
    CHECK(svg.find(text) != std::string::npos);
  const std::string legend = group(svg, "colour-legend");
  for (const char* tick : {">0</text>", ">0.5</text>", ">1</text>"}) CHECK(legend.find(tick) != std::string::npos);
  CHECK(svg.find("<title>domain: math, expert: e2, p_d(e): 0.7</title>") != std::string::npos);
  CHECK(svg.find("<title>domain: prose, expert: e2, p_d(e): 0.25</title>") != std::string::npos);
  CHECK(svg.find("missing") == std::string::npos);
}

TEST_CASE("heatmap: a diverging scale puts the neutral value (chance 1/E) at light grey, mid-legend", "[sweeps]") {
  Heatmap map;
  map.rows = {"a", "b"};
  map.cols = {"e0", "e1", "e2", "e3"};
  map.values = {0.25, 0.25, 0.25, 0.25, 1.0, 0.0, 0.0, 0.0};  // a: uniform (chance), b: one expert
  map.vmin = 0;
  map.vmax = 1;
  map.neutral = 0.25;
  map.neutral_label = "(1/E)";
  const std::string svg = render_heatmap(map);
  check_standalone_svg(svg);
  CHECK(count(svg, "fill=\"#f0f0f0\"") == 4);  // the uniform row is neutral, not bright
  CHECK(count(svg, "fill=\"#b2182b\"") == 1);  // all of b on one expert: dark red
  CHECK(count(svg, "fill=\"#2166ac\"") == 3);  // never chosen: blue
  const std::string legend = group(svg, "colour-legend");
  CHECK(legend.find(">0.25 (1/E)</text>") != std::string::npos);
  CHECK(legend.find(">1</text>") != std::string::npos);
  CHECK(legend.find(">0</text>") != std::string::npos);
}

TEST_CASE("heatmap: NaN cells are grey and hatched, labels are escaped", "[sweeps]") {
  Heatmap map;
  map.rows = {"r<1>", "r&2"};
  map.cols = {"c\"1\"", "c2"};
  map.values = {0.5, kNaN, kNaN, 0.25};
  const std::string svg = render_heatmap(map);
  check_standalone_svg(svg);
  CHECK(count(svg, "class=\"cell\"") == 4);
  CHECK(count(svg, "class=\"missing-hatch\"") == 2);
  CHECK(count(svg, ": missing</title>") == 2);
  CHECK(svg.find(">missing</text>") != std::string::npos);  // the legend swatch
  CHECK(svg.find("r&lt;1&gt;") != std::string::npos);
  CHECK(svg.find("r&amp;2") != std::string::npos);
  CHECK(svg.find("c&quot;1&quot;") != std::string::npos);
}

TEST_CASE("heatmap: many columns get rotated, thinned labels", "[sweeps]") {
  Heatmap map;
  for (int r = 0; r < 12; ++r) map.rows.push_back("layer " + std::to_string(r));
  for (int c = 0; c < 64; ++c) map.cols.push_back("expert_" + std::to_string(c));
  for (int i = 0; i < 12 * 64; ++i) map.values.push_back(1.0 / 64 * (1 + 0.5 * std::sin(i * 0.3)));
  const std::string svg = render_heatmap(map);
  check_standalone_svg(svg);
  CHECK(count(svg, "class=\"cell\"") == 12 * 64);
  CHECK(svg.find("rotate(-45") != std::string::npos);
  const std::size_t shown = count(group(svg, "labels"), ">expert_");
  CHECK(shown >= 16);
  CHECK(shown < 64);
}

TEST_CASE("heatmap: degenerate input renders without crashing", "[sweeps]") {
  Heatmap empty;
  empty.title = "no rows";
  empty.cols = {"a"};
  const std::string empty_svg = render_heatmap(empty);
  check_standalone_svg(empty_svg);
  CHECK(empty_svg.find(">no data</text>") != std::string::npos);
  check_standalone_svg(render_heatmap(Heatmap{}));

  Heatmap flat;
  flat.rows = {"a", "b"};
  flat.cols = {"x"};
  flat.values = {0.5, 0.5};
  flat.value_label = "v";
  const std::string flat_svg = render_heatmap(flat);
  check_standalone_svg(flat_svg);
  CHECK(count(group(flat_svg, "colour-legend"), "<text") == 4);  // title + min/mid/max

  Heatmap all_missing = flat;
  all_missing.values = {kNaN, kNaN};
  check_standalone_svg(render_heatmap(all_missing));

  Heatmap short_values = flat;
  short_values.values = {1};
  short_values.vmin = 2;  // reversed range
  short_values.vmax = 0;
  const std::string short_svg = render_heatmap(short_values);
  check_standalone_svg(short_svg);
  CHECK(count(short_svg, "class=\"cell\"") == 2);
  CHECK(count(short_svg, "class=\"missing-hatch\"") == 1);
}
