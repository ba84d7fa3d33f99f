// The report of one training run directory (docs/training.md): its config, training curves
// from train_log.jsonl, the final evaluation, the metric summary beside reference runs, the
// routing heatmaps and load of the final evaluation trace, and router saturation over
// training. A run still in progress (no eval.json yet) is reported from its last evaluation.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "reports/html.h"
#include "reports/knockout_figures.h"
#include "reports/metric_table.h"
#include "reports/report_kinds.h"
#include "reports/routing_figures.h"
#include "reports/run_curves.h"
#include "reports/saturation.h"
#include "runs/run_reader.h"

namespace fs = std::filesystem;

namespace moetb::reports {
namespace {

std::string text_of(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  return j.is_null() ? "" : j.dump();
}

std::string config_content(const fs::path& dir, const nlohmann::json& run, const nlohmann::json& final_eval) {
  const nlohmann::json& cfg = run.contains("config") ? run["config"] : nlohmann::json::object();
  Table facts;
  facts.id = "run-facts";
  facts.header = {"property", "value"};
  auto fact = [&](const std::string& k, const std::string& v) {
    if (!v.empty()) facts.rows.push_back({"<th scope=\"row\">" + esc(k) + "</th>", esc(v)});
  };
  fact("router", text_of(at_path(cfg, "router.name")).empty() ? text_of(final_eval.value("router", nlohmann::json()))
                                                              : text_of(at_path(cfg, "router.name")));
  if (at_path(cfg, "moe.n_experts").is_number())
    fact("experts E / top-k", text_of(at_path(cfg, "moe.n_experts")) + " / " + text_of(at_path(cfg, "moe.top_k")));
  if (at_path(cfg, "model.n_layers").is_number())
    fact("model", text_of(at_path(cfg, "model.n_layers")) + " layers (first " + text_of(at_path(cfg, "model.first_k_dense")) +
                      " dense), d_model " + text_of(at_path(cfg, "model.d_model")) + ", " +
                      text_of(at_path(cfg, "model.n_heads")) + " heads");
  fact("training steps", text_of(at_path(cfg, "train.steps")));
  fact("final evaluation at step", text_of(final_eval.value("step", nlohmann::json())));
  fact("seed", text_of(run.value("seed", nlohmann::json())));
  fact("dataset", text_of(run.value("dataset", nlohmann::json())));
  fact("device / threads", run.contains("device") ? text_of(run["device"]) + " / " + text_of(run.value("threads", nlohmann::json())) : "");
  fact("git revision", text_of(run.value("git_revision", final_eval.value("git_revision", nlohmann::json()))));
  std::string out = facts.rows.empty() ? note("run.json is missing, so the run's settings are unknown.") : table(facts);
  std::error_code ec;
  if (fs::exists(dir / runs::kConfigFile, ec))
    out += "<details><summary>The effective config (config.toml, reusable with <code>moetb train --config</code>)</summary><pre>" +
           esc(read_text((dir / runs::kConfigFile).string())) + "</pre></details>\n";
  return out;
}

// The final routing trace of a run directory: the one eval.json names, else the last in traces/; "" if none.
std::string final_trace_of(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / "eval.json", ec)) {
    const nlohmann::json ev = read_json((dir / "eval.json").string());
    if (ev.is_object() && ev.value("trace", nlohmann::json()).is_string() && fs::exists(dir / ev["trace"].get<std::string>(), ec))
      return (dir / ev["trace"].get<std::string>()).string();
  }
  const auto traces = run_traces(dir.string());
  return traces.empty() ? "" : traces.back().second;
}

}  // namespace

std::string render_run(const std::string& path, const ReportOptions& options) {
  const fs::path dir(path);
  std::error_code ec;
  // Everything through the run-directory reader (runs/): run.json, the log, eval.json.
  std::vector<std::string> notes;
  const std::optional<runs::RunInfo> info = runs::read_run_info(dir, &notes);
  const nlohmann::json run = info ? info->to_json() : nlohmann::json::object();
  const TrainLog log = read_train_log((dir / runs::kLogFile).string());
  // The final evaluation: eval.json, else the last evaluation line of the log.
  const std::optional<runs::FinalEval> final_record = runs::read_final_eval(dir);
  nlohmann::json final_eval = final_record ? final_record->to_json() : nlohmann::json();
  const bool finished = final_eval.is_object();
  if (!finished && !log.evals.empty()) final_eval = log.evals.back();
  if (!final_eval.is_object()) final_eval = nlohmann::json::object();
  const std::vector<Reference> refs = load_references(options.references, path);
  const auto traces = run_traces(path);
  // The final trace: the one eval.json names, else the last in traces/.
  std::string final_trace;
  if (final_eval.contains("trace") && final_eval["trace"].is_string() && fs::exists(dir / final_eval["trace"].get<std::string>(), ec))
    final_trace = (dir / final_eval["trace"].get<std::string>()).string();
  else if (!traces.empty())
    final_trace = traces.back().second;

  std::string body = intro_section(options);
  std::string config = config_content(dir, run, final_eval);
  for (const auto& n : notes) config = note(n) + config;
  if (log.torn_tail) config += note("The last line of train_log.jsonl is cut short (the run was stopped while writing it); it is left out.");
  body += section("config", "Configuration", "", config);

  std::string curves = log.step_lines == 0 && log.evals.empty() ? note("train_log.jsonl is missing or empty: no curves.") : curve_figures(log);
  if (final_eval.contains("eval") && final_eval["eval"].is_object()) curves += eval_table(final_eval["eval"]);
  body += section("curves", "Training curves",
                  "Loss in bits per token against training step, the auxiliary losses, load balance and the routing "
                  "metrics at each evaluation, from <code>train_log.jsonl</code>.",
                  curves);
  const std::string self_name = options.name.empty() ? "this run" : options.name;
  if (!refs.empty()) {
    std::vector<std::pair<std::string, TrainLog>> logs = {{self_name, log}};
    for (const auto& r : refs)
      if (!r.dir.empty()) logs.emplace_back(r.name, read_train_log((fs::path(r.dir) / "train_log.jsonl").string()));
    if (const std::string overlays = overlay_figures(logs); !overlays.empty())
      body += section("overlays", "Beside the other runs", "This run's curves and those of the runs beside it, on shared axes.", overlays);
  }

  std::string metrics;
  const nlohmann::json summary = final_eval.value("metrics_summary", nlohmann::json());
  std::optional<TraceMetrics> measured;
  if (!final_trace.empty()) measured = measure_trace(final_trace);
  nlohmann::json full = final_eval.value("metrics", nlohmann::json());
  if (!full.is_object() && measured) full = metrics_to_json(*measured);
  if (summary.is_null() && !full.is_object()) {
    metrics = note("No evaluation has finished yet: no metric summary.");
  } else {
    std::string refs_text;
    for (std::size_t i = 0; i < refs.size(); ++i) refs_text += (i ? ", " : "") + esc(refs[i].name);
    metrics += "<p>Routing metrics of the final evaluation trace, each the mean over MoE layers" +
               (refs.empty() ? std::string(".") : ", beside the reference run" + std::string(refs.size() > 1 ? "s " : " ") + refs_text +
                                                       " (the oracle bounds specialization from above, random from below).") +
               "</p>\n";
    metrics += metric_table(summary.is_null() ? full["summary"] : summary, refs, self_name);
    if (full.is_object()) metrics += domain_table(full) + layer_table(full["layers"]);
  }
  body += section("metrics", "Metrics", "", metrics);

  const std::string trace_note = measured ? "From the final evaluation trace <code>" + esc(fs::path(final_trace).filename().string()) +
                                                "</code> (" + std::to_string(measured->tokens) + " validation tokens)."
                                          : "";
  // One colour scale for this run and the runs beside it, so their heatmaps compare by colour.
  double shared_top = measured ? routing_scale_top(*measured) : NAN;
  std::string shared_with;
  for (const auto& r : refs) {
    const std::string t = r.dir.empty() || !measured ? "" : final_trace_of(r.dir);
    if (t.empty()) continue;
    const TraceMetrics rm = measure_trace(t);
    if (rm.num_experts != measured->num_experts) continue;
    shared_top = std::max(shared_top, routing_scale_top(rm));
    shared_with += (shared_with.empty() ? "" : ", ") + r.name;
  }
  if (!shared_with.empty()) shared_with = "the reports of the runs compared (" + self_name + ", " + shared_with + ")";
  body += section("routing", "Routing per layer", trace_note,
                  measured ? routing_heatmaps(*measured, shared_top, shared_with) : note("No evaluation trace in traces/: no routing heatmaps."));
  body += section("load", "Expert load", trace_note,
                  measured ? load_heatmap(*measured) + (full.is_object() ? load_table(full["layers"]) : "")
                           : note("No evaluation trace in traces/: no load figure."));
  body += section("saturation", "Router saturation over training",
                  "How early the router settles: each evaluation's routing compared with the final one.",
                  saturation_content(traces));

  std::vector<std::pair<std::string, std::string>> toc = {{"config", "Config"}, {"curves", "Curves"}, {"metrics", "Metrics"},
                                                         {"routing", "Routing"}, {"load", "Load"}, {"saturation", "Saturation"}};
  if (fs::exists(dir / "knockout.json", ec)) {  // moetb knockout RUN -o RUN/knockout.json
    body += section("knockout", "Expert knockout", "", knockout_figures(read_json((dir / "knockout.json").string())));
    toc.emplace_back("knockout", "Knockout");
  }
  const std::string router = at_path(run, "config.router.name").is_string() ? at_path(run, "config.router.name").get<std::string>()
                                                                            : final_eval.value("router", std::string());
  const std::string title = options.title.empty() ? "Run report: " + base_name(path) : options.title;
  std::string subtitle = "Training run \xC2\xB7 <code>" + esc(path) + "</code>";
  if (!router.empty()) subtitle += " \xC2\xB7 router <b>" + esc(router) + "</b>";
  if (final_eval.contains("step")) subtitle += " \xC2\xB7 step " + esc(text_of(final_eval["step"]));
  if (!finished)
    subtitle += std::string(" \xC2\xB7 <b>not finished</b> (no eval.json yet; ") +
                (log.evals.empty() ? "no evaluation either)" : "showing the last evaluation)");
  if (body.find("<section id=\"overlays\"") != std::string::npos)
    toc.insert(toc.begin() + 2, {"overlays", "Overlays"});
  return page(title, "run", subtitle, toc, body);
}

}  // namespace moetb::reports
