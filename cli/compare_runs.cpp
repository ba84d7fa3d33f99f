// Groups of runs compared over seeds (compare_runs.h): pairing by seed (else by order), each
// run's metric summary from its trace (metrics/trace_metrics.h) plus its validation loss, the
// per-metric paired 95% t intervals (sweeps/paired.h), the JSON and its table. The metrics are
// those of the MoE Routing Testbed (arXiv 2604.07030) and DBES (arXiv 2605.18498).
#include "cli/compare_runs.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>

#include "metrics/trace.h"
#include "sweeps/paired.h"

namespace moetb::cli {

namespace {

using Values = std::map<std::string, double>;

Values run_values(const TraceInput& in, const MetricsOptions& options) {
  const Trace trace({in.trace});
  const nlohmann::json j = metrics_to_json(compute_trace_metrics(trace, options));
  Values v;
  for (const auto& [k, x] : flatten_json(j["summary"]))
    if (x.is_number()) v[k] = x.get<double>();
  if (in.val_bits) v["val_bits"] = *in.val_bits;
  return v;
}

nlohmann::json num(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

}  // namespace

nlohmann::json compare_runs_json(const std::vector<TraceInput>& a, const std::vector<TraceInput>& b, const MetricsOptions& options) {
  nlohmann::json out;
  out["format"] = "moetb-compare-runs/1";
  nlohmann::json notes = nlohmann::json::array();
  // Pair by seed when every run has one and no seed repeats on a side; else by position.
  auto seeds_usable = [](const std::vector<TraceInput>& side) {
    std::set<long long> seen;
    for (const auto& r : side)
      if (!r.seed || !seen.insert(*r.seed).second) return false;
    return true;
  };
  std::vector<std::pair<std::size_t, std::size_t>> pairs;
  nlohmann::json unpaired = nlohmann::json::array();
  const bool by_seed = seeds_usable(a) && seeds_usable(b);
  if (by_seed) {
    for (std::size_t i = 0; i < a.size(); ++i) {
      std::size_t j = 0;
      while (j < b.size() && *b[j].seed != *a[i].seed) ++j;
      if (j < b.size()) pairs.emplace_back(i, j);
      else unpaired.push_back(a[i].path);
    }
    for (const auto& r : b)
      if (std::none_of(a.begin(), a.end(), [&](const TraceInput& x) { return *x.seed == *r.seed; })) unpaired.push_back(r.path);
  } else {
    if (a.size() != b.size())
      throw std::invalid_argument("compare: the runs cannot be paired: seeds are missing or repeated, and the sides have " +
                                  std::to_string(a.size()) + " and " + std::to_string(b.size()) + " runs");
    for (std::size_t i = 0; i < a.size(); ++i) pairs.emplace_back(i, i);
    notes.push_back("paired in the order given (not every run records a distinct seed)");
  }
  if (pairs.empty()) throw std::invalid_argument("compare: no seed is on both sides, so no run can be paired");
  if (!unpaired.empty()) notes.push_back("runs without a counterpart of the same seed are left out");
  out["pairing"] = by_seed ? "seed" : "order";
  out["unpaired"] = unpaired;

  std::vector<Values> va, vb;
  nlohmann::json pj = nlohmann::json::array();
  for (const auto& [i, j] : pairs) {
    va.push_back(run_values(a[i], options));
    vb.push_back(run_values(b[j], options));
    nlohmann::json p = {{"a", a[i].path}, {"b", b[j].path}};
    p["seed"] = by_seed ? nlohmann::json(*a[i].seed) : nlohmann::json(nullptr);
    pj.push_back(p);
  }
  out["pairs"] = pj;
  std::set<std::string> keys;
  for (const auto& v : va)
    for (const auto& [k, x] : v) keys.insert(k);
  nlohmann::json summary = nlohmann::json::object();
  nlohmann::json differs = nlohmann::json::array();
  for (const auto& key : keys) {
    std::vector<double> xa, xb, all_a, all_b;
    for (std::size_t p = 0; p < pairs.size(); ++p) {
      const auto ia = va[p].find(key), ib = vb[p].find(key);
      if (ia != va[p].end()) all_a.push_back(ia->second);
      if (ib != vb[p].end()) all_b.push_back(ib->second);
      if (ia != va[p].end() && ib != vb[p].end()) {
        xa.push_back(ia->second);
        xb.push_back(ib->second);
      }
    }
    const sweeps::SampleSummary sa = sweeps::summarize(all_a), sb = sweeps::summarize(all_b);
    const sweeps::PairedDifference d = sweeps::paired_difference(xa, xb);
    nlohmann::json e = {{"a_mean", num(sa.mean)}, {"a_sd", num(sa.sd)}, {"b_mean", num(sb.mean)}, {"b_sd", num(sb.sd)},
                        {"n", d.n},          {"delta", num(d.mean)}, {"sd", num(d.sd)},    {"ci95", num(d.ci95)},
                        {"lo", num(d.lo)},   {"hi", num(d.hi)},      {"agree", d.agree()}};
    if (d.n < 2) e["verdict"] = nullptr;
    else e["verdict"] = d.excludes_zero() ? "differs" : "within seed variation";
    if (d.excludes_zero()) differs.push_back(key);
    summary[key] = e;
  }
  if (pairs.size() < 2) notes.push_back("one pair: no interval over seeds, so no verdict; give several seeds per side");
  out["notes"] = notes;
  out["summary"] = summary;
  out["differs"] = differs;
  out["criterion"] = {{"method", "paired by seed, Student's t"},
                      {"rule", "differs when the 95% t interval of the mean of B - A over the pairs excludes zero"}};
  return out;
}

std::string compare_runs_table(const nlohmann::json& j) {
  std::ostringstream text;
  const std::size_t n = j["pairs"].size();
  text << n << " pair(s) of runs, paired by " << (j["pairing"] == "seed" ? "seed" : "the order given") << ":\n";
  for (const auto& p : j["pairs"])
    text << "  " << (p["seed"].is_null() ? std::string("-") : "seed " + std::to_string(p["seed"].get<long long>())) << ": A "
         << p["a"].get<std::string>() << ", B " << p["b"].get<std::string>() << "\n";
  for (const auto& u : j["unpaired"]) text << "  unpaired (left out): " << u.get<std::string>() << "\n";
  for (const auto& note : j["notes"]) text << "note: " << note.get<std::string>() << "\n";
  auto cell = [](const nlohmann::json& v, int digits = 3, bool sign = false) {
    return v.is_number() ? sweeps::table_number(v.get<double>(), digits, sign) : std::string("-");
  };
  char line[512];
  std::snprintf(line, sizeof line, "\n%-24s %16s %16s %10s %22s %7s  %s\n", "summary metric", "A mean ± sd", "B mean ± sd", "B - A",
                "95% interval", "agree", "verdict");
  text << line;
  std::vector<std::string> order;
  for (const char* group : {"differs", "within seed variation", ""})
    for (auto it = j["summary"].begin(); it != j["summary"].end(); ++it) {
      const std::string v = it.value()["verdict"].is_string() ? it.value()["verdict"].get<std::string>() : "";
      if (v == group) order.push_back(it.key());
    }
  for (const auto& key : order) {
    const auto& e = j["summary"][key];
    const std::string am = cell(e["a_mean"]) + (e["a_sd"].is_number() ? " ± " + cell(e["a_sd"], 2) : "");
    const std::string bm = cell(e["b_mean"]) + (e["b_sd"].is_number() ? " ± " + cell(e["b_sd"], 2) : "");
    const std::string ci = e["lo"].is_number() ? "[" + cell(e["lo"], 3, true) + ", " + cell(e["hi"], 3, true) + "]" : "-";
    const std::string agree = std::to_string(e["agree"].get<std::size_t>()) + "/" + std::to_string(e["n"].get<std::size_t>());
    const std::string verdict = e["verdict"].is_string() ? e["verdict"].get<std::string>() : "-";
    std::snprintf(line, sizeof line, "%-24s %16s %16s %10s %22s %7s  %s\n", key.c_str(), am.c_str(), bm.c_str(),
                  cell(e["delta"], 3, true).c_str(), ci.c_str(), agree.c_str(), verdict.c_str());
    text << line;
  }
  text << "\n" << j["differs"].size() << " metric(s) differ beyond the variation between seeds. Verdict: differs when the 95% "
       << "t interval of the mean of B - A over the " << n << " pairs (same seed) excludes zero; agree counts the pairs that "
       << "differ in the direction of the mean. See docs/metrics.md\n";
  return text.str();
}

}  // namespace moetb::cli
