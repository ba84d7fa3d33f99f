// The five demos of `moetb demo` (demos.h): their specs, labels, and the builders that read
// the measured numbers back into "what to look for". Every run of a demo trains the same
// small model (d_model 64, 2 MoE blocks of 8 experts, top-2, 150 steps of 8 x 128 tokens)
// on a small synthetic four-domain dataset, so a demo finishes in a minute or two on two
// cores; the claims in the texts are conditional on the numbers they print.
#include "demos/demos.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <stdexcept>

#include "runs/run_reader.h"
#include "sweeps/sweep_spec.h"

namespace moetb::demos {

using sweeps::expand;
using sweeps::parse_spec;
using sweeps::PlannedRun;

namespace {

// Shared by every demo: a small dataset (4 domains, ~400k training tokens) and a small,
// fast model. One evaluation (all 256 validation sequences) and one checkpoint, at the end.
const char* const kData = R"([datagen]          # the default 4-domain mix, smaller
train_tokens = 400000
val_tokens = 32768
)";

const char* const kBase = R"(
[base]
model.d_model = 64
moe.d_ff = 128
train.steps = 150
train.lr = 0.01
eval.every = 150
eval.sequences = 256
checkpoint.every = 0
)";

std::string spec(const std::string& name, const std::string& metrics, const std::string& datagen_extra,
                 const std::string& base_extra, const std::string& axes, int micro_batch = 8) {
  return "[sweep]\nname = \"demo-" + name + "\"\nseeds = [1]\nmetrics = [" + metrics + "]\n\n" + kData + datagen_extra + kBase +
         "train.micro_batch = " + std::to_string(micro_batch) + "\n" + base_extra + "\n" + axes;
}

using Runs = std::vector<const ResultRow*>;

std::optional<double> get(const Runs& runs, std::size_t i, const std::string& column) {
  if (i >= runs.size() || runs[i] == nullptr) return std::nullopt;
  const auto it = runs[i]->values.find(column);
  if (it == runs[i]->values.end() || !std::isfinite(it->second)) return std::nullopt;
  return it->second;
}

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

// A number for prose: 3 significant-looking decimals below 1, 2 above.
std::string num(std::optional<double> x) {
  if (!x) return "n/a";
  const double v = std::fabs(*x) < 5e-4 ? 0.0 : *x;
  return fmt(std::fabs(v) >= 100 ? "%.0f" : std::fabs(v) >= 1 ? "%.2f" : "%.3f", v);
}
std::string whole(std::optional<double> x) { return x ? fmt("%.0f", *x) : "n/a"; }
std::string pct(std::optional<double> x) { return x ? fmt(*x >= 0.1 ? "%.0f%%" : "%.1f%%", 100 * *x) : "n/a"; }
std::string times(std::optional<double> a, std::optional<double> b) {  // "3.1x"
  if (!a || !b || *b <= 0) return "n/a";
  return fmt(*a / *b >= 10 ? "%.0fx" : "%.1fx", *a / *b);
}
bool both(std::optional<double> a, std::optional<double> b) { return a && b; }

// A first line naming the runs that did not finish, so no comparison reads as complete.
void note_missing(const Runs& runs, const std::vector<std::string>& labels, DemoFindings& f) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i < runs.size() && runs[i] != nullptr && runs[i]->status == "ok") continue;
    const std::string st = i < runs.size() && runs[i] != nullptr ? runs[i]->status : "missing";
    std::string line = "The run '" + labels[i] + "' did not finish (" + st;
    if (i < runs.size() && runs[i] != nullptr && !runs[i]->error.empty()) line += ": " + runs[i]->error;
    f.look_for.push_back(line + "); the comparisons that need it say n/a.");
  }
}

// ---- collapse -------------------------------------------------------------------------

DemoFindings collapse_findings(const Runs& r, const std::vector<std::string>& labels) {
  DemoFindings f;
  note_missing(r, labels, f);
  const auto vio0 = get(r, 0, "load.max_vio"), vio1 = get(r, 1, "load.max_vio");
  const auto min0 = get(r, 0, "train.min_load"), min1 = get(r, 1, "train.min_load");
  const auto ut0 = get(r, 0, "load.utilization"), ut1 = get(r, 1, "load.utilization");
  const auto dead0 = get(r, 0, "load.dead_experts");
  const auto tv0 = get(r, 0, "train.max_vio"), tv1 = get(r, 1, "train.max_vio");
  std::string load = "Load (max_vio, the busiest expert's share times E minus 1; 0 = balanced): " + num(vio0) +
                     " without balancing against " + num(vio1) + " with it on the held-out set";
  if (vio0) load += ", i.e. the busiest expert serves " + num(*vio0 + 1) + " times its fair share";
  load += "; in single training micro-batches (train.max_vio) " + num(tv0) + " against " + num(tv1);
  if (tv0) load += " (with top-2 of 8 experts the most an expert can take is 3.00: half of all assignments)";
  f.look_for.push_back(load + ".");
  std::string starve = "Starved experts (min_load, the least-used expert's share times E, in the last training steps): " +
                       num(min0) + " without balancing against " + num(min1) + " with it";
  if (both(min0, min1) && *min0 < *min1)
    starve += ": without the balance loss the least-used expert gets " + pct(*min0) + " of a fair share of the tokens";
  f.look_for.push_back(starve + ".");
  std::string util = "Utilization (sum over experts of min(share, 1/E); 1 = every expert fully used): " + num(ut0) +
                     " against " + num(ut1) + ".";
  if (dead0 && *dead0 > 0) util += " Without balancing " + num(dead0) + " experts per layer received no held-out token at all (dead experts).";
  else if (dead0) util += " No expert is completely dead on the held-out set: at this length the collapse starves experts rather than killing them.";
  f.look_for.push_back(util);
  const auto rs0 = get(r, 0, "rs"), rs1 = get(r, 1, "rs");
  if (both(rs0, rs1))
    f.look_for.push_back("Specialization (RS): " + num(rs0) + " without balancing against " + num(rs1) + " with it" +
                         (*rs0 < *rs1 ? ": collapse is not specialization; the few crowded experts serve every domain."
                                      : ": here the unbalanced router's choices say more about the domain."));
  const auto l0 = get(r, 0, "val_bits"), l1 = get(r, 1, "val_bits");
  if (both(l0, l1))
    f.look_for.push_back("Loss (val_bits): " + num(l0) + " without balancing, " + num(l1) + " with it. " +
                         (*l0 <= *l1 ? "At this tiny scale the unbalanced model is not worse on loss: the cost of collapse is "
                                       "wasted capacity (idle experts) and overloaded devices, not necessarily loss after 150 steps."
                                     : "The balanced model also predicts better here: the idle experts were capacity the "
                                       "unbalanced model paid for and did not use."));
  f.meaning =
      "Token-choice top-k routing reinforces itself: an expert that gets more tokens gets more gradient, becomes better, "
      "and is chosen more. A balance term (here the Switch loss) is what keeps every expert in use, and in a real "
      "deployment what keeps devices from idling while one is overloaded. Every later demo keeps some balancing and asks "
      "what its form costs in specialization.";
  return f;
}

// ---- scope ------------------------------------------------------------------------------

DemoFindings scope_findings(const Runs& r, const std::vector<std::string>& labels) {
  DemoFindings f;
  note_missing(r, labels, f);
  const auto rs0 = get(r, 0, "rs"), rs1 = get(r, 1, "rs");
  const auto di0 = get(r, 0, "di"), di1 = get(r, 1, "di");
  const auto v0 = get(r, 0, "load.max_vio"), v1 = get(r, 1, "load.max_vio");
  const auto t0 = get(r, 0, "train.max_vio"), t1 = get(r, 1, "train.max_vio");
  std::string spec_line = "Specialization (RS, Routing Specialization: 0 = routing says nothing about the domain, 1 = "
                          "oracle-like): " + num(rs0) + " with micro-batch balancing against " + num(rs1) +
                          " with global-batch balancing";
  if (both(rs0, rs1) && *rs1 > *rs0) spec_line += " (" + times(rs1, rs0) + ")";
  f.look_for.push_back(spec_line + "; domain isolation (DI) " + num(di0) + " against " + num(di1) + ".");
  f.look_for.push_back("Overall load on the held-out set (max_vio): " + num(v0) + " against " + num(v1) +
                       (both(v0, v1) && std::max(*v0, *v1) < 0.5 ? ": both scopes keep the total load balanced."
                                                                 : "."));
  f.look_for.push_back("Load of a single training micro-batch (train.max_vio, 2 sequences): " + num(t0) + " against " +
                       num(t1) + ". Global-batch balancing only asks the 8 sequences of an optimizer step to be balanced "
                       "together, so a micro-batch of one or two domains may lean on that domain's experts.");
  const auto l0 = get(r, 0, "val_bits"), l1 = get(r, 1, "val_bits");
  if (both(l0, l1))
    f.look_for.push_back("Loss (val_bits): " + num(l0) + " against " + num(l1) +
                         (std::fabs(*l0 - *l1) < 0.05
                              ? " (one seed: a difference this small is within the seed-to-seed spread)."
                              : ". Both models are still learning fast at step 150 (see the training curves in the run "
                                "reports), so this gap says how fast each trained in a short run, not where it would end; "
                                "longer runs over several seeds (sweeps/examples/routers-vs-scope.toml) are the test."));
  std::string verdict;
  if (both(rs0, rs1))
    verdict = *rs1 > *rs0 ? "Here the wider scope specialized more at a similar overall load, as the MoE Routing Testbed "
                            "(arXiv 2604.07030) predicts. "
                          : "Here the wider scope did not specialize more; with one seed and 150 steps that is possible, "
                            "so check with more seeds (docs/sweeps.md) before drawing a conclusion. ";
  f.meaning = verdict +
              "Balancing every micro-batch forces each small batch, which holds only a few domains, to spread over all "
              "experts, which works against experts that own a domain. Balancing over the global batch (as Qwen's "
              "global-batch loss and Megatron's global aux loss do) asks the same of the whole step and leaves room to "
              "specialize.";
  return f;
}

// ---- capacity ---------------------------------------------------------------------------

DemoFindings capacity_findings(const Runs& r, const std::vector<std::string>& labels) {
  DemoFindings f;
  note_missing(r, labels, f);
  const auto d0 = get(r, 0, "train.dropped"), e0 = get(r, 0, "eval.dropped"), n0 = get(r, 0, "eval.no_expert");
  f.look_for.push_back("Dropped assignments with capacity factor 1.0: " + pct(d0) + " in the last training steps and " +
                       pct(e0) + " on the held-out set, where " + pct(n0) +
                       " of the tokens got no expert at all in a layer (they pass through the residual only). "
                       "Dropless drops nothing (" + pct(get(r, 1, "eval.dropped")) + ").");
  const auto rs0 = get(r, 0, "rs"), rs1 = get(r, 1, "rs");
  f.look_for.push_back("Specialization (RS): " + num(rs0) + " with capacity against " + num(rs1) + " dropless; domain isolation (DI) " +
                       num(get(r, 0, "di")) + " against " + num(get(r, 1, "di")) + ".");
  const auto l0 = get(r, 0, "val_bits"), l1 = get(r, 1, "val_bits");
  f.look_for.push_back("Loss (val_bits): " + num(l0) + " with capacity against " + num(l1) + " dropless; load (max_vio) " +
                       num(get(r, 0, "load.max_vio")) + " against " + num(get(r, 1, "load.max_vio")) +
                       ": capacity caps the load by discarding the overflow.");
  std::string verdict;
  if (both(rs0, rs1))
    verdict = *rs0 < *rs1 ? "Strict capacity specialized less here, as the MoE Routing Testbed (arXiv 2604.07030) reports: "
                          : "Strict capacity did not specialize less here (one seed; check with more). The expected mechanism: ";
  f.meaning = verdict +
              "when a domain's experts are full, its extra tokens are dropped or must go elsewhere, so the router is "
              "pushed away from the experts that fit the domain best. Capacity buys a fixed compute and memory "
              "budget per expert, which matters for parallel training, at the price of dropped tokens; dropless "
              "kernels (sorted dispatch, as in moetb) avoid the price.";
  return f;
}

// ---- oracle -----------------------------------------------------------------------------

DemoFindings oracle_findings(const Runs& r, const std::vector<std::string>& labels) {
  DemoFindings f;
  note_missing(r, labels, f);
  const auto rso = get(r, 0, "rs"), rst = get(r, 1, "rs"), rsr = get(r, 2, "rs");
  std::string rs = "Specialization (RS): oracle " + num(rso) + ", learned top-k " + num(rst) + ", random " + num(rsr);
  if (rso && rst && rsr && *rso - *rsr > 1e-9)
    rs += ": the learned router covers " + pct((*rst - *rsr) / (*rso - *rsr)) + " of the way from random to the oracle";
  f.look_for.push_back(rs + ".");
  f.look_for.push_back("Domain isolation (DI): " + num(get(r, 0, "di")) + ", " + num(get(r, 1, "di")) + ", " +
                       num(get(r, 2, "di")) + "; purity: " + num(get(r, 0, "purity")) + ", " + num(get(r, 1, "purity")) +
                       ", " + num(get(r, 2, "purity")) + " (oracle, top-k, random).");
  const auto lo = get(r, 0, "val_bits"), lt = get(r, 1, "val_bits"), lr = get(r, 2, "val_bits");
  f.look_for.push_back("Loss (val_bits): oracle " + num(lo) + ", top-k " + num(lt) + ", random " + num(lr) +
                       " (the data's floor is " + num(get(r, 0, "floor_bits")) + " bits/token).");
  std::string verdict;
  if (lo && lt && lr) {
    if (*lr > *lt && *lr > *lo)
      verdict = "Random routing, which carries no information about the input, is the worst on loss. ";
    verdict += std::fabs(*lo - *lt) < 0.1 ? "The oracle and top-k are close on loss (with one seed, a gap this small needs more "
                                            "seeds to read). "
               : *lo < *lt ? "The oracle's domain-pure experts also reach the lower loss here. "
                           : "The learned router reaches a lower loss than the oracle here: specialization by domain is an "
                             "upper bound for the routing metrics, not for the loss. ";
  }
  f.meaning = verdict +
              "The oracle (arXiv 2604.07030's reference router) knows each token's domain and keeps it inside that "
              "domain's block of experts, so RS, DI and purity are at their maximum by construction; random routing is "
              "the floor. Placing a learned router between the two turns its metric values into a fraction of what "
              "is attainable on this data, which is how the testbed compares routers.";
  return f;
}

// ---- expert-choice ----------------------------------------------------------------------

DemoFindings expert_choice_findings(const Runs& r, const std::vector<std::string>& labels) {
  DemoFindings f;
  note_missing(r, labels, f);
  const auto ev = get(r, 1, "load.max_vio");
  f.look_for.push_back("Balance: expert choice has max_vio " + num(ev) + " and utilization " +
                       num(get(r, 1, "load.utilization")) +
                       (ev && *ev < 0.01 ? " (perfect: each expert takes exactly C tokens of every batch)" : "") +
                       " against max_vio " + num(get(r, 0, "load.max_vio")) + " and utilization " +
                       num(get(r, 0, "load.utilization")) + " for top-k with the balance loss.");
  f.look_for.push_back("Compute per token: with top-k every token gets exactly 2 experts per layer. With expert choice the "
                       "number varies from 0 to " + whole(get(r, 1, "eval.experts_max")) + " (mean " +
                       num(get(r, 1, "eval.experts_mean")) + "), and " + pct(get(r, 1, "eval.no_expert")) +
                       " of the held-out tokens got no expert in a layer: whether a token is picked depends on how its "
                       "score ranks among all the other tokens of its batch.");
  f.look_for.push_back("Specialization (RS): " + num(get(r, 1, "rs")) + " for expert choice against " + num(get(r, 0, "rs")) +
                       " for top-k; every expert must take its quota from every batch, whatever domains the batch holds.");
  const auto lt = get(r, 0, "val_bits"), le = get(r, 1, "val_bits");
  if (both(lt, le))
    f.look_for.push_back("Loss (val_bits): top-k " + num(lt) + ", expert choice " + num(le) +
                         ". These are not comparable one-to-one: expert choice was evaluated the way it trains, ranking each "
                         "token against the whole evaluation batch, later tokens included" +
                         (*le < *lt ? ", so part of its lower loss may come from information a causal model cannot have."
                                    : "."));
  f.meaning =
      "Why expert choice is not causal: expert e takes the C tokens of the batch with the highest scores for e. Whether "
      "token t is among them depends on the scores of every other token in the batch: the later tokens of t's own "
      "sequence, which do not exist yet when t is generated, and the tokens of other sequences, which a single user's "
      "request never sees. Autoregressive generation therefore cannot reproduce the routing the model was trained with. "
      "Perfect balance comes from looking at the whole batch, which is exactly what a decoder may not do; causal "
      "routers (token choice with balancing, or the aux-loss-free bias) must reach balance by learning instead.";
  return f;
}

std::vector<Demo> make_catalogue() {
  std::vector<Demo> d;
  d.push_back({"collapse", "no load balancing: the router piles tokens onto a few experts and starves the rest",
               "Two top-k runs on the same data and seed: one without the Switch load-balancing loss (balance_coef 0), "
               "one with the default coefficient 0.01.",
               spec("collapse", R"("val_bits", "load.max_vio", "load.utilization", "rs")", "", "router.name = \"topk\"\n",
                    "[[axes]]\nrouter.balance_coef = [0.0, 0.01]\n"),
               {"no balancing (coef 0)", "Switch loss (coef 0.01)"},
               {"val_bits", "load.max_vio", "train.max_vio", "train.min_load", "load.utilization", "rs"},
               nullptr});
  d.push_back({"scope", "micro-batch against global-batch load balancing on the same data: which leaves room to specialize",
               "Two top-k runs with the balance loss (coefficient 0.1), each optimizer step = 4 micro-batches of 2 "
               "sequences, one domain per sequence: the loss's load counts taken over each micro-batch, or over the "
               "whole step (the global batch).",
               spec("scope", R"("val_bits", "rs", "di", "load.max_vio")", "packing = \"domain\"   # one domain per sequence\n",
                    "router.name = \"topk\"\nrouter.balance_coef = 0.1\ntrain.accum_steps = 4\n",
                    "[[axes]]\nrouter.balance_scope = [\"micro_batch\", \"global_batch\"]\n", 2),
               {"micro-batch balancing", "global-batch balancing"},
               {"val_bits", "rs", "di", "load.max_vio", "train.max_vio"},
               nullptr});
  d.push_back({"capacity", "strict expert capacity with token dropping against dropless routing",
               "Two top-k runs: each expert limited to ceil(1.0 * n * k / E) assignments per batch with the overflow "
               "dropped (capacity factor 1.0, lowest-probability assignments dropped first), against dropless (no limit).",
               spec("capacity", R"("val_bits", "rs", "di", "load.max_vio")", "", "router.name = \"topk\"\n",
                    "[[axes]]\nrouter.capacity_factor = [1.0, 0.0]\n"),
               {"capacity 1.0, dropping", "dropless"},
               {"val_bits", "train.dropped", "eval.dropped", "eval.no_expert", "load.max_vio", "rs", "di"},
               nullptr});
  d.push_back({"oracle", "the domain oracle (upper bound) and random routing (floor) beside a learned top-k router",
               "Three runs on the same data and seed: the oracle router (each domain restricted to its own block of 2 "
               "experts), learned top-k with the default balance loss, and uniform random routing.",
               spec("oracle", R"("val_bits", "rs", "di", "purity")", "", "", "[[axes]]\nrouter.name = [\"oracle\", \"topk\", \"random\"]\n"),
               {"oracle", "top-k (learned)", "random"},
               {"val_bits", "gap_closed", "rs", "di", "purity", "load.max_vio"},
               nullptr});
  d.push_back({"expert-choice", "expert-choice routing: perfect balance by construction, and why it is not causal",
               "Two runs: learned top-k (token choice, each token picks 2 experts) with the balance loss, and expert "
               "choice (each expert picks its C = 2n/E highest-scoring tokens of the batch, the same compute).",
               spec("expert-choice", R"("val_bits", "rs", "load.max_vio", "load.utilization")", "", "",
                    "[[axes]]\nrouter.name = [\"topk\", \"expert_choice\"]\n"),
               {"top-k (token choice)", "expert choice"},
               {"val_bits", "load.max_vio", "load.utilization", "eval.experts_max", "eval.no_expert", "rs"},
               nullptr});
  d[0].findings = collapse_findings;
  d[1].findings = scope_findings;
  d[2].findings = capacity_findings;
  d[3].findings = oracle_findings;
  d[4].findings = expert_choice_findings;
  return d;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string wrap(const std::string& text, std::size_t width, const std::string& first, const std::string& rest) {
  std::string out, line = first;
  std::size_t p = 0;
  bool empty = true;
  while (p < text.size()) {
    const std::size_t q = std::min(text.find(' ', p), text.size());
    const std::string word = text.substr(p, q - p);
    p = q + 1;
    if (word.empty()) continue;
    if (!empty && line.size() + 1 + word.size() > width) {
      out += line + "\n";
      line = rest;
      empty = true;
    }
    line += (empty ? "" : " ") + word;
    empty = false;
  }
  return out + line + "\n";
}

}  // namespace

const std::vector<Demo>& demo_catalogue() {
  static const std::vector<Demo> demos = make_catalogue();
  return demos;
}

const Demo& find_demo(const std::string& name) {
  std::string names;
  for (const auto& d : demo_catalogue()) {
    if (d.name == name) return d;
    names += (names.empty() ? "" : ", ") + d.name;
  }
  throw std::invalid_argument("unknown demo '" + name + "'; the demos are: " + names);
}

std::map<std::string, double> train_log_extras(const std::filesystem::path& train_log, int tail) {
  std::map<std::string, double> out;
  runs::TrainLog log;
  try {
    log = runs::read_train_log(train_log);
  } catch (const std::exception&) {
    return out;  // unreadable: no figures
  }
  std::vector<const runs::StepRecord*> steps;
  for (const auto& s : log.steps)
    if (!s.load.empty()) steps.push_back(&s);
  if (steps.empty()) return out;
  auto or0 = [](double x) { return std::isfinite(x) ? x : 0.0; };
  const std::size_t keep = static_cast<std::size_t>(std::max(1, tail));
  const std::size_t from = steps.size() > keep ? steps.size() - keep : 0;
  double vio = 0, min_load = 0, dropped = 0;
  for (std::size_t i = from; i < steps.size(); ++i) {
    const runs::StepRecord& s = *steps[i];
    double worst_min = INFINITY, worst_vio = 0, drop = 0;
    for (const auto& l : s.load) {
      const double max_share = or0(l.max_share), min_share = or0(l.min_share);
      const double v = or0(l.violation);  // E * max_share - 1, so min_share * E = min_share * (v + 1) / max_share
      worst_min = std::min(worst_min, max_share > 0 ? min_share * (v + 1.0) / max_share : 0.0);
      worst_vio = std::max(worst_vio, v);
      drop += or0(l.dropped_fraction);
    }
    vio += std::isfinite(s.max_load_violation) ? s.max_load_violation : worst_vio;
    min_load += worst_min;
    const auto term = s.aux_terms.find("dropped_fraction");  // all micro-batches of the step
    dropped += term != s.aux_terms.end() ? term->second : drop / static_cast<double>(s.load.size());
  }
  const double n = static_cast<double>(steps.size() - from);
  out["train.max_vio"] = vio / n;
  out["train.min_load"] = min_load / n;
  out["train.dropped"] = dropped / n;
  return out;
}

std::vector<const ResultRow*> demo_runs(const Demo& demo, const ResultsTable& table) {
  const std::vector<PlannedRun> runs = expand(parse_spec(demo.spec, "demo " + demo.name));
  std::vector<const ResultRow*> out(demo.run_labels.size(), nullptr);
  for (std::size_t i = 0; i < runs.size() && i < out.size(); ++i)
    for (const auto& row : table.rows)
      if (row.entry.id == runs[i].id) out[i] = &row;
  return out;
}

DemoFindings demo_findings(const Demo& demo, const ResultsTable& table) {
  return demo.findings(demo_runs(demo, table), demo.run_labels);
}

std::vector<std::string> row_labels(const Demo& demo, const ResultsTable& table) {
  const std::vector<PlannedRun> runs = expand(parse_spec(demo.spec, "demo " + demo.name));
  std::vector<std::string> labels;
  for (const auto& row : table.rows) {
    std::string label;
    for (std::size_t i = 0; i < runs.size() && i < demo.run_labels.size(); ++i)
      if (runs[i].id == row.entry.id) label = demo.run_labels[i];
    if (label.empty())
      for (const auto& [k, v] : row.entry.axes) label += (label.empty() ? "" : " ") + k.substr(k.rfind('.') + 1) + "=" + v;
    labels.push_back(label);
  }
  return labels;
}

std::string demo_column_help(const std::string& column) {
  static const std::map<std::string, std::string> help = {
      {"val_bits", "validation loss, bits/token (lower is better)"},
      {"gap_closed", "share of the unigram-to-floor gap closed"},
      {"rs", "Routing Specialization: 0 = routing ignores the domain, 1 = oracle-like"},
      {"di", "domain isolation: how little domains share experts"},
      {"purity", "share of an expert's tokens from its main domain"},
      {"load.max_vio", "E * busiest expert's share - 1 on the held-out set (0 = balanced)"},
      {"load.utilization", "sum_e min(share_e, 1/E) on the held-out set (1 = balanced)"},
      {"load.dead_experts", "experts per layer that got no token on the held-out set"},
      {"train.max_vio", "max_vio of one training micro-batch, last 10 steps"},
      {"train.min_load", "least-used expert's share * E in training, last 10 steps (1 = fair)"},
      {"train.dropped", "share of assignments dropped by capacity in training, last 10 steps"},
      {"eval.dropped", "share of assignments dropped on the held-out set"},
      {"eval.no_expert", "share of held-out tokens that got no expert in a layer"},
      {"eval.experts_max", "most experts any held-out token got in a layer"},
  };
  const auto it = help.find(column);
  return it == help.end() ? "" : it->second;
}

std::string demo_table(const Demo& demo, const ResultsTable& table) {
  const std::vector<std::string> labels = row_labels(demo, table);
  std::size_t label_w = 3;
  for (const auto& l : labels) label_w = std::max(label_w, l.size());
  std::vector<std::size_t> widths;
  for (const auto& c : demo.columns) widths.push_back(std::max<std::size_t>(c.size(), 7));
  auto pad = [](const std::string& s, std::size_t w, bool right) {
    const std::string sp(w > s.size() ? w - s.size() : 0, ' ');
    return right ? sp + s : s + sp;
  };
  std::string out = pad("run", label_w, false);
  for (std::size_t c = 0; c < demo.columns.size(); ++c) out += "  " + pad(demo.columns[c], widths[c], true);
  out += "\n";
  for (std::size_t r = 0; r < table.rows.size(); ++r) {
    const ResultRow& row = table.rows[r];
    out += pad(labels[r], label_w, false);
    for (std::size_t c = 0; c < demo.columns.size(); ++c) {
      const auto it = row.values.find(demo.columns[c]);
      const bool count = demo.columns[c].size() > 4 && demo.columns[c].compare(demo.columns[c].size() - 4, 4, "_max") == 0;
      std::string cell = row.status != "ok"            ? row.status
                         : it == row.values.end() || !std::isfinite(it->second) ? "-"
                         : count                       ? whole(it->second)
                                                       : num(it->second);
      out += "  " + pad(cell, widths[c], true);
    }
    out += "\n";
  }
  for (const auto& c : demo.columns)
    if (const std::string h = demo_column_help(c); !h.empty()) out += "  " + c + ": " + h + "\n";
  return out;
}

std::string demo_findings_text(const DemoFindings& findings, std::size_t width) {
  std::string out = "What to look for:\n";
  for (const auto& l : findings.look_for) out += wrap(l, width, "  - ", "    ");
  out += "What it means:\n" + wrap(findings.meaning, width, "  ", "  ");
  return out;
}

std::string demo_slug(const std::string& label) {
  std::string out;
  for (char c : label) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (c >= 'A' && c <= 'Z') out += static_cast<char>(c - 'A' + 'a');
    else if (alnum) out += c;
    else if (!out.empty() && out.back() != '-') out += '-';
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "run" : out;
}

std::string demo_intro_html(const Demo& demo, const DemoFindings& findings,
                            const std::vector<std::pair<std::string, std::string>>& run_reports) {
  std::string h = "<p class=\"demo-summary\"><strong>moetb demo " + html_escape(demo.name) + "</strong>: " +
                  html_escape(demo.summary) + ".</p>\n<p>" + html_escape(demo.setup) + "</p>\n<h3>What to look for</h3>\n<ul>\n";
  for (const auto& l : findings.look_for) h += "<li>" + html_escape(l) + "</li>\n";
  h += "</ul>\n<h3>What it means</h3>\n<p>" + html_escape(findings.meaning) + "</p>\n";
  if (!run_reports.empty()) {
    h += "<p>Each run's own report (training curves, routing heatmaps per layer, metrics beside the other runs): ";
    for (std::size_t i = 0; i < run_reports.size(); ++i)
      h += (i ? ", " : "") + std::string("<a href=\"") + html_escape(run_reports[i].second) + "\">" +
           html_escape(run_reports[i].first) + "</a>";
    h += ".</p>\n";
  }
  return h;
}

}  // namespace moetb::demos
