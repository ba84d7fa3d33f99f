// The demos' claim builder (claims.h): per-label values over seeds, the paired effect of two
// labels (sweeps/paired.h), and the sentence that states it as an effect or as within seed
// noise. The demos follow the MoE Routing Testbed's experiments (arXiv 2604.07030).
#include "demos/claims.h"

#include <cmath>
#include <cstdio>

namespace moetb::demos {

using sweeps::PairedDifference;
using sweeps::SampleSummary;
using sweeps::table_number;

std::vector<double> DemoRuns::values(std::size_t label, const std::string& column) const {
  std::vector<double> out;
  if (label >= rows.size()) return out;
  for (const ResultRow* r : rows[label]) {
    if (r == nullptr || r->status != "ok") continue;
    const auto it = r->values.find(column);
    if (it != r->values.end() && std::isfinite(it->second)) out.push_back(it->second);
  }
  return out;
}

std::optional<double> DemoRuns::mean(std::size_t label, const std::string& column) const {
  const std::vector<double> v = values(label, column);
  if (v.empty()) return std::nullopt;
  return sweeps::summarize(v).mean;
}

std::size_t DemoRuns::finished(std::size_t label) const {
  std::size_t n = 0;
  if (label < rows.size())
    for (const ResultRow* r : rows[label]) n += r != nullptr && r->status == "ok" ? 1 : 0;
  return n;
}

Effect effect(const DemoRuns& runs, std::size_t a, std::size_t b, const std::string& column) {
  Effect e;
  e.a = sweeps::summarize(runs.values(a, column));
  e.b = sweeps::summarize(runs.values(b, column));
  std::vector<double> xa, xb;
  auto value = [&](std::size_t label, std::size_t seed) -> std::optional<double> {
    if (label >= runs.rows.size() || seed >= runs.rows[label].size()) return std::nullopt;
    const ResultRow* r = runs.rows[label][seed];
    if (r == nullptr || r->status != "ok") return std::nullopt;
    const auto it = r->values.find(column);
    if (it == r->values.end() || !std::isfinite(it->second)) return std::nullopt;
    return it->second;
  };
  for (std::size_t s = 0; s < runs.seeds.size(); ++s) {
    const auto va = value(a, s), vb = value(b, s);
    if (va && vb) {
      xa.push_back(*va);
      xb.push_back(*vb);
    }
  }
  e.diff = sweeps::paired_difference(xa, xb);
  return e;
}

std::string num(std::optional<double> x) {
  if (!x) return "n/a";
  return table_number(std::fabs(*x) < 5e-4 ? 0.0 : *x, 3);
}

std::string pct(std::optional<double> x) {
  if (!x) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, *x >= 0.1 ? "%.0f%%" : "%.1f%%", 100 * *x);
  return buf;
}

std::string whole(std::optional<double> x) {
  if (!x) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", *x);
  return buf;
}

std::string mean_sd(const SampleSummary& s) {
  if (s.n == 0) return "n/a";
  if (s.n < 2) return num(s.mean);
  return num(s.mean) + " ± " + table_number(s.sd, 2);
}

std::string claim(const DemoRuns& runs, std::size_t a, std::size_t b, const std::string& column, const std::string& what,
                  const std::string& name_a, const std::string& name_b) {
  const Effect e = effect(runs, a, b, column);
  std::string s = what + ": " + mean_sd(e.a) + " for " + name_a + " against " + mean_sd(e.b) + " for " + name_b;
  const std::size_t n = std::max(e.a.n, e.b.n);
  if (n == 0) return s + ".";
  s += n >= 2 ? " (mean ± sd over " + std::to_string(n) + " seeds)" : "";
  const PairedDifference& d = e.diff;
  if (d.n == 0) return s + "; no seed finished both runs, so no comparison.";
  if (d.n < 2) return s + "; one seed, so no interval: this difference cannot be told from seed noise.";
  const std::string interval = "paired difference " + table_number(d.mean, 3, true) + " [" + table_number(d.lo, 3, true) + ", " +
                               table_number(d.hi, 3, true) + "] (" + name_b + " minus " + name_a + ", 95% t interval over " +
                               std::to_string(d.n) + " seeds)";
  if (e.real()) {
    const std::string higher = d.mean > 0 ? name_b : name_a;
    const std::string seeds = d.agree() == d.n ? "in every seed" : "in " + std::to_string(d.agree()) + " of " + std::to_string(d.n) + " seeds";
    return s + "; higher for " + higher + " " + seeds + ": " + interval + ", larger than the seed-to-seed variation.";
  }
  return s + "; within seed noise: " + interval + " includes zero; the same direction in " + std::to_string(d.agree()) + " of " +
         std::to_string(d.n) + " seeds.";
}

}  // namespace moetb::demos
