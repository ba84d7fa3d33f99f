// "What to look for" of each demo (findings.h), built from the measured numbers over seeds.
// Every comparison goes through claim() (claims.h): the means ± sd of both sides and the
// paired-by-seed 95% interval, stated as an effect only when it excludes zero; the verdicts in
// "what it means" branch on the same test, never on a single seed.
#include "demos/findings.h"

#include <cmath>

namespace moetb::demos {
namespace {

// A first line naming the runs that did not finish, so no comparison reads as complete.
void note_missing(const DemoRuns& r, DemoFindings& f) {
  for (std::size_t i = 0; i < r.labels.size(); ++i) {
    std::string missing;
    std::size_t count = 0;
    for (std::size_t s = 0; s < r.seeds.size(); ++s) {
      const ResultRow* row = i < r.rows.size() && s < r.rows[i].size() ? r.rows[i][s] : nullptr;
      if (row != nullptr && row->status == "ok") continue;
      ++count;
      missing += (missing.empty() ? "" : "; ") + std::string("seed ") + std::to_string(r.seeds[s]) + ": " +
                 (row == nullptr ? "missing" : row->status + (row->error.empty() ? "" : ": " + row->error));
    }
    if (count > 0)
      f.look_for.push_back("The run '" + r.labels[i] + "' did not finish for " + std::to_string(count) + " of " +
                           std::to_string(r.seeds.size()) + " seeds (" + missing +
                           "); the comparisons below use the seeds that finished, and say n/a where none did.");
  }
}

// One label's two columns as two labels over the same seeds (column `as` in both), so that claim()
// pairs by seed one model measured two ways. The returned runs point into *storage.
DemoRuns two_columns(const DemoRuns& r, std::size_t label, const std::string& col_a, const std::string& col_b, const std::string& as,
                     std::vector<ResultRow>* storage) {
  DemoRuns out;
  out.labels = {"a", "b"};
  out.seeds = r.seeds;
  out.rows.assign(2, std::vector<const ResultRow*>(r.seeds.size(), nullptr));
  storage->clear();
  storage->reserve(2 * r.seeds.size());  // no reallocation: the pointers below stay valid
  for (std::size_t s = 0; label < r.rows.size() && s < r.rows[label].size(); ++s) {
    const ResultRow* row = r.rows[label][s];
    if (row == nullptr) continue;
    for (std::size_t side = 0; side < 2; ++side) {
      ResultRow copy;
      copy.status = row->status;
      const auto it = row->values.find(side == 0 ? col_a : col_b);
      if (it != row->values.end()) copy.values[as] = it->second;
      storage->push_back(copy);
      out.rows[side][s] = &storage->back();
    }
  }
  return out;
}

std::string seeds_phrase(const Effect& e) {
  return e.diff.agree() == e.diff.n ? "in every seed" : "in " + std::to_string(e.diff.agree()) + " of " + std::to_string(e.diff.n) + " seeds";
}

}  // namespace

// ---- collapse: 0 = no balancing, 1 = Switch loss ------------------------------------------

DemoFindings collapse_findings(const DemoRuns& r) {
  DemoFindings f;
  note_missing(r, f);
  const std::string a = "no balancing", b = "the Switch loss";
  f.look_for.push_back(claim(r, 0, 1, "load.max_vio", "Held-out load (max_vio: E times the busiest expert's share, minus 1; 0 = balanced)", a, b));
  f.look_for.push_back(claim(r, 0, 1, "train.max_vio", "Load of single training micro-batches (train.max_vio, last 10 steps; with top-2 of 8 "
                             "experts the most an expert can take is 3: half of all assignments)", a, b));
  f.look_for.push_back(claim(r, 0, 1, "train.min_load", "Starved experts (min_load: the least-used expert's share times E in the "
                             "last training steps; 1 = a fair share)", a, b));
  std::string util = claim(r, 0, 1, "load.utilization", "Utilization (sum over experts of min(share, 1/E); 1 = every expert fully used)", a, b);
  if (const auto dead = r.mean(0, "load.dead_experts"); dead && *dead > 0)
    util += " Without balancing " + num(dead) + " experts per layer (mean over seeds) received no held-out token at all.";
  else if (dead)
    util += " No expert is completely dead on the held-out set: at this length the collapse starves experts rather than killing them.";
  f.look_for.push_back(util);
  const Effect rs = effect(r, 0, 1, "rs");
  std::string rs_line = claim(r, 0, 1, "rs", "Specialization (RS)", a, b);
  if (rs.higher_b()) rs_line += " Collapse is not specialization: the few crowded experts serve every domain.";
  f.look_for.push_back(rs_line);
  const Effect loss = effect(r, 0, 1, "val_bits");
  std::string loss_line = claim(r, 0, 1, "val_bits", "Loss (val_bits, bits/token)", a, b);
  if (loss.higher_a())
    loss_line += " The balanced model predicts better: the idle experts were capacity the unbalanced model paid for and did not use.";
  else if (loss.higher_b())
    loss_line += " At this scale the unbalanced model is better on loss: the cost of collapse is idle experts and overloaded devices.";
  else if (loss.diff.n >= 2)
    loss_line += " So this demo does not show a loss cost of collapse; its robust cost is wasted capacity (idle experts) and overloaded devices.";
  f.look_for.push_back(loss_line);
  f.meaning =
      "Token-choice top-k routing reinforces itself: an expert that gets more tokens gets more gradient, becomes better, "
      "and is chosen more. A balance term (here the Switch loss) is what keeps every expert in use, and in a real "
      "deployment what keeps devices from idling while one is overloaded. Every later demo keeps some balancing and asks "
      "what its form costs in specialization.";
  return f;
}

// ---- scope: 0 = micro-batch, 1 = global batch ---------------------------------------------

DemoFindings scope_findings(const DemoRuns& r) {
  DemoFindings f;
  note_missing(r, f);
  const std::string a = "micro-batch balancing", b = "global-batch balancing";
  f.look_for.push_back(claim(r, 0, 1, "rs", "Specialization (RS, Routing Specialization: 0 = routing says nothing about the "
                             "domain, 1 = oracle-like)", a, b));
  f.look_for.push_back(claim(r, 0, 1, "di", "Domain isolation (DI)", a, b));
  std::string load = claim(r, 0, 1, "load.max_vio", "Overall load on the held-out set (max_vio)", a, b);
  const auto v0 = r.mean(0, "load.max_vio"), v1 = r.mean(1, "load.max_vio");
  if (v0 && v1 && std::max(*v0, *v1) < 0.5) load += " Both scopes keep the total load balanced.";
  f.look_for.push_back(load);
  f.look_for.push_back(claim(r, 0, 1, "train.max_vio", "Load of a single training micro-batch (train.max_vio, 2 sequences)", a, b) +
                       " Global-batch balancing only asks the 8 sequences of an optimizer step to be balanced together, so a "
                       "micro-batch of one or two domains may lean on that domain's experts.");
  f.look_for.push_back(claim(r, 0, 1, "val_bits", "Loss (val_bits)", a, b));
  const Effect rs = effect(r, 0, 1, "rs");
  std::string verdict;
  if (rs.higher_b())
    verdict = "Here the wider scope specialized more " + seeds_phrase(rs) + ", as the MoE Routing Testbed (arXiv 2604.07030) predicts. ";
  else if (rs.higher_a())
    verdict = "Here the wider scope specialized less " + seeds_phrase(rs) + ", against the MoE Routing Testbed's (arXiv 2604.07030) finding; "
              "a longer run may differ. ";
  else if (rs.diff.n >= 2)
    verdict = "Here the difference in specialization is within seed noise at " + std::to_string(rs.diff.n) +
              " seeds; more seeds or longer runs (docs/sweeps.md) would be needed to see it. ";
  f.meaning = verdict +
              "Balancing every micro-batch forces each small batch, which holds only a few domains, to spread over all "
              "experts, which works against experts that own a domain. Balancing over the global batch (as Qwen's "
              "global-batch loss and Megatron's global aux loss do) asks the same of the whole step and leaves room to "
              "specialize.";
  return f;
}

// ---- capacity: 0 = capacity factor 1.0, 1 = dropless --------------------------------------
// Columns "X" are each run evaluated with its training routing (the capacity run drops at
// evaluation too); "dropless.X" both evaluated dropless (demos.h), the like-with-like numbers.

DemoFindings capacity_findings(const DemoRuns& r) {
  DemoFindings f;
  note_missing(r, f);
  const std::string a = "capacity 1.0", b = "dropless";
  f.look_for.push_back("Dropped assignments with capacity factor 1.0 (means over seeds): " + pct(r.mean(0, "train.dropped")) +
                       " in the last training steps and " + pct(r.mean(0, "eval.dropped")) + " on the held-out set, where " +
                       pct(r.mean(0, "eval.no_expert")) +
                       " of the tokens got no expert at all in a layer (they pass through the residual only). "
                       "Dropless drops nothing (" + pct(r.mean(1, "eval.dropped")) + ").");
  f.look_for.push_back(claim(r, 0, 1, "dropless.val_bits", "Loss (val_bits) with both evaluated dropless (the capacity-trained "
                             "model with its limit switched off at evaluation, so only the training differs)", a, b));
  f.look_for.push_back(claim(r, 0, 1, "val_bits", "Loss as each routes in training (the capacity run also drops at evaluation)", a, b));
  std::vector<ResultRow> storage;
  f.look_for.push_back(claim(two_columns(r, 0, "val_bits", "dropless.val_bits", "x", &storage), 0, 1, "x",
                             "The capacity-trained model alone, evaluated with capacity and then dropless (val_bits)",
                             "evaluation with capacity", "dropless evaluation") +
                       " This is what dropping at evaluation costs, apart from what training with capacity did.");
  f.look_for.push_back(claim(r, 0, 1, "dropless.rs", "Specialization (RS) of the router's own choices, both evaluated dropless", a, b));
  f.look_for.push_back(claim(r, 0, 1, "rs", "RS as each routes in training (for the capacity run: of the assignments that survived "
                             "the drops; the dropped ones are missing from its trace)", a, b));
  f.look_for.push_back(claim(r, 0, 1, "dropless.di", "Domain isolation (DI), both evaluated dropless", a, b));
  f.look_for.push_back(claim(r, 0, 1, "load.max_vio", "Load (max_vio) as each routes in training", a, b) +
                       " Capacity caps the load by discarding the overflow.");
  const Effect rs = effect(r, 0, 1, "dropless.rs");
  const Effect rs_train = effect(r, 0, 1, "rs");
  std::string verdict;
  if (rs.higher_b())
    verdict = "Training with strict capacity specialized less here (" + seeds_phrase(rs) +
              ", both evaluated dropless), as the MoE Routing Testbed (arXiv 2604.07030) reports. ";
  else if (rs.diff.n >= 2)
    verdict = std::string(rs.higher_a() ? "Training with strict capacity specialized more here (both evaluated dropless), against the "
                                          "MoE Routing Testbed's report. "
                                        : "With both evaluated dropless, the difference in specialization is within seed noise here. ");
  if (rs_train.higher_b() && !rs.real() && rs.diff.n >= 2)
    verdict += "The lower RS of the capacity run's training-time trace therefore comes from dropping at evaluation, not from "
               "what training with capacity did to the router. ";
  f.meaning = verdict +
              "What is compared: the dropless numbers evaluate both models the same way (every token keeps its router's top-2), "
              "so they show what training with capacity did to the router and the experts; the numbers as each routes in "
              "training add, for the capacity run, the tokens it drops at evaluation, and its trace then holds only the "
              "assignments that survived (the router's choices before the drop are kept beside them, "
              "layers.{l}.experts_before_capacity, for moetb metrics --before-capacity). The expected mechanism: when a "
              "domain's experts are full, its extra tokens are dropped or must go elsewhere, so the router is pushed away "
              "from the experts that fit the domain best. Capacity buys a fixed compute and memory budget per expert, which "
              "matters for parallel training, at the price of dropped tokens; dropless kernels (sorted dispatch, as in "
              "moetb) avoid the price.";
  return f;
}

// ---- oracle: 0 = oracle, 1 = learned top-k, 2 = random ------------------------------------

DemoFindings oracle_findings(const DemoRuns& r) {
  DemoFindings f;
  note_missing(r, f);
  const auto rso = r.mean(0, "rs"), rst = r.mean(1, "rs"), rsr = r.mean(2, "rs");
  std::string rs = "Specialization (RS, means over seeds): oracle " + num(rso) + ", learned top-k " + num(rst) + ", random " + num(rsr);
  if (rso && rst && rsr && *rso - *rsr > 1e-9)
    rs += ": the learned router covers " + pct((*rst - *rsr) / (*rso - *rsr)) + " of the way from random to the oracle";
  f.look_for.push_back(rs + ".");
  f.look_for.push_back("Domain isolation (DI): " + num(r.mean(0, "di")) + ", " + num(r.mean(1, "di")) + ", " + num(r.mean(2, "di")) +
                       "; purity: " + num(r.mean(0, "purity")) + ", " + num(r.mean(1, "purity")) + ", " + num(r.mean(2, "purity")) +
                       " (oracle, top-k, random; means over seeds).");
  f.look_for.push_back(claim(r, 1, 2, "val_bits", "Loss (val_bits), random against learned top-k", "top-k", "random"));
  f.look_for.push_back(claim(r, 0, 1, "val_bits", "Loss (val_bits), top-k against the oracle", "the oracle", "top-k") +
                       " The data's floor is " + num(r.mean(0, "floor_bits")) + " bits/token.");
  const Effect random_vs_topk = effect(r, 1, 2, "val_bits");
  const Effect topk_vs_oracle = effect(r, 0, 1, "val_bits");
  std::string verdict;
  if (random_vs_topk.higher_b())
    verdict = "Random routing, which carries no information about the input, is worse on loss than the learned router " +
              seeds_phrase(random_vs_topk) + ". ";
  if (topk_vs_oracle.higher_b())
    verdict += "The oracle's domain-pure experts also reach the lower loss. ";
  else if (topk_vs_oracle.higher_a())
    verdict += "The learned router reaches a lower loss than the oracle: specialization by domain is an upper bound for the "
               "routing metrics, not for the loss. ";
  else if (topk_vs_oracle.diff.n >= 2)
    verdict += "The oracle and top-k are within seed noise of each other on loss: the oracle is the upper bound of the "
               "routing metrics, not of the loss. ";
  f.meaning = verdict +
              "The oracle (arXiv 2604.07030's reference router) knows each token's domain and keeps it inside that "
              "domain's block of experts, so RS, DI and purity are at their maximum by construction; random routing is "
              "the floor. Placing a learned router between the two turns its metric values into a fraction of what "
              "is attainable on this data, which is how the testbed compares routers.";
  return f;
}

// ---- expert-choice: 0 = top-k, 1 = expert choice ------------------------------------------
// "dropless.X": expert choice evaluated causally (each token its own top-k' = 2 by the router's
// scores, docs/routers.md); top-k routes each token on its own anyway, so its dropless.X is X.

DemoFindings expert_choice_findings(const DemoRuns& r) {
  DemoFindings f;
  note_missing(r, f);
  const std::string a = "top-k", b = "expert choice";
  const auto ev = r.mean(1, "load.max_vio");
  f.look_for.push_back("Balance: expert choice has max_vio " + num(ev) + " and utilization " + num(r.mean(1, "load.utilization")) +
                       (ev && *ev < 0.01 ? " (perfect: each expert takes exactly C tokens of every batch)" : "") +
                       " against max_vio " + num(r.mean(0, "load.max_vio")) + " and utilization " +
                       num(r.mean(0, "load.utilization")) + " for top-k with the balance loss (means over seeds).");
  f.look_for.push_back("Compute per token: with top-k every token gets exactly 2 experts per layer. With expert choice the "
                       "number varies from 0 to " + whole(r.mean(1, "eval.experts_max")) + " (mean " +
                       num(r.mean(1, "eval.experts_mean")) + "), and " + pct(r.mean(1, "eval.no_expert")) +
                       " of the held-out tokens got no expert in a layer: whether a token is picked depends on how its "
                       "score ranks among all the other tokens of its batch.");
  f.look_for.push_back(claim(r, 0, 1, "rs", "Specialization (RS), expert choice routed as it trains", a, b) +
                       " Every expert must take its quota from every batch, whatever domains the batch holds.");
  f.look_for.push_back(claim(r, 0, 1, "dropless.rs", "RS with expert choice routed causally (each token its own 2 best experts)", a, b));
  const Effect loss = effect(r, 0, 1, "val_bits");
  f.look_for.push_back(claim(r, 0, 1, "val_bits", "Loss (val_bits) with expert choice evaluated as it trains: each token ranked "
                             "against the whole evaluation batch, later tokens included (not causal)", a, b));
  const Effect causal = effect(r, 0, 1, "dropless.val_bits");
  f.look_for.push_back(claim(r, 0, 1, "dropless.val_bits", "Loss with expert choice evaluated causally (each token its own 2 "
                             "highest-scoring experts, the mean expert choice gives; docs/routers.md), the like-with-like "
                             "comparison with top-k", a, b));
  std::vector<ResultRow> storage;
  const DemoRuns own = two_columns(r, 1, "val_bits", "dropless.val_bits", "x", &storage);
  const Effect own_effect = effect(own, 0, 1, "x");
  f.look_for.push_back(claim(own, 0, 1, "x", "Expert choice alone, evaluated over the batch and then causally (val_bits)",
                             "batch-wide evaluation", "causal evaluation"));
  std::string verdict;
  if (loss.higher_a() && causal.diff.n < 2)
    verdict = "Expert choice's lower loss over the batch may partly come from information a causal model cannot have (these runs "
              "have no causal evaluation to tell). ";
  else if (loss.higher_a() && !causal.higher_a())
    verdict = "Expert choice's lower loss over the batch does not survive causal evaluation: part of it came from information a "
              "causal model cannot have. ";
  else if (causal.higher_a())
    verdict = "Expert choice keeps a lower loss than top-k even when evaluated causally " + seeds_phrase(causal) + ". ";
  else if (causal.higher_b())
    verdict = "Evaluated causally, the like-with-like comparison, expert choice is worse on loss than top-k " + seeds_phrase(causal) + ". ";
  if (own_effect.higher_b())
    verdict += "Evaluated causally, expert choice is worse on loss than with its own batch-wide routing " + seeds_phrase(own_effect) +
              ": the model learned to rely on choices a decoder cannot make. ";
  f.meaning =
      verdict +
      "Why expert choice is not causal: expert e takes the C tokens of the batch with the highest scores for e. Whether "
      "token t is among them depends on the scores of every other token in the batch: the later tokens of t's own "
      "sequence, which do not exist yet when t is generated, and the tokens of other sequences, which a single user's "
      "request never sees. Autoregressive generation therefore cannot reproduce the routing the model was trained with; "
      "the causal numbers use a rule a decoder can run. Perfect balance comes from looking at the whole batch, which is "
      "exactly what a decoder may not do; causal routers (token choice with balancing, or the aux-loss-free bias) must "
      "reach balance by learning instead.";
  return f;
}

}  // namespace moetb::demos
