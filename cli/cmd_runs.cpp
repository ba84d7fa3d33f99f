// `moetb runs RUN...`: the side-by-side table of finished training runs (their eval.json):
// validation loss against the entropy-rate floor, the share of the unigram-to-floor gap
// closed, and the metric summary (RS, NER, DI, RSS, purity, load), read through runs/.
// A domain or run without evaluation tokens shows "-", never 0. Torch-free.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/output.h"
#include "runs/run_reader.h"
#include <nlohmann/json.hpp>

namespace moetb::cli {
namespace {

// eval.json through the run-directory reader (runs/); a run from before the format marker
// is read with a note on stderr.
nlohmann::json read_eval(const std::string& run) {
  std::vector<std::string> notes;
  runs::read_run_info(run, &notes);
  for (const auto& n : notes) std::cerr << "note: " << n << "\n";
  const auto final_eval = runs::read_final_eval(run);
  if (!final_eval)
    throw std::invalid_argument((std::filesystem::path(run) / runs::kEvalFile).string() + ": cannot read (is the run finished?)");
  return final_eval->to_json();
}

std::string num(const nlohmann::json& j, const char* fmt) {
  if (!j.is_number()) return "-";
  char buf[32];
  const double v = j.get<double>();
  std::snprintf(buf, sizeof buf, fmt, std::fabs(v) < 5e-5 ? 0.0 : v);  // no "-0.000"
  if (std::string(buf) == "-0.000") return "0.000";
  return buf;
}

std::string runs_table(const std::vector<std::string>& runs, const std::vector<nlohmann::json>& evals) {
  std::string out;
  char line[320];
  std::snprintf(line, sizeof line, "%-18s %-7s %6s %9s %8s %7s %6s %6s %6s %6s %7s %7s\n", "run", "router", "step", "val_bits",
                "floor", "closed", "RS", "NER", "DI", "RSS", "purity", "maxvio");
  out += line;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto& e = evals[i];
    const auto& ev = e["eval"];
    const auto& m = e["metrics_summary"];
    const std::string name = std::filesystem::path(runs[i]).lexically_normal().filename().string();
    std::snprintf(line, sizeof line, "%-18.18s %-7.7s %6lld %9s %8s %7s %6s %6s %6s %6s %7s %7s\n", name.c_str(),
                  e.value("router", std::string("?")).c_str(), static_cast<long long>(e.value("step", int64_t{0})),
                  num(ev["loss_bits"], "%.4f").c_str(), num(ev["floor_bits"], "%.4f").c_str(),
                  num(ev["gap_closed"], "%.3f").c_str(), num(m["rs"], "%.3f").c_str(), num(m["ner"], "%.3f").c_str(),
                  num(m["di"], "%.3f").c_str(), num(m["rss"], "%.3f").c_str(), num(m["purity"], "%.3f").c_str(),
                  num(m["load"]["max_vio"], "%.3f").c_str());
    out += line;
  }
  out += "val_bits: validation cross-entropy (bits/token); floor: entropy rate of the data; closed: share of the\n"
         "unigram-to-floor gap closed; RS..purity: routing metrics averaged over MoE layers (docs/metrics.md)\n";
  return out;
}

}  // namespace

void add_runs(CLI::App& app) {
  auto* cmd = app.add_subcommand("runs", "Side-by-side table of finished training runs (their eval.json)");
  auto runs = std::make_shared<std::vector<std::string>>();
  auto json = std::make_shared<bool>(false);
  auto out = std::make_shared<std::string>("-");
  cmd->add_option("runs", *runs, "Run directories")->required();
  cmd->add_flag("--json", *json, "JSON: one object per run (eval and metric summary)");
  cmd->add_option("--out,-o", *out, "Write to a file instead of stdout");
  cmd->callback([runs, json, out] {
    std::vector<nlohmann::json> evals;
    for (const auto& r : *runs) evals.push_back(read_eval(r));
    if (*json) {
      nlohmann::json arr = nlohmann::json::array();
      for (std::size_t i = 0; i < runs->size(); ++i)
        arr.push_back({{"run", (*runs)[i]}, {"router", evals[i].value("router", "")}, {"eval", evals[i]["eval"]},
                       {"metrics_summary", evals[i]["metrics_summary"]}});
      write_output(*out, arr.dump(2) + "\n");
    } else {
      write_output(*out, runs_table(*runs, evals));
    }
  });
}

}  // namespace moetb::cli
