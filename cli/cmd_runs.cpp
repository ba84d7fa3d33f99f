// `moetb runs RUN...`: the side-by-side table of finished training runs (their eval.json):
// validation loss against the entropy-rate floor, the share of the unigram-to-floor gap
// closed, and the metric summary (RS, NER, DI, RSS, purity, load), read through runs/.
// A domain or run without evaluation tokens shows "-", never 0. Torch-free.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
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

// Each run's config (run.json "config", flattened to dotted keys; empty when there is none).
std::map<std::string, std::string> run_config(const std::string& run) {
  std::map<std::string, std::string> out;
  std::ifstream in(std::filesystem::path(run) / "run.json");
  if (!in) return out;
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("config")) return out;
  std::function<void(const nlohmann::json&, const std::string&)> walk = [&](const nlohmann::json& v, const std::string& key) {
    if (v.is_object()) {
      for (auto it = v.begin(); it != v.end(); ++it) walk(it.value(), key.empty() ? it.key() : key + "." + it.key());
    } else {
      out[key] = v.is_string() ? v.get<std::string>() : v.dump();
    }
  };
  walk(j["config"], "");
  return out;
}

// A label per run: the config keys whose values differ between the runs ("balance_coef=0.01
// seed=2"), else the folder name (a sweep's runs/ID/train by its ID); repeated labels get the path.
std::vector<std::string> run_labels(const std::vector<std::string>& runs) {
  std::vector<std::map<std::string, std::string>> configs;
  for (const auto& r : runs) configs.push_back(run_config(r));
  std::set<std::string> keys;
  for (const auto& c : configs)
    for (const auto& [k, v] : c) keys.insert(k);
  std::vector<std::string> differ;
  for (const auto& k : keys) {
    if (k == "data.dir" || k.rfind("debug.", 0) == 0 || k.rfind("log.", 0) == 0) continue;  // not what the runs compare
    std::set<std::string> values;
    for (const auto& c : configs) values.insert(c.count(k) ? c.at(k) : "-");
    if (values.size() > 1) differ.push_back(k);
  }
  std::vector<std::string> labels;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    std::string label;
    for (const auto& k : differ)
      label += (label.empty() ? "" : " ") + (k == "router.name" ? std::string("router") : k.substr(k.rfind('.') + 1)) + "=" +
               (configs[i].count(k) ? configs[i].at(k) : "-");
    if (label.empty() || runs.size() == 1) {
      const std::filesystem::path p = std::filesystem::path(runs[i]).lexically_normal();
      const std::string name = p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
      label = name == "train" ? p.parent_path().filename().string() : name;
    }
    labels.push_back(label);
  }
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (std::count(labels.begin(), labels.end(), labels[i]) > 1) labels[i] += " (" + runs[i] + ")";
  return labels;
}

std::string runs_table(const std::vector<std::string>& runs, const std::vector<nlohmann::json>& evals) {
  const std::vector<std::string> labels = run_labels(runs);
  int label_w = 3, router_w = 6;  // whole labels and router names, never cut
  for (std::size_t i = 0; i < runs.size(); ++i) {
    label_w = std::max(label_w, static_cast<int>(labels[i].size()));
    router_w = std::max(router_w, static_cast<int>(evals[i].value("router", std::string("?")).size()));
  }
  std::string out;
  char line[1024];
  std::snprintf(line, sizeof line, "%-*s %-*s %6s %9s %8s %7s %6s %6s %6s %6s %7s %7s\n", label_w, "run", router_w, "router", "step",
                "val_bits", "floor", "closed", "RS", "NER", "DI", "RSS", "purity", "maxvio");
  out += line;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto& e = evals[i];
    const auto& ev = e["eval"];
    const auto& m = e["metrics_summary"];
    std::snprintf(line, sizeof line, "%-*s %-*s %6lld %9s %8s %7s %6s %6s %6s %6s %7s %7s\n", label_w, labels[i].c_str(), router_w,
                  e.value("router", std::string("?")).c_str(), static_cast<long long>(e.value("step", int64_t{0})),
                  num(ev["loss_bits"], "%.3f").c_str(), num(ev["floor_bits"], "%.3f").c_str(),
                  num(ev["gap_closed"], "%.3f").c_str(), num(m["rs"], "%.3f").c_str(), num(m["ner"], "%.3f").c_str(),
                  num(m["di"], "%.3f").c_str(), num(m["rss"], "%.3f").c_str(), num(m["purity"], "%.3f").c_str(),
                  num(m["load"]["max_vio"], "%.3f").c_str());
    out += line;
  }
  out += "run: the config keys that differ between the runs (else the folder); val_bits: validation cross-entropy\n"
         "(bits/token); floor: entropy rate of the data; closed: share of the unigram-to-floor gap closed; RS..purity:\n"
         "routing metrics averaged over MoE layers (docs/metrics.md)\n";
  return out;
}

}  // namespace

void add_runs(CLI::App& app) {
  auto* cmd = app.add_subcommand("runs", "Side-by-side table of finished training runs (their eval.json)");
  auto runs = std::make_shared<std::vector<std::string>>();
  auto json = std::make_shared<bool>(false);
  auto out = std::make_shared<std::string>("-");
  auto force = std::make_shared<bool>(false);
  cmd->add_option("runs", *runs, "Run directories")->required();
  cmd->add_flag("--json", *json, "JSON: one object per run (eval and metric summary)");
  cmd->add_option("--out,-o", *out, "Write to a file instead of stdout");
  cmd->add_flag("--force", *force, "Replace an existing --out file");
  cmd->callback([runs, json, out, force] {
    const OutputOptions out_opt = output_options(*force, *runs);
    if (*out != "-") check_output(*out, OutputKind::file, out_opt);
    std::vector<nlohmann::json> evals;
    for (const auto& r : *runs) evals.push_back(read_eval(r));
    if (*json) {
      nlohmann::json arr = nlohmann::json::array();
      for (std::size_t i = 0; i < runs->size(); ++i)
        arr.push_back({{"run", (*runs)[i]}, {"router", evals[i].value("router", "")}, {"eval", evals[i]["eval"]},
                       {"metrics_summary", evals[i]["metrics_summary"]}});
      write_output(*out, arr.dump(2) + "\n", out_opt);
    } else {
      write_output(*out, runs_table(*runs, evals), out_opt);
    }
  });
}

}  // namespace moetb::cli
