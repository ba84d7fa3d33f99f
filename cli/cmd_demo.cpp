// `moetb demo [NAME] [--out DIR] [--jobs N] [--force]`: the guided demos (sweeps/demos.h).
// A demo plans its embedded sweep spec into DIR (default out/demos/NAME), runs it (a rerun
// resumes), collects it, prints the comparison table and what to look for with the measured
// numbers, and writes DIR/report.html with those findings as the intro. With no name it
// lists the demos. docs/tutorial.md walks through them in order.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "cli/output.h"
#include "metrics/trace.h"
#include "reports/report.h"
#include "sweeps/collect.h"
#include "sweeps/demos.h"
#include "sweeps/runner.h"

namespace moetb::cli {
namespace {

namespace fs = std::filesystem;
using namespace moetb::sweeps;

struct DemoArgs {
  std::string name, out, moetb;
  int jobs = 0;
  bool force = false;
};

void list_demos() {
  std::cout << "moetb demo NAME [--out DIR] [--jobs N] [--force]: small sweeps that each show one effect of routing\n"
               "(2-3 short training runs, a minute or two on two cores; docs/tutorial.md walks through them in order)\n\n";
  for (const auto& d : demo_catalogue()) {
    char line[256];
    std::snprintf(line, sizeof line, "  %-14s %s\n", d.name.c_str(), d.summary.c_str());
    std::cout << line;
  }
  std::cout << "\nstart with: moetb demo " << demo_catalogue().front().name << "\n";
}

// How many experts each held-out token got, from the run's final routing trace: the mean
// and the most per token and layer, the share of tokens with none, and (token choice) the
// share of the k slots left empty by capacity.
void add_trace_extras(const fs::path& train_dir, ResultRow& row) {
  const auto eval = sweeps::read_text_file(train_dir / "eval.json");
  const nlohmann::json j = nlohmann::json::parse(eval, nullptr, false);
  if (j.is_discarded() || !j.value("trace", nlohmann::json()).is_string()) return;
  const Trace trace({(train_dir / j["trace"].get<std::string>()).string()});
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

void add_extras(const SweepDir& dir, ResultsTable& table) {
  for (ResultRow& row : table.rows) {
    if (row.status != "ok") continue;
    const fs::path train = dir.train_dir(row.entry.id);
    for (const auto& [k, v] : train_log_extras(train / "train_log.jsonl")) row.values[k] = v;
    try {
      add_trace_extras(train, row);
    } catch (const std::exception& e) {
      std::cerr << "moetb demo: warning: cannot read the routing trace of " << train.string() << ": " << e.what() << "\n";
    }
  }
}

// One report per finished run (DIR/run-SLUG.html), the demo's other runs beside it in the
// metric table. Returns (label, file name) of each report written.
std::vector<std::pair<std::string, std::string>> write_run_reports(const Demo& demo, const SweepDir& dir, const ResultsTable& table) {
  const std::vector<std::string> labels = row_labels(demo, table);
  std::vector<std::pair<std::string, std::string>> written;
  for (std::size_t i = 0; i < table.rows.size(); ++i) {
    const ResultRow& row = table.rows[i];
    if (row.status != "ok" || !fs::exists(dir.train_dir(row.entry.id) / "train_log.jsonl")) continue;  // e.g. a stand-in trainer
    reports::ReportOptions ro;
    ro.title = "moetb demo " + demo.name + ": " + labels[i];
    std::string beside;
    for (std::size_t j = 0; j < table.rows.size(); ++j) {
      if (j == i || table.rows[j].status != "ok") continue;
      ro.references.push_back(dir.train_dir(table.rows[j].entry.id).string());
      beside += (beside.empty() ? "" : ", ") + table.rows[j].entry.id + " = " + labels[j];
    }
    ro.intro_html = "<p>One run of <a href=\"report.html\">moetb demo " + demo.name + "</a>: <strong>" + labels[i] + "</strong> (run " +
                    row.entry.id + ")." + (beside.empty() ? "" : " Beside it in the metric table: " + beside + ".") + "</p>";
    const std::string file = "run-" + demo_slug(labels[i]) + ".html";
    write_output((dir.root() / file).string(), reports::render_report(dir.train_dir(row.entry.id).string(), ro));
    written.emplace_back(labels[i], file);
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

void run_demo(const DemoArgs& a) {
  const Demo& demo = find_demo(a.name);
  const fs::path out = a.out.empty() ? fs::path("out") / "demos" / demo.name : fs::path(a.out);
  if (fs::exists(out) && !fs::is_directory(out)) throw std::invalid_argument(out.string() + " exists and is not a folder");
  const bool ours = fs::exists(out / "sweep.json") || fs::exists(out / "demo.toml");
  if (fs::exists(out) && !ours && !fs::is_empty(out))
    throw std::invalid_argument(out.string() + " exists and is not a demo folder; choose another --out");
  if (a.force && fs::exists(out)) remove_output(out, OutputKind::sweep);  // only a sweep (or empty) folder
  const auto t0 = std::chrono::steady_clock::now();

  std::cout << "moetb demo " << demo.name << ": " << demo.summary << "\n";
  std::cout << "runs:";
  for (std::size_t i = 0; i < demo.run_labels.size(); ++i) std::cout << (i ? ", " : " ") << demo.run_labels[i];
  std::cout << "\nfolder: " << out.string() << (ours && !a.force ? " (resuming: finished runs are kept)" : "") << "\n"
            << std::flush;

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
  exit_code() = s.exit_code();

  CollectOptions co;
  collect(dir, co);
  ResultsTable table = load_results(dir, plan);
  add_extras(dir, table);
  const DemoFindings findings = demo_findings(demo, table);

  std::cout << "\n" << demo_table(demo, table) << "\n" << demo_findings_text(findings) << "\n";
  const fs::path report = out / "report.html";
  try {
    const std::vector<std::pair<std::string, std::string>> runs = write_run_reports(demo, dir, table);
    reports::ReportOptions ro;
    ro.title = "moetb demo " + demo.name;
    ro.intro_html = demo_intro_html(demo, findings, runs);
    write_output(report.string(), reports::render_report(out.string(), ro));
    std::cout << "report: " << report.string() << " (open it in a browser)\n";
    if (!runs.empty()) {
      std::cout << "run reports (curves, routing heatmaps):";
      for (const auto& [label, file] : runs) std::cout << " " << (out / file).string();
      std::cout << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "moetb demo: warning: the report was not written: " << e.what() << "\n";
    std::cout << "report: not written (see the warning); the tables are in " << (out / "summary.md").string() << "\n";
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "summary: " << (out / "summary.md").string() << "; plots: " << (out / "plots").string() << "/\n";
  std::cout << "done in " << duration(wall) << " (" << s.ok << " runs trained now, " << s.already_complete << " already complete"
            << (s.failed + s.skipped_failed ? ", " + std::to_string(s.failed + s.skipped_failed) + " failed" : "") << ")\n";
}

}  // namespace

void add_demo(CLI::App& app) {
  auto a = std::make_shared<DemoArgs>();
  CLI::App* demo = app.add_subcommand("demo", "Guided demos: small sweeps that each show one effect (no NAME: list them)");
  demo->add_option("name", a->name, "Demo to run (moetb demo lists them)");
  demo->add_option("--out,-o", a->out, "Folder (default out/demos/NAME; a rerun resumes)");
  demo->add_option("--jobs,-j", a->jobs, "Runs at a time (default: the runs, at most the cores)")->check(CLI::Range(1, 1024));
  demo->add_flag("--force", a->force, "Delete the folder first and start over");
  demo->add_option("--moetb", a->moetb, "The moetb executable that trains the runs (tests)")->group("");
  demo->callback([a] { a->name.empty() ? list_demos() : run_demo(*a); });
}

}  // namespace moetb::cli
