// The planted scenarios of `moetb validate` (docs/validation.md explains each one and
// derives its tolerance). Sizes are chosen so the whole suite runs in seconds.
#include <cmath>
#include <nlohmann/json.hpp>

#include "oracle/planted_simulator.h"
#include "oracle/trace_transforms.h"
#include "oracle/validation.h"

namespace moetb {
namespace {

constexpr double kExact = 1e-9;  // floating-point agreement for exact identities

std::optional<double> num(const nlohmann::json& j) {
  if (j.is_number()) return j.get<double>();
  return std::nullopt;
}

nlohmann::json summary_of(const SimConfig& cfg) { return metrics_json_of(simulate_trace(cfg))["summary"]; }

ValidationCheck near(const std::string& scenario, const std::string& metric, double expected, double tol,
                     std::optional<double> measured, const std::string& label = "") {
  char text[96];
  if (tol <= kExact)
    std::snprintf(text, sizeof text, "%s%.6g (exact)", label.empty() ? "" : (label + " = ").c_str(), expected);
  else
    std::snprintf(text, sizeof text, "%s%.4g +- %.2g", label.empty() ? "" : (label + " = ").c_str(), expected, tol);
  return {scenario, metric, text, measured, measured && std::fabs(*measured - expected) <= tol};
}

ValidationCheck at_most(const std::string& scenario, const std::string& metric, double bound,
                        std::optional<double> measured, const std::string& what) {
  char text[96];
  std::snprintf(text, sizeof text, "%s <= %.3g", what.c_str(), bound);
  return {scenario, metric, text, measured, measured && *measured <= bound};
}

// Checks that values[i] rises strictly with the knob; measured = the smallest step.
ValidationCheck rising(const std::string& scenario, const std::string& metric, const std::vector<std::optional<double>>& values,
                       const std::string& knob) {
  double min_step = std::numeric_limits<double>::infinity();
  bool ok = true;
  for (std::size_t i = 1; i < values.size(); ++i) {
    if (!values[i] || !values[i - 1]) {
      ok = false;
      continue;
    }
    min_step = std::min(min_step, *values[i] - *values[i - 1]);
  }
  return {scenario, metric, "rises strictly with " + knob + " (min step > 0)", ok ? std::optional<double>(min_step) : std::nullopt,
          ok && min_step > 0};
}

ValidationCheck invariant(const std::string& scenario, const std::string& what, double diff) {
  return {scenario, what, "max |difference| <= 1e-9", diff, diff <= kExact};
}

SimConfig base_config() {  // rich routing: all knobs on, unlabeled tokens, skewed load
  SimConfig c;
  c.n_experts = 32;
  c.top_k = 4;
  c.n_domains = 4;
  c.domain_shares = {4, 3, 2, 1};
  c.n_layers = 3;
  c.alpha = {0.3, 0.6, 0.9};
  c.load_profile = "zipf";
  c.zipf_s = 1.0;
  c.beta = 0.3;
  c.gamma = 0.3;
  c.unlabeled = 0.1;
  c.vocab_per_domain = 256;
  c.seq_len = 64;
  c.n_tokens = 16384;
  c.seed = 7;
  return c;
}

std::vector<ValidationCheck> oracle_scenario() {
  SimConfig c;
  c.n_experts = 32, c.top_k = 4, c.n_domains = 4, c.n_layers = 2, c.alpha = {1.0}, c.n_tokens = 16384, c.seed = 11;
  const nlohmann::json s = summary_of(c);
  std::vector<ValidationCheck> out;
  for (const char* key : {"rs", "di", "ner", "purity", "purity_ids", "purity_majority"})
    out.push_back(near("oracle (invariant 6)", key, 1.0, kExact, num(s[key]), ""));
  return out;
}

std::vector<ValidationCheck> invariance_scenario() {
  const TraceData base = simulate_trace(base_config());
  const nlohmann::json m = metrics_json_of(base);
  const int n_e = static_cast<int>(base.meta_data.num_experts);
  std::vector<ValidationCheck> out;
  out.push_back(invariant("expert relabel (inv. 1)", "all but purity_ids/ne_group",
                          max_metric_difference(m, metrics_json_of(permute_experts(base, random_permutation(n_e, 3))),
                                                {"purity_ids", "ne_group"})));
  out.push_back(invariant("domain relabel (inv. 2)", "summary",
                          max_metric_difference(m["summary"],
                                                metrics_json_of(relabel_domains(base, random_permutation(4, 5)))["summary"], {})));
  out.push_back(invariant("sequence order (inv. 3)", "everything",
                          max_metric_difference(m, metrics_json_of(shuffle_sequences(base, 9)), {})));
  out.push_back(invariant("token order (inv. 3)", "all but ne/ne_group",
                          max_metric_difference(m, metrics_json_of(shuffle_within_sequences(base, 13)),
                                                {".ne.", ".ne_group."})));
  out.push_back(invariant("duplicate trace (inv. 4)", "all but rs_mm/rss/tokens",
                          max_metric_difference(m, metrics_json_of(duplicate_trace(base)),
                                                {"rs_mm", "rss", ".tokens"})));
  return out;
}

// Invariant 5 and load independence: routing that ignores the domain, under skewed load.
std::vector<ValidationCheck> independence_scenario() {
  std::vector<ValidationCheck> out;
  const int n_e = 32, n_d = 4;
  const double h_d = std::log(static_cast<double>(n_d));
  std::vector<std::optional<double>> rs, di, ner;
  for (int64_t n_tokens : {int64_t{1} << 13, int64_t{1} << 15, int64_t{1} << 17}) {
    SimConfig c;
    c.n_experts = n_e, c.top_k = 1, c.n_domains = n_d, c.n_layers = 1, c.alpha = {0.0};
    c.load_profile = "zipf", c.zipf_s = 1.5, c.n_tokens = n_tokens, c.seq_len = 128, c.seed = 17;
    const nlohmann::json s = summary_of(c);
    rs.push_back(num(s["rs"]));
    di.push_back(num(s["di"]));
    ner.push_back(num(s["ner"]));
    if (n_tokens == (int64_t{1} << 17)) {
      // 2 N I_plugin ~ chi^2 with df = (D-1)(E-1): mean df, sd sqrt(2 df); allow mean + 4 sd.
      const double n = static_cast<double>(n_tokens), df = (n_d - 1.0) * (n_e - 1.0);
      out.push_back(at_most("independence, Zipf 1.5", "rs", (df + 4 * std::sqrt(2 * df)) / (2 * n * h_d), rs.back(),
                            "(df+4sqrt(2df))/(2N log D)"));
      // E|TV_hat| <= 1/2 sum_e sqrt(p_e (1/n_d + 1/n_d')) <= 1/2 sqrt(2E/n_d); allow 3x.
      const double n_dom = n / n_d;
      out.push_back(at_most("independence, Zipf 1.5", "di", 1.5 * std::sqrt(2.0 * n_e / n_dom), di.back(),
                            "1.5 sqrt(2E/n_d)"));
      // Load matches the planted Zipf profile: utilization = sum_e min(w_e, 1/E).
      PlantedSimulator sim(c);
      double util = 0;
      for (double w : sim.load_profile()) util += std::min(w, 1.0 / n_e);
      out.push_back(near("independence, Zipf 1.5", "load.utilization", util, 3 * std::sqrt(n_e / n),
                         num(s["load"]["utilization"])));
    }
  }
  auto falls = [&](const char* metric, const std::vector<std::optional<double>>& v) {
    ValidationCheck c = rising("independence (inv. 5)", metric, {v[2], v[1], v[0]}, "1/N");
    c.expected = "falls toward 0 as N grows 4x, 16x";
    return c;
  };
  out.push_back(falls("rs", rs));
  out.push_back(falls("di", di));
  out.push_back(falls("ner", ner));
  return out;
}

// Invariant 7: k = 1, equal shares, disjoint groups of E/D, uniform global profile.
std::vector<ValidationCheck> closed_form_scenario() {
  std::vector<ValidationCheck> out;
  const int n_e = 16, n_d = 4;
  const double dd = n_d;
  for (double a : {0.25, 0.5, 0.9}) {
    SimConfig c;
    c.n_experts = n_e, c.top_k = 1, c.n_domains = n_d, c.n_layers = 1, c.alpha = {a};
    c.n_tokens = 1 << 17, c.seq_len = 64, c.seed = 23;
    const nlohmann::json s = summary_of(c);
    const double n = static_cast<double>(c.n_tokens), n_dom = n / dd;
    const double rs = ((a + (1 - a) / dd) * std::log(1 + a * (dd - 1)) +
                       (1 - a) * (1 - 1 / dd) * (a < 1 ? std::log(1 - a) : 0.0)) / std::log(dd);
    // Plug-in bias (D-1)(E-1)/(2N) plus 4 sd of the sampling noise, |pmi| <= max(log D, -log(1-a)).
    const double pmi = std::max(std::log(dd), -std::log(1 - a));
    const double rs_tol = ((dd - 1) * (n_e - 1) / (2 * n) + 4 * pmi / std::sqrt(n)) / std::log(dd);
    char name[48];
    std::snprintf(name, sizeof name, "closed form a=%.2g (inv. 7)", a);
    out.push_back(near(name, "rs", rs, rs_tol, num(s["rs"]), "RS(a, D)"));
    out.push_back(near(name, "di", a, std::sqrt(n_e / n_dom), num(s["di"]), "alpha"));
  }
  // Overlapping groups, alpha = 1: neighbours share o of b + o experts, so their TV is
  // b / (b + o); with D = 4 (cyclic), 4 of the 6 pairs are neighbours.
  SimConfig c;
  c.n_experts = 32, c.top_k = 2, c.n_domains = 4, c.n_layers = 1, c.alpha = {1.0}, c.overlap = 4;
  c.n_tokens = 1 << 16, c.seed = 29;
  const double b = 8, o = 4, expected = (4 * (b / (b + o)) + 2) / 6;
  out.push_back(near("overlap o=4, alpha=1", "di", expected, std::sqrt(32.0 / (static_cast<double>(c.n_tokens) * 2 / 4.0)),
                     num(summary_of(c)["di"]), "(4b/(b+o)+2)/6"));
  return out;
}

std::vector<ValidationCheck> monotone_alpha_scenario() {
  std::vector<std::optional<double>> rs, di, ner, purity;
  for (double a : {0.0, 0.2, 0.4, 0.6, 0.8, 1.0}) {
    SimConfig c;
    c.n_experts = 32, c.top_k = 2, c.n_domains = 4, c.n_layers = 1, c.alpha = {a};
    c.load_profile = "zipf", c.zipf_s = 1.0, c.n_tokens = 1 << 15, c.seed = 31;
    const nlohmann::json s = summary_of(c);
    rs.push_back(num(s["rs"]));
    di.push_back(num(s["di"]));
    ner.push_back(num(s["ner"]));
    purity.push_back(num(s["purity"]));
  }
  return {rising("alpha 0..1 in steps of 0.2", "rs", rs, "alpha"), rising("alpha 0..1 in steps of 0.2", "di", di, "alpha"),
          rising("alpha 0..1 in steps of 0.2", "ner", ner, "alpha"),
          rising("alpha 0..1 in steps of 0.2", "purity", purity, "alpha")};
}

std::vector<ValidationCheck> stiffness_scenario() {
  std::vector<ValidationCheck> out;
  std::vector<std::optional<double>> rss;
  SimConfig c;
  c.n_experts = 32, c.top_k = 4, c.n_domains = 4, c.n_layers = 1, c.alpha = {0.5};
  c.n_tokens = 1 << 15, c.vocab_per_domain = 512, c.seed = 37;
  for (double beta : {0.0, 0.25, 0.5, 0.75, 1.0}) {
    c.beta = beta;
    rss.push_back(num(summary_of(c)["rss"]));
  }
  out.push_back(rising("stiffness beta, alpha=0.5", "rss", rss, "beta"));
  out.push_back(near("stiffness beta=1", "rss", 1.0, kExact, rss.back(), ""));
  // No stiffness, no domain signal: chance level. Tolerance 4 sqrt(O0 / (k N)) / (1 - O0),
  // a deliberately loose bound on the sd of the pair-overlap estimate (see docs/validation.md).
  c.alpha = {0.0};
  c.beta = 0.0;
  const double o0 = 4.0 / 32.0, tol = 4 * std::sqrt(o0 / (4.0 * static_cast<double>(c.n_tokens))) / (1 - o0);
  out.push_back(near("stiffness beta=0, alpha=0", "rss", 0.0, tol, num(summary_of(c)["rss"]), "0"));
  return out;
}

std::vector<ValidationCheck> coherence_scenario() {
  std::vector<ValidationCheck> out;
  std::vector<std::optional<double>> ne4;
  SimConfig c;
  c.n_experts = 32, c.top_k = 4, c.n_domains = 4, c.n_layers = 1, c.alpha = {0.5};
  c.n_tokens = 1 << 15, c.seq_len = 128, c.seed = 41;
  nlohmann::json last;
  for (double gamma : {0.0, 0.25, 0.5, 0.75, 1.0}) {
    c.gamma = gamma;
    last = summary_of(c);
    ne4.push_back(num(last["ne"]["4"]));
  }
  out.push_back(rising("span coherence gamma", "ne.4", ne4, "gamma"));
  for (const char* n : {"2", "4", "10"})
    out.push_back(near("span coherence gamma=1", std::string("ne.") + n, 1.0, kExact, num(last["ne"][n]), ""));
  c.alpha = {0.0};
  c.gamma = 0.0;
  const nlohmann::json s = summary_of(c);
  const double windows = static_cast<double>(c.n_tokens);
  out.push_back(at_most("span coherence gamma=0", "ne.2", *num(s["ne_chance"]["2"]) + 4 / std::sqrt(windows), num(s["ne"]["2"]),
                        "ne_chance(2) + 4/sqrt(N)"));
  return out;
}

}  // namespace

const std::vector<ValidationScenario>& validation_scenarios() {
  static const std::vector<ValidationScenario> kScenarios = {
      {"oracle", "alpha = 1, disjoint equal groups: RS = DI = NER = purity = 1", oracle_scenario},
      {"invariances", "invariants 1-4: relabel experts/domains, reorder, duplicate", invariance_scenario},
      {"independence", "invariant 5 and load independence under Zipf s = 1.5", independence_scenario},
      {"closed-form", "invariant 7 (RS, DI closed forms) and overlapping groups", closed_form_scenario},
      {"monotone-alpha", "RS, DI, NER, purity rise with alpha", monotone_alpha_scenario},
      {"stiffness", "RSS rises with beta; 1 at beta = 1; 0 at chance", stiffness_scenario},
      {"coherence", "NE rises with gamma; 1 at gamma = 1; chance at gamma = 0", coherence_scenario},
  };
  return kScenarios;
}

}  // namespace moetb
