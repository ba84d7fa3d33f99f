// Sweep results as a table and their aggregation over seeds (results.csv, summary.csv,
// summary.md). Missing values stay empty cells, never NaN or zero.
#include "sweeps/results_table.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>

namespace moetb::sweeps {
namespace {

void flatten_numbers(const nlohmann::json& j, const std::string& prefix, std::vector<std::pair<std::string, double>>& out) {
  if (j.is_number()) {
    out.emplace_back(prefix, j.get<double>());
  } else if (j.is_object()) {
    for (const auto& [k, v] : j.items()) flatten_numbers(v, prefix.empty() ? k : prefix + "." + k, out);
  }
}

// val_bits and val_bits.DOMAIN of one evaluation summary, each column name prefixed. A null
// loss (no evaluation tokens) keeps its column as an empty cell (NaN here), never 0.
void add_losses(const nlohmann::json& ev, const std::string& prefix, std::vector<std::pair<std::string, double>>& v) {
  auto loss = [](const nlohmann::json& j) { return j.is_number() ? j.get<double>() : std::nan(""); };
  if (ev.contains("loss_bits")) v.emplace_back(prefix + "val_bits", loss(ev["loss_bits"]));
  if (ev.contains("domains") && ev["domains"].is_array())
    for (const auto& d : ev["domains"])
      if (d.contains("name") && d["name"].is_string() && d.contains("loss_bits"))
        v.emplace_back(prefix + "val_bits." + d["name"].get<std::string>(), loss(d["loss_bits"]));
}

std::vector<std::pair<std::string, double>> row_values(const nlohmann::json& r) {
  std::vector<std::pair<std::string, double>> v;
  if (r.value("status", "") == "ok" && r.contains("eval")) {
    const auto& ev = r["eval"];
    add_losses(ev, "", v);
    for (const char* key : {"floor_bits", "unigram_bits", "gap_closed"})
      if (ev.value(key, nlohmann::json()).is_number()) v.emplace_back(key, ev[key].get<double>());
    if (r.contains("metrics_summary")) flatten_numbers(r["metrics_summary"], "", v);
    // The dropless evaluation beside it (eval.routing "both"): the same columns, prefixed "dropless.".
    if (const auto dl = r.find("dropless"); dl != r.end() && dl->is_object()) {
      if (const auto e = dl->find("eval"); e != dl->end() && e->is_object()) add_losses(*e, "dropless.", v);
      if (dl->contains("metrics_summary")) flatten_numbers((*dl)["metrics_summary"], "dropless", v);
    }
  }
  if (r.value("wall_s", nlohmann::json()).is_number()) v.emplace_back("wall_s", r["wall_s"].get<double>());
  return v;
}

}  // namespace

std::string table_number(double x, int digits, bool signed_) {
  if (!std::isfinite(x)) return "";
  char buf[64];
  const double mag = std::fabs(x);
  if (mag >= std::pow(10.0, digits)) std::snprintf(buf, sizeof buf, signed_ ? "%+.0f" : "%.0f", x);
  else std::snprintf(buf, sizeof buf, signed_ ? "%+.*g" : "%.*g", digits, x);
  std::string s = buf;
  if (s == "-0" || s == "+0" || s == "-0.0") s = signed_ ? "0" : "0";
  return s;
}

std::string format_number(double x) {
  if (!std::isfinite(x)) return "";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, res.ptr);
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c == '\n' || c == '\r' ? ' ' : c);
  return out + "\"";
}

ResultsTable make_table(const SweepPlan& plan, const std::vector<const nlohmann::json*>& results) {
  ResultsTable t;
  t.axis_keys = plan.axis_keys;
  t.seed_key = plan.seed_key;
  std::set<std::string> seen;
  std::size_t next = 0;
  for (const auto& e : plan.runs) {
    if (!e.active) continue;
    const nlohmann::json* r = next < results.size() ? results[next] : nullptr;
    ++next;
    ResultRow row;
    row.entry = e;
    row.status = r ? r->value("status", std::string("failed")) : "pending";
    row.exit_code = r ? r->value("exit_code", -1) : -1;
    if (r && r->contains("error") && (*r)["error"].is_string()) row.error = (*r)["error"].get<std::string>();
    if (r && r->contains("router") && (*r)["router"].is_string()) row.router = (*r)["router"].get<std::string>();
    for (const auto& [k, v] : e.axes)
      if (k == "router.name" && row.router.empty()) row.router = v;
    if (r)
      for (const auto& [k, v] : row_values(*r)) {
        row.values[k] = v;
        if (seen.insert(k).second) t.columns.push_back(k);
      }
    t.rows.push_back(std::move(row));
  }
  // wall_s last: it describes the run, not the model.
  if (auto it = std::find(t.columns.begin(), t.columns.end(), "wall_s"); it != t.columns.end()) {
    t.columns.erase(it);
    t.columns.push_back("wall_s");
  }
  return t;
}

ResultsTable load_results(const SweepDir& dir, const SweepPlan& plan) {
  std::vector<std::optional<nlohmann::json>> docs;
  for (const auto& e : plan.runs)
    if (e.active) docs.push_back(dir.read_result(e.id));
  std::vector<const nlohmann::json*> ptrs;
  for (const auto& d : docs) ptrs.push_back(d ? &*d : nullptr);
  return make_table(plan, ptrs);
}

std::vector<GroupSummary> summarize_groups(const ResultsTable& t) {
  std::vector<GroupSummary> groups;
  std::vector<std::vector<const ResultRow*>> members;
  for (const auto& row : t.rows) {
    std::vector<std::string> key;
    for (const auto& axis : t.axis_keys) {
      std::string v;
      for (const auto& [k, x] : row.entry.axes)
        if (k == axis) v = x;
      key.push_back(v);
    }
    std::size_t g = 0;
    while (g < groups.size() && groups[g].axis_values != key) ++g;
    if (g == groups.size()) {
      groups.push_back({key, row.router, 0, 0, {}});
      members.emplace_back();
    }
    members[g].push_back(&row);
  }
  for (std::size_t g = 0; g < groups.size(); ++g) {
    groups[g].runs = members[g].size();
    for (const ResultRow* r : members[g]) groups[g].ok += r->status == "ok" ? 1 : 0;
    for (const auto& col : t.columns) {
      std::vector<double> xs;
      for (const ResultRow* r : members[g])
        if (r->status == "ok")
          if (auto it = r->values.find(col); it != r->values.end() && std::isfinite(it->second)) xs.push_back(it->second);
      groups[g].stats[col] = summarize(xs);
    }
  }
  return groups;
}

std::string results_csv(const ResultsTable& t) {
  std::string s = "index,id";
  for (const auto& a : t.axis_keys) s += "," + csv_field(a);
  s += "," + csv_field(t.seed_key) + ",router,status,exit_code";
  for (const auto& c : t.columns) s += "," + csv_field(c);
  s += ",error\n";
  for (const auto& r : t.rows) {
    s += std::to_string(r.entry.index) + "," + r.entry.id;
    for (const auto& a : t.axis_keys) {
      std::string v;
      for (const auto& [k, x] : r.entry.axes)
        if (k == a) v = x;
      s += "," + csv_field(v);
    }
    s += "," + std::to_string(r.entry.seed) + "," + csv_field(r.router) + "," + r.status + "," +
         (r.exit_code >= 0 ? std::to_string(r.exit_code) : "");
    for (const auto& c : t.columns) {
      const auto it = r.values.find(c);
      s += "," + (it == r.values.end() ? std::string() : format_number(it->second));
    }
    s += "," + csv_field(r.error) + "\n";
  }
  return s;
}

std::string summary_csv(const ResultsTable& t, const std::vector<GroupSummary>& groups) {
  std::string s;
  for (const auto& a : t.axis_keys) s += csv_field(a) + ",";
  s += "router,runs,ok";
  for (const auto& c : t.columns) s += "," + csv_field(c + "_mean") + "," + csv_field(c + "_sd") + "," + csv_field(c + "_ci95") + "," + csv_field(c + "_n");
  s += "\n";
  for (const auto& g : groups) {
    for (const auto& v : g.axis_values) s += csv_field(v) + ",";
    s += csv_field(g.router) + "," + std::to_string(g.runs) + "," + std::to_string(g.ok);
    for (const auto& c : t.columns) {
      const SampleSummary& st = g.stats.at(c);
      s += "," + format_number(st.mean) + "," + format_number(st.sd) + "," + format_number(st.ci95) + "," + std::to_string(st.n);
    }
    s += "\n";
  }
  return s;
}

std::string summary_markdown(const ResultsTable& t, const std::vector<GroupSummary>& groups,
                             const std::vector<std::string>& columns, const std::vector<std::string>& plots) {
  std::string s = "| ";
  for (const auto& a : t.axis_keys) s += a + " | ";
  s += "n |";
  for (const auto& c : columns) s += " " + c + " |";
  s += "\n|";
  for (std::size_t i = 0; i < t.axis_keys.size() + 1 + columns.size(); ++i) s += " --- |";
  s += "\n";
  for (const auto& g : groups) {
    s += "| ";
    for (const auto& v : g.axis_values) s += (v.empty() ? "-" : v) + " | ";
    s += std::to_string(g.ok) + (g.ok < g.runs ? " of " + std::to_string(g.runs) : "") + " |";
    for (const auto& c : columns) {
      const auto it = g.stats.find(c);
      if (it == g.stats.end() || it->second.n == 0) {
        s += " |";
        continue;
      }
      s += " " + table_number(it->second.mean, 3);
      if (it->second.n >= 2) s += " ± " + table_number(it->second.ci95, 2);
      s += " |";
    }
    s += "\n";
  }
  s += "\nEach cell: the mean over seeds ± the half-width of its 95% confidence interval (Student's t with n-1 "
       "degrees of freedom: t * sd / sqrt(n)); n counts the completed runs of the group.\n";
  std::string failed;
  for (const auto& r : t.rows)
    if (r.status != "ok") failed += "- run " + std::to_string(r.entry.index) + " (" + r.entry.id + "): " + r.status + (r.error.empty() ? "" : ": " + r.error) + "\n";
  if (!failed.empty()) s += "\nRuns not included:\n\n" + failed;
  if (!plots.empty()) {
    s += "\n";
    for (const auto& p : plots) s += "![" + p + "](" + p + ")\n";
  }
  return s;
}

}  // namespace moetb::sweeps
