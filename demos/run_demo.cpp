// One demo end to end (see run_demo.h): plan, dataset, runs, collect, extras, table, findings,
// reports. The figures beyond result.json come from the run's own files: the training log's
// last steps, how many experts each held-out token got in the final routing trace, and the
// dropless columns of runs whose training routing is already dropless (run.json's config).
#include "demos/run_demo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <ostream>
#include <thread>

#include "common/safe_output.h"
#include "metrics/trace.h"
#include "reports/report.h"
#include "runs/run_reader.h"
#include "sweeps/collect.h"
#include "sweeps/runner.h"

namespace moetb::demos {
namespace {

namespace fs = std::filesystem;
using namespace moetb::sweeps;

// How many experts each held-out token got, from the run's final routing trace: the mean
// and the most per token and layer, the share of tokens with none, and (token choice) the
// share of the k slots left empty by capacity.
void add_trace_extras(const fs::path& train_dir, ResultRow& row) {
  std::optional<runs::FinalEval> final_eval;
  try {
    final_eval = runs::read_final_eval(train_dir);
  } catch (const std::invalid_argument&) {
    return;  // not an eval.json: no figures
  }
  if (!final_eval || final_eval->record.trace.empty()) return;
  const Trace trace({(train_dir / final_eval->record.trace).string()});
  double slots = 0, none = 0, tokens = 0, most = 0, dropped = 0;
  for (std::size_t s = 0; s < trace.n_shards(); ++s) {
    const ShardView shard = trace.shard(s);
    for (const LayerView& layer : shard.layers) {
      for (int64_t t = 0; t < shard.n_tokens; ++t) {
        int64_t n = 0;
        for (int64_t k = 0; k < layer.k; ++k) n += layer.expert(t, k) >= 0 ? 1 : 0;
        slots += static_cast<double>(n);
        none += n == 0 ? 1.0 : 0.0;
        most = std::max(most, static_cast<double>(n));
        dropped += static_cast<double>(layer.k - n) / static_cast<double>(layer.k);
      }
      tokens += static_cast<double>(shard.n_tokens);
    }
    trace.release(s);
  }
  if (tokens <= 0) return;
  row.values["eval.experts_mean"] = slots / tokens;
  row.values["eval.experts_max"] = most;
  row.values["eval.no_expert"] = none / tokens;
  if (row.router != "expert_choice") row.values["eval.dropped"] = dropped / tokens;  // its K = E slots are not "k chosen"
}

// A run evaluated only as it trains whose training routing is already dropless and per token
// (no capacity limit, not expert choice; eval.routing "auto" records no second evaluation for it,
// and any other eval.routing evaluates it the same way):
// its dropless.* columns are its own numbers, so every run of a demo has them.
void add_dropless_extras(const fs::path& train_dir, ResultRow& row) {
  for (const auto& [k, v] : row.values)
    if (k.rfind("dropless.", 0) == 0) return;  // it has its own dropless evaluation
  const std::optional<runs::RunInfo> info = runs::read_run_info(train_dir);
  if (!info) return;
  const nlohmann::json router = info->config.value("router", nlohmann::json::object());
  const std::string name = router.is_object() ? router.value("name", std::string("topk")) : "topk";
  const double capacity = router.is_object() && router.value("capacity_factor", nlohmann::json(0.0)).is_number()
                              ? router["capacity_factor"].get<double>() : 0.0;
  if (name == "expert_choice" || capacity > 0.0) return;
  std::map<std::string, double> extra;
  for (const auto& [k, v] : row.values)
    if (k != "wall_s" && k != "floor_bits" && k != "unigram_bits" && k != "gap_closed") extra["dropless." + k] = v;
  row.values.insert(extra.begin(), extra.end());
}

// One report per finished run of the first seed (DIR/run-SLUG.html), the other settings of the
// same seed beside it in the metric table (a report per seed would repeat the same picture).
// Returns (label, file name) of each report written.
std::vector<std::pair<std::string, std::string>> write_run_reports(const Demo& demo, const SweepDir& dir, const ResultsTable& table,
                                                                   const DemoRunOptions& o) {
  const DemoRuns runs = demo_runs(demo, table);
  std::vector<std::pair<std::string, std::string>> written;
  if (runs.seeds.empty()) return written;
  const std::string seed_note = runs.seeds.size() > 1 ? ", seed " + std::to_string(runs.seeds.front()) : "";
  for (std::size_t i = 0; i < runs.labels.size(); ++i) {
    const ResultRow* row = runs.rows[i][0];
    if (row == nullptr || row->status != "ok" || !fs::exists(dir.train_dir(row->entry.id) / moetb::runs::kLogFile)) continue;  // e.g. a stand-in trainer
    reports::ReportOptions ro;
    ro.title = "moetb demo " + demo.name + ": " + runs.labels[i] + seed_note;
    ro.name = runs.labels[i];
    std::string beside;
    for (std::size_t j = 0; j < runs.labels.size(); ++j) {
      const ResultRow* other = runs.rows[j][0];
      if (j == i || other == nullptr || other->status != "ok") continue;
      ro.references.push_back(runs.labels[j] + "=" + dir.train_dir(other->entry.id).string());  // named by its label
      beside += (beside.empty() ? "" : ", ") + other->entry.id + " = " + runs.labels[j];
    }
    ro.intro_html = "<p>One run of <a href=\"report.html\">moetb demo " + demo.name + "</a>: <strong>" + runs.labels[i] + seed_note +
                    "</strong> (run " + row->entry.id + ")." + (beside.empty() ? "" : " Beside it in the metric table, the same seed: " + beside + ".") +
                    " The demo's report compares all seeds.</p>";
    const std::string file = "run-" + demo_slug(runs.labels[i]) + ".html";
    o.write((dir.root() / file).string(), reports::render_report(dir.train_dir(row->entry.id).string(), ro));
    written.emplace_back(runs.labels[i] + seed_note, file);
  }
  return written;
}

std::string duration(double seconds) {
  const long s = std::lround(seconds);
  char buf[32];
  if (s >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%lds", s);
  return buf;
}

}  // namespace

void add_extras(const SweepDir& dir, ResultsTable& table, std::ostream& err) {
  for (ResultRow& row : table.rows) {
    if (row.status != "ok") continue;
    const fs::path train = dir.train_dir(row.entry.id);
    try {
      add_dropless_extras(train, row);  // before the extras below: only result.json's columns
    } catch (const std::exception& e) {
      err << "moetb demo: warning: cannot read the run record of " << train.string() << ": " << e.what() << "\n";
    }
    for (const auto& [k, v] : train_log_extras(train / runs::kLogFile)) row.values[k] = v;
    try {
      add_trace_extras(train, row);
    } catch (const std::exception& e) {
      err << "moetb demo: warning: cannot read the routing trace of " << train.string() << ": " << e.what() << "\n";
    }
  }
}

int run_demo(const DemoRunOptions& a, std::ostream& cout, std::ostream& cerr) {
  const Demo& demo = find_demo(a.name);
  const fs::path out = a.out.empty() ? fs::path("out") / "demos" / demo.name : fs::path(a.out);
  if (fs::exists(out) && !fs::is_directory(out)) throw std::invalid_argument(out.string() + " exists and is not a folder");
  const bool ours = fs::exists(out / "sweep.json") || fs::exists(out / "demo.toml");
  if (fs::exists(out) && !ours && !fs::is_empty(out))
    throw std::invalid_argument(out.string() + " exists and is not a demo folder; choose another --out");
  if (a.force && fs::exists(out)) remove_output(out, OutputKind::sweep);  // only a sweep (or empty) folder
  const auto t0 = std::chrono::steady_clock::now();

  cout << "moetb demo " << demo.name << ": " << demo.summary << "\n";
  cout << "runs:";
  for (std::size_t i = 0; i < demo.run_labels.size(); ++i) cout << (i ? ", " : " ") << demo.run_labels[i];
  cout << "\nfolder: " << out.string() << (ours && !a.force ? " (resuming: finished runs are kept)" : "") << "\n" << std::flush;

  fs::create_directories(out);
  write_file_atomic(out / "demo.toml", demo.spec);
  const SweepDir dir(out);
  dir.plan((out / "demo.toml").string());
  const SweepPlan plan = dir.load();
  ensure_dataset(dir, plan, "");  // by this moetb (datagen is torch-free), whatever trains the runs

  RunOptions o;
  std::size_t active = 0;
  for (const auto& e : plan.runs) active += e.active ? 1 : 0;
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  o.jobs = a.jobs > 0 ? a.jobs : std::max(1, std::min(static_cast<int>(active), cores));
  o.moetb = a.moetb;
  o.progress = true;
  const RunSummary s = run_sweep(dir, o);

  CollectOptions co;
  collect(dir, co);
  ResultsTable table = load_results(dir, plan);
  add_extras(dir, table, cerr);
  const DemoFindings findings = demo_findings(demo, table);

  cout << "\n" << demo_table(demo, table) << "\n" << demo_findings_text(findings) << "\n";
  const fs::path report = out / "report.html";
  try {
    const std::vector<std::pair<std::string, std::string>> runs = write_run_reports(demo, dir, table, a);
    reports::ReportOptions ro;
    ro.title = "moetb demo " + demo.name;
    ro.intro_html = demo_intro_html(demo, findings, runs);
    a.write(report.string(), reports::render_report(out.string(), ro));
    cout << "report: " << report.string() << " (open it in a browser)\n";
    if (!runs.empty()) {
      cout << "run reports (curves, routing heatmaps):";
      for (const auto& [label, file] : runs) cout << " " << (out / file).string();
      cout << "\n";
    }
  } catch (const std::exception& e) {
    cerr << "moetb demo: warning: the report was not written: " << e.what() << "\n";
    cout << "report: not written (see the warning); the tables are in " << (out / "summary.md").string() << "\n";
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  cout << "summary: " << (out / "summary.md").string() << "; plots: " << (out / "plots").string() << "/\n";
  cout << "done in " << duration(wall) << " (" << s.ok << " runs trained now, " << s.already_complete << " already complete"
       << (s.failed + s.skipped_failed ? ", " + std::to_string(s.failed + s.skipped_failed) + " failed" : "") << ")\n";
  return s.exit_code();
}

}  // namespace moetb::demos
