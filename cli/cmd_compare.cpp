// `moetb compare A B`: two traces of the same tokens (checkpoints of one model, or two
// models on the same text; a run directory stands for its latest evaluation trace): router
// saturation per layer where layers and experts correspond, and for every summary metric A, B,
// the change and a verdict "differs"/"same" (|delta| above both --tol and 2 paired jackknife
// standard errors; metrics.md §9), which reflects token-sampling noise only, as the output says.
// `moetb compare --a RUN... --b RUN...`: groups of runs, paired by seed (cli/compare_runs.h):
// verdicts say whether a difference exceeds the variation between seeds.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/compare_runs.h"
#include "cli/output.h"
#include "cli/trace_input.h"
#include "metrics/metrics_table.h"
#include "metrics/trace_compare.h"

namespace moetb::cli {
namespace {

std::string compare_table(const nlohmann::json& j) {
  std::ostringstream text;
  char line[256];
  auto trace_line = [&](const char* name, const nlohmann::json& t) {
    text << name << ": " << t["tokens"] << " tokens, " << t["layers"] << " layers, " << t["num_experts"]
         << " experts, top-" << t["top_k"] << "\n";
  };
  trace_line("A", j["a"]);
  trace_line("B", j["b"]);
  for (const auto& n : j["notes"]) text << "note: " << n.get<std::string>() << "\n";
  if (!j["saturation"].empty()) {
    text << "\nrouter saturation |S_A ∩ S_B| / |S_B| per layer:\n";
    for (std::size_t l = 0; l < j["saturation"].size(); ++l)
      text << "  layer " << l << ": " << format_number(j["saturation"][l]) << "\n";
  }
  const bool verdicts = j.contains("criterion");
  // Differing metrics first, then the same, then what could not be compared; key order inside.
  std::vector<std::string> order;
  for (const char* group : {"differs", "same", ""})
    for (auto it = j["summary"].begin(); it != j["summary"].end(); ++it) {
      const auto& v = it.value();
      const std::string verdict = v.contains("verdict") && v["verdict"].is_string() ? v["verdict"].get<std::string>() : "";
      if (verdict == group) order.push_back(it.key());
    }
  text << "\n";
  std::snprintf(line, sizeof line, "%-24s %10s %10s %10s %10s  %s\n", "summary metric", "A", "B", "B - A",
                verdicts ? "threshold" : "", verdicts ? "verdict" : "");
  text << line;
  for (const auto& key : order) {
    const auto& v = j["summary"][key];
    std::string verdict;
    if (verdicts) verdict = v["verdict"].is_string() ? v["verdict"].get<std::string>() : "-";
    if (v.contains("note")) verdict += " (" + v["note"].get<std::string>() + ")";
    std::snprintf(line, sizeof line, "%-24s %10s %10s %10s %10s  %s\n", key.c_str(), format_number(v["a"], 4).c_str(),
                  format_number(v["b"], 4).c_str(), format_number(v["delta"], 4).c_str(),
                  verdicts ? format_number(v["threshold"], 4).c_str() : "", verdict.c_str());
    text << line;
  }
  if (verdicts) {
    const auto& c = j["criterion"];
    text << "\n" << j["differs"].size() << " metric(s) differ. Verdict: differs when |B - A| > threshold = max(tol "
         << c["tol"].get<double>() << ", " << c["z"].get<double>() << " x the paired standard error of B - A), the\n"
         << "error from a delete-one-block jackknife over " << c["blocks"] << " contiguous token blocks (token-id "
         << "groups for rss). See docs/metrics.md\n"
         << "These verdicts reflect only the token-sampling noise of one pair of traces: whether a difference exceeds the\n"
         << "variation between training seeds needs several seeds per side (moetb compare --a RUN... --b RUN...).\n";
  }
  return text.str();
}

}  // namespace

void add_compare(CLI::App& app) {
  auto* cmd = app.add_subcommand("compare", "Compare two traces or runs (saturation, metric changes, verdicts), or groups of runs over seeds");
  struct Args {
    std::string a, b, out = "-";
    std::vector<std::string> group_a, group_b;
    bool json = false, force = false;
    double tol = kCompareTol;
    int blocks = kCompareBlocks, threads = 0, groups = 8;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("A", a->a, "First trace (e.g. an early checkpoint, or model A): a file, a directory of shards, or a run directory");
  cmd->add_option("B", a->b, "Second trace of the same tokens (e.g. the final checkpoint, or model B), or a run directory");
  cmd->add_option("--a", a->group_a, "Group A: run directories (or traces), one per seed; paired by seed with --b")->expected(1, -1);
  cmd->add_option("--b", a->group_b, "Group B: run directories (or traces), one per seed")->expected(1, -1);
  cmd->add_flag("--json", a->json, "Print JSON (moetb-compare/1)");
  cmd->add_option("--out,-o", a->out, "Write to this file (atomically) instead of stdout");
  cmd->add_flag("--force", a->force, "Replace an existing --out file");
  cmd->add_option("--tol", a->tol, "Smallest absolute difference called 'differs'")->capture_default_str();
  cmd->add_option("--blocks", a->blocks, "Jackknife blocks for the standard errors (0 = verdicts on --tol alone)")
      ->capture_default_str();
  cmd->add_option("--groups", a->groups, "G for ne_group (E must be divisible by G)")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->callback([a] {
    if (!(a->tol >= 0) || !std::isfinite(a->tol)) throw std::invalid_argument("--tol must be a non-negative number");
    if (a->blocks < 0 || a->blocks == 1 || a->blocks > 1024)
      throw std::invalid_argument("--blocks must be 0 or lie in [2, 1024]");
    const bool groups = !a->group_a.empty() || !a->group_b.empty();
    if (groups && (!a->a.empty() || !a->b.empty()))
      throw std::invalid_argument("give either A B (two traces or runs) or --a RUN... --b RUN... (groups), not both");
    if (groups && (a->group_a.empty() || a->group_b.empty())) throw std::invalid_argument("--a and --b go together: give both groups");
    if (!groups && (a->a.empty() || a->b.empty())) throw std::invalid_argument("expected A and B (two traces or runs), or --a RUN... --b RUN...");
    std::vector<std::string> inputs = {a->a, a->b};
    inputs.insert(inputs.end(), a->group_a.begin(), a->group_a.end());
    inputs.insert(inputs.end(), a->group_b.begin(), a->group_b.end());
    const OutputOptions out_opt = output_options(a->force, inputs);
    if (a->out != "-") check_output(a->out, OutputKind::file, out_opt);  // before the work
    if (groups && (a->group_a.size() > 1 || a->group_b.size() > 1)) {
      std::vector<TraceInput> ga, gb;
      for (const auto& p : a->group_a) ga.push_back(resolve_trace_input(p));
      for (const auto& p : a->group_b) gb.push_back(resolve_trace_input(p));
      MetricsOptions mopt;
      mopt.threads = a->threads;
      mopt.ne_groups = a->groups;
      const nlohmann::json j = compare_runs_json(ga, gb, mopt);
      write_output(a->out, a->json ? j.dump(2) + "\n" : compare_runs_table(j), out_opt);
      return;
    }
    const std::string path_a = resolve_trace_input(groups ? a->group_a[0] : a->a).trace;
    const std::string path_b = resolve_trace_input(groups ? a->group_b[0] : a->b).trace;
    const Trace ta({path_a}), tb({path_b});
    const TokenCheck tokens = check_same_tokens(ta, tb);
    CompareOptions copt;
    copt.tol = a->tol;
    copt.verdicts = true;
    if (tokens.labelled_a != tokens.labelled_b)
      copt.notes.push_back(std::string(tokens.labelled_a ? "B" : "A") +
                           " labels no token with a domain: its domain metrics are null");
    std::vector<std::optional<double>> saturation;
    const std::string skip = saturation_skip_reason(ta, tb);
    if (skip.empty())
      saturation = router_saturation(ta, tb);
    else
      copt.notes.push_back(skip);
    MetricsOptions mopt;
    mopt.threads = a->threads;
    mopt.ne_groups = a->groups;
    mopt.jackknife_blocks = a->blocks;
    const TraceMetrics ma = compute_trace_metrics(ta, mopt);
    const TraceMetrics mb = compute_trace_metrics(tb, mopt);
    const nlohmann::json j = compare_json(ma, mb, saturation, copt);
    write_output(a->out, a->json ? j.dump(2) + "\n" : compare_table(j), out_opt);
  });
}

}  // namespace moetb::cli
