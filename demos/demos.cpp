// The five demos of `moetb demo` (demos.h): their specs, labels, the per-label table and the
// report intro; the "what to look for" builders are in findings.cpp. Every run of a demo trains
// the same small model (d_model 64, 2 MoE blocks of 8 experts, top-2, 500-600 steps of 8 x 128
// tokens) on a small synthetic four-domain dataset, over 5 seeds, so a demo finishes in 2-3
// minutes on two cores; the claims state an effect only where it exceeds the seed spread.
#include "demos/demos.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <stdexcept>

#include "demos/findings.h"
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
train.lr = 0.01
eval.sequences = 256
checkpoint.every = 0
)";

// Seeds and length per demo, sized by one measurement (docs/tutorial.md): about 8 s of CPU for a
// 250-step run with its evaluation (9 s with scope's 4 micro-batches per step), so 10 runs of 600
// steps or 15 of 500 take about 2 minutes on two idle cores. Four evaluations (a routing trace
// each), so the run reports show the routing metrics over training as a curve.
struct Size {
  int seeds = 5;
  int steps = 600;
};

std::string spec(const std::string& name, const std::string& metrics, const std::string& datagen_extra,
                 const std::string& base_extra, const std::string& axes, Size size = {}, int micro_batch = 8) {
  std::string seeds;
  for (int s = 1; s <= size.seeds; ++s) seeds += (s > 1 ? ", " : "") + std::to_string(s);
  return "[sweep]\nname = \"demo-" + name + "\"\nseeds = [" + seeds + "]\nmetrics = [" + metrics + "]\n\n" + kData + datagen_extra +
         kBase + "train.steps = " + std::to_string(size.steps) + "\neval.every = " + std::to_string(size.steps / 4) +
         "\ntrain.micro_batch = " + std::to_string(micro_batch) + "\n" + base_extra + "\n" + axes;
}

std::vector<Demo> make_catalogue() {
  std::vector<Demo> d;
  d.push_back({"collapse", "no load balancing: the router piles tokens onto a few experts and starves the rest",
               "Two top-k settings on the same data: one without the Switch load-balancing loss (balance_coef 0), "
               "one with the default coefficient 0.01.",
               spec("collapse", R"("val_bits", "load.max_vio", "load.utilization", "rs")", "", "router.name = \"topk\"\n",
                    "[[axes]]\nrouter.balance_coef = [0.0, 0.01]\n"),
               {"no balancing (coef 0)", "Switch loss (coef 0.01)"},
               {"val_bits", "load.max_vio", "train.max_vio", "train.min_load", "load.utilization", "rs"},
               nullptr});
  d.push_back({"scope", "micro-batch against global-batch load balancing on the same data: which leaves room to specialize",
               "Two top-k settings with the balance loss (coefficient 0.1), each optimizer step = 4 micro-batches of 2 "
               "sequences, one domain per sequence: the loss's load counts taken over each micro-batch, or over the "
               "whole step (the global batch).",
               spec("scope", R"("val_bits", "rs", "di", "load.max_vio")", "packing = \"domain\"   # one domain per sequence\n",
                    "router.name = \"topk\"\nrouter.balance_coef = 0.1\ntrain.accum_steps = 4\n",
                    "[[axes]]\nrouter.balance_scope = [\"micro_batch\", \"global_batch\"]\n", {5, 500}, 2),
               {"micro-batch balancing", "global-batch balancing"},
               {"val_bits", "rs", "di", "load.max_vio", "train.max_vio"},
               nullptr});
  d.push_back({"capacity", "strict expert capacity with token dropping against dropless routing",
               "Two top-k settings: each expert limited to ceil(1.0 * n * k / E) assignments per batch with the overflow "
               "dropped (capacity factor 1.0, lowest-probability assignments dropped first), against dropless (no limit).",
               spec("capacity", R"("val_bits", "rs", "di", "load.max_vio")", "", "router.name = \"topk\"\n",
                    "[[axes]]\nrouter.capacity_factor = [1.0, 0.0]\n"),
               {"capacity 1.0, dropping", "dropless"},
               {"val_bits", "dropless.val_bits", "train.dropped", "eval.dropped", "rs", "dropless.rs", "dropless.di", "load.max_vio"},
               nullptr});
  d.push_back({"oracle", "the domain oracle (upper bound) and random routing (floor) beside a learned top-k router",
               "Three settings on the same data: the oracle router (each domain restricted to its own block of 2 "
               "experts), learned top-k with the default balance loss, and uniform random routing.",
               spec("oracle", R"("val_bits", "rs", "di", "purity")", "", "", "[[axes]]\nrouter.name = [\"oracle\", \"topk\", \"random\"]\n",
                    {5, 500}),
               {"oracle", "top-k (learned)", "random"},
               {"val_bits", "gap_closed", "rs", "di", "purity", "load.max_vio"},
               nullptr});
  d.push_back({"expert-choice", "expert-choice routing: perfect balance by construction, and why it is not causal",
               "Two settings: learned top-k (token choice, each token picks 2 experts) with the balance loss, and expert "
               "choice (each expert picks its C = 2n/E highest-scoring tokens of the batch, the same compute).",
               spec("expert-choice", R"("val_bits", "rs", "load.max_vio", "load.utilization")", "", "",
                    "[[axes]]\nrouter.name = [\"topk\", \"expert_choice\"]\n"),
               {"top-k (token choice)", "expert choice"},
               {"val_bits", "dropless.val_bits", "load.max_vio", "load.utilization", "eval.experts_max", "eval.no_expert", "rs", "dropless.rs"},
               nullptr});
  for (auto& demo : d) {
    const sweeps::SweepSpec parsed = parse_spec(demo.spec, "demo " + demo.name);
    demo.setup += " Each setting is trained with seeds " + std::to_string(parsed.seeds.front()) + "-" +
                  std::to_string(parsed.seeds.back()) + "; runs with the same seed share their initialization and data "
                  "order, so every comparison is paired by seed.";
  }
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

DemoRuns demo_runs(const Demo& demo, const ResultsTable& table) {
  const std::vector<PlannedRun> runs = expand(parse_spec(demo.spec, "demo " + demo.name));
  DemoRuns out;
  out.labels = demo.run_labels;
  out.rows.assign(demo.run_labels.size(), {});
  std::vector<std::string> settings;  // one per label, plan order: the axes' canonical text
  for (const auto& run : runs) {
    std::string setting;
    for (const auto& [k, v] : run.axes) setting += k + "=" + v.text + "\n";
    std::size_t label = 0;
    while (label < settings.size() && settings[label] != setting) ++label;
    if (label == settings.size()) settings.push_back(setting);
    if (label >= out.labels.size()) continue;
    std::size_t seed = 0;
    while (seed < out.seeds.size() && out.seeds[seed] != run.seed) ++seed;
    if (seed == out.seeds.size()) {
      out.seeds.push_back(run.seed);
      for (auto& r : out.rows) r.resize(out.seeds.size(), nullptr);
    }
    for (const auto& row : table.rows)
      if (row.entry.id == run.id) out.rows[label][seed] = &row;
  }
  return out;
}

DemoFindings demo_findings(const Demo& demo, const ResultsTable& table) { return demo.findings(demo_runs(demo, table)); }

std::vector<std::string> row_labels(const Demo& demo, const ResultsTable& table) {
  const DemoRuns runs = demo_runs(demo, table);
  std::vector<std::string> labels;
  for (const auto& row : table.rows) {
    std::string label;
    for (std::size_t l = 0; l < runs.rows.size() && label.empty(); ++l)
      for (std::size_t s = 0; s < runs.rows[l].size(); ++s)
        if (runs.rows[l][s] == &row) label = runs.labels[l] + (runs.seeds.size() > 1 ? ", seed " + std::to_string(runs.seeds[s]) : "");
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
      {"dropless.val_bits", "val_bits evaluated dropless: no capacity limit, expert choice causal (each token its own top-k')"},
      {"dropless.rs", "rs of the dropless evaluation's routing"},
      {"dropless.di", "di of the dropless evaluation's routing"},
  };
  const auto it = help.find(column);
  return it == help.end() ? "" : it->second;
}

std::string demo_table(const Demo& demo, const ResultsTable& table) {
  const DemoRuns runs = demo_runs(demo, table);
  std::size_t label_w = 3;
  for (const auto& l : runs.labels) label_w = std::max(label_w, l.size());
  auto columns = [](const std::string& s) {  // characters on screen: UTF-8 continuation bytes do not count ("±")
    return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
  };
  auto pad = [&](const std::string& s, std::size_t w, bool right) {
    const std::string sp(w > columns(s) ? w - columns(s) : 0, ' ');
    return right ? sp + s : s + sp;
  };
  std::vector<std::vector<std::string>> cells(runs.labels.size());
  std::vector<std::size_t> widths;
  for (const auto& c : demo.columns) widths.push_back(std::max<std::size_t>(c.size(), 7));
  for (std::size_t l = 0; l < runs.labels.size(); ++l) {
    for (std::size_t c = 0; c < demo.columns.size(); ++c) {
      const std::string& col = demo.columns[c];
      const bool count = col.size() > 4 && col.compare(col.size() - 4, 4, "_max") == 0;
      const sweeps::SampleSummary st = sweeps::summarize(runs.values(l, col));
      std::string cell = runs.finished(l) == 0 ? "failed" : st.n == 0 ? "-" : count ? whole(st.mean) : mean_sd(st);
      widths[c] = std::max(widths[c], columns(cell));
      cells[l].push_back(cell);
    }
  }
  std::string out = pad("run", label_w, false) + "  " + pad("n", 3, true);
  for (std::size_t c = 0; c < demo.columns.size(); ++c) out += "  " + pad(demo.columns[c], widths[c], true);
  out += "\n";
  for (std::size_t l = 0; l < runs.labels.size(); ++l) {
    std::string n = std::to_string(runs.finished(l));
    out += pad(runs.labels[l], label_w, false) + "  " + pad(n, 3, true);
    for (std::size_t c = 0; c < demo.columns.size(); ++c) out += "  " + pad(cells[l][c], widths[c], true);
    out += "\n";
  }
  out += "  each cell: mean ± sd over the n seeds that finished (per-run values: results.csv)\n";
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
