// Router saturation of a run's evaluation traces against the final one (see saturation.h).
// A pair that cannot be compared (different tokens, layers or experts) becomes a note, not
// an error: the rest of the report still renders.
#include "reports/saturation.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <regex>

#include "metrics/trace.h"
#include "metrics/trace_compare.h"
#include "reports/html.h"
#include "runs/run_format.h"
#include "charts/line_chart.h"

namespace fs = std::filesystem;

namespace moetb::reports {

std::vector<std::pair<int64_t, std::string>> run_traces(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  const fs::path dir = fs::path(run_dir) / runs::kTracesDir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  static const std::regex name(R"(step-(\d+)\.safetensors)");
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string file = entry.path().filename().string();
    if (entry.is_regular_file(ec) && std::regex_match(file, m, name) && m[1].length() < 18)
      out.emplace_back(std::stoll(m[1].str()), entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string saturation_content(const std::vector<std::pair<int64_t, std::string>>& traces) {
  if (traces.empty()) return note("This run has no evaluation traces (traces/step-NNNNNN.safetensors), so there is nothing to compare.");
  const Trace last({traces.back().second});
  std::vector<std::pair<int64_t, std::vector<std::optional<double>>>> rows;
  std::vector<std::string> notes;
  int n_layers = 0;
  for (const auto& [step, path] : traces) {
    try {
      const Trace a({path});
      const std::string skip = saturation_skip_reason(a, last);
      if (!skip.empty()) {
        notes.push_back("step " + std::to_string(step) + ": " + skip);
        continue;
      }
      rows.emplace_back(step, router_saturation(a, last));
      n_layers = std::max(n_layers, static_cast<int>(rows.back().second.size()));
    } catch (const std::exception& e) {
      notes.push_back("step " + std::to_string(step) + ": " + e.what());
    }
  }
  std::string out;
  charts::LineChart c;
  c.title = "Router saturation against the final evaluation (step " + std::to_string(traces.back().first) + ")";
  c.x_label = "training step";
  c.y_label = "router saturation";
  c.width = 720;
  c.height = 380;
  for (int l = 0; l < n_layers; ++l) {
    charts::ChartSeries s;
    s.name = "layer " + std::to_string(l);
    for (const auto& [step, sat] : rows) {
      s.x.push_back(static_cast<double>(step));
      s.y.push_back(static_cast<std::size_t>(l) < sat.size() && sat[static_cast<std::size_t>(l)] ? *sat[static_cast<std::size_t>(l)] : NAN);
    }
    c.series.push_back(std::move(s));
  }
  // Chance: a router choosing k of E experts at random shares k/E of the final ones.
  const TraceMeta& meta = last.meta();
  const double chance = meta.num_experts > 0 ? static_cast<double>(meta.top_k) / static_cast<double>(meta.num_experts) : NAN;
  if (!rows.empty() && std::isfinite(chance) && chance > 0 && chance < 1) {
    charts::ChartSeries s;
    s.name = "chance (k/E)";
    s.x = {static_cast<double>(rows.front().first), static_cast<double>(rows.back().first)};
    s.y = {chance, chance};
    s.dashed = true;
    s.markers = false;
    s.colour = 6;  // black
    c.series.push_back(std::move(s));
  }
  std::string caption =
      "For each evaluation, per MoE layer: mean over the validation tokens of |S_t \xE2\x88\xA9 S_t^final| / |S_t^final|, "
      "the share of the experts the final router picks for token t that the router at that step already picked "
      "(OLMoE's router saturation). 1 means routing had already settled into its final form; a top-k router "
      "choosing at random scores k/E (dashed line). The last point compares the final trace with itself and is 1 by definition.";
  if (traces.size() == 1) caption += " This run has a single evaluation, so the curve is that one point.";
  out += "<div class=\"figures\">\n" +
         figure("chart curve saturation", " data-curve=\"saturation\"", charts::render_line_chart(c), caption) + "</div>\n";
  Table t;
  t.id = "saturation-table";
  t.caption = "Router saturation per evaluation step and MoE layer";
  t.header = {"step"};
  for (int l = 0; l < n_layers; ++l) t.header.push_back("layer " + std::to_string(l));
  for (std::size_t i = 0; i < t.header.size(); ++i) t.numeric.push_back(i);
  for (const auto& [step, sat] : rows) {
    std::vector<std::string> row = {"<td class=\"num\">" + std::to_string(step) + "</td>"};
    for (int l = 0; l < n_layers; ++l) {
      const auto& v = static_cast<std::size_t>(l) < sat.size() ? sat[static_cast<std::size_t>(l)] : std::nullopt;
      row.push_back(number_cell(v ? nlohmann::json(*v) : nlohmann::json(nullptr)));
    }
    t.rows.push_back(std::move(row));
    t.row_attrs.push_back(" data-step=\"" + std::to_string(step) + "\"");
  }
  out += table(t);
  for (const auto& n : notes) out += note(n);
  return out;
}

}  // namespace moetb::reports
