// `moetb sweep plan|run|run-one|slurm|collect`: router design sweeps (sweeps/, torch-free;
// runs are `moetb train` child processes). plan expands a TOML spec into runs with stable
// ids; run works through them in parallel and resumes after any interruption; slurm
// writes (and submits) a job array; collect writes the tables and plots. docs/sweeps.md.
#include <iostream>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/config_binder.h"
#include "datagen/config.h"
#include "sweeps/collect.h"
#include "sweeps/process.h"
#include "sweeps/runner.h"
#include "sweeps/slurm.h"
#include "sweeps/sweep_spec.h"

namespace moetb::cli {
namespace {

using namespace moetb::sweeps;

struct SweepArgs {
  std::string spec, dir, moetb, metrics, out;
  int jobs = 1, threads = 0, cpus_per_task = 1, max_parallel = 0;
  int64_t index = -1;
  bool retry_failed = false, quiet = false, submit = false, wait = false;
  SlurmOptions slurm;
};

// The spec's [datagen] table is checked as `moetb datagen` would check it, before anything
// is planned: an unknown key or a wrong type fails here, not in the first run.
void check_datagen_table(const std::string& spec_path) {
  const SweepSpec spec = load_spec(spec_path);
  if (!spec.has_datagen) return;
  DatagenConfig cfg;
  ConfigBinder binder;
  bind_datagen_config(binder, cfg);
  const std::string label = spec_path + " [datagen]";
  try {
    binder.load_toml(to_toml(spec.datagen), label);
    validate_datagen_config(cfg);
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    throw std::invalid_argument(what.rfind(label, 0) == 0 ? what : label + ": " + what);
  }
}

void do_plan(const SweepArgs& a) {
  check_datagen_table(a.spec);
  const PlanReport r = SweepDir(a.dir).plan(a.spec);
  std::cout << "planned " << r.total << " runs in " << a.dir << ": " << r.added << " new, " << r.kept << " already planned";
  if (r.inactive > 0) std::cout << ", " << r.inactive << " from an earlier spec kept but no longer run";
  std::cout << "\nnext: moetb sweep run " << a.dir << " --jobs N   (or: moetb sweep slurm " << a.dir << " --submit)\n";
}

void do_run(const SweepArgs& a) {
  RunOptions o;
  o.jobs = a.jobs;
  o.threads_per_run = a.threads;
  o.retry_failed = a.retry_failed;
  o.progress = !a.quiet;
  o.moetb = a.moetb;
  const RunSummary s = run_sweep(SweepDir(a.dir), o);
  std::cout << "sweep " << a.dir << ": " << s.ok << " ok, " << s.failed << " failed in this call; " << s.already_complete
            << " were complete";
  if (s.skipped_failed) std::cout << ", " << s.skipped_failed << " failed earlier (rerun with --retry-failed)";
  if (s.busy) std::cout << ", " << s.busy << " running elsewhere";
  std::cout << "\nnext: moetb sweep collect " << a.dir << "\n";
  exit_code() = s.exit_code();
}

void do_run_one(const SweepArgs& a) {
  RunOptions o;
  o.threads_per_run = a.threads;
  o.retry_failed = a.retry_failed;
  o.moetb = a.moetb;
  exit_code() = run_one(SweepDir(a.dir), a.index, o);
}

void do_slurm(SweepArgs a) {
  const SweepDir dir(a.dir);
  const SweepPlan plan = dir.load();
  a.slurm.retry_failed = a.retry_failed;
  a.slurm.cpus_per_task = a.cpus_per_task;
  a.slurm.max_parallel = a.max_parallel;
  a.slurm.moetb = a.moetb;
  const std::vector<int64_t> indices = runs_to_submit(dir, plan, a.retry_failed);
  if (indices.empty()) {
    std::cout << "nothing to submit: every run of " << a.dir << " is complete"
              << (a.retry_failed ? "" : " or failed (add --retry-failed to rerun failures)") << "\n";
    return;
  }
  std::filesystem::create_directories(dir.root() / "slurm" / "logs");
  const std::filesystem::path script = dir.root() / "slurm" / "sweep.sbatch";
  write_file_atomic(script, sbatch_script(dir, plan, indices, a.slurm));
  std::cout << "wrote " << script.string() << " (" << indices.size() << " array tasks: " << index_ranges(indices) << ")\n";
  if (!a.submit) {
    std::cout << "submit with: sbatch " << script.string() << "\n";
    return;
  }
  ensure_dataset(dir, plan, a.moetb);  // once, here, rather than in the first tasks
  std::vector<std::string> cmd = {"sbatch", "--parsable"};
  if (a.wait) cmd.push_back("--wait");
  cmd.push_back(script.string());
  const auto [code, out] = run_capture(cmd);
  const std::string job = out.substr(0, out.find_first_of(";\n"));
  if (code == 127) throw std::runtime_error("cannot run sbatch (is Slurm installed and on PATH?)");
  if (job.empty()) throw std::runtime_error("sbatch failed with exit code " + std::to_string(code));
  std::cout << "submitted job array " << job << "; follow with: squeue -j " << job << "; then: moetb sweep collect " << a.dir << "\n";
  if (a.wait) {
    std::cout << "job " << job << " finished: " << (code == 0 ? "every task succeeded" : "some tasks failed (exit " + std::to_string(code) + ")") << "\n";
    exit_code() = code == 0 ? 0 : 1;
  }
}

void do_collect(const SweepArgs& a) {
  CollectOptions o;
  o.out = a.out;
  for (std::size_t p = 0; !a.metrics.empty() && p <= a.metrics.size();) {
    const std::size_t q = std::min(a.metrics.find(',', p), a.metrics.size());
    if (q > p) o.metrics.push_back(a.metrics.substr(p, q - p));
    p = q + 1;
  }
  const CollectReport r = collect(SweepDir(a.dir), o);
  const std::string where = a.out.empty() ? a.dir : a.out;
  std::cout << "collected " << r.ok << " complete runs (" << r.failed << " failed, " << r.pending << " pending) into " << where << ":";
  for (const auto& f : r.files) std::cout << " " << f;
  std::cout << "\n";
}

}  // namespace

void add_sweep(CLI::App& app) {
  auto a = std::make_shared<SweepArgs>();
  CLI::App* sweep = app.add_subcommand("sweep", "Router design sweeps: plan, run (local or Slurm), collect");
  sweep->require_subcommand(1);

  CLI::App* plan = sweep->add_subcommand("plan", "Expand a sweep spec (TOML) into runs with stable ids");
  plan->add_option("spec", a->spec, "Sweep spec (docs/sweeps.md)")->required();
  plan->add_option("--out,-o", a->dir, "Sweep directory (created; re-planning adds only new runs)")->required();
  plan->callback([a] { do_plan(*a); });

  CLI::App* run = sweep->add_subcommand("run", "Run the pending runs, several at a time; resumes after interruption");
  run->add_option("dir", a->dir, "Sweep directory")->required();
  run->add_option("--jobs,-j", a->jobs, "Runs at a time (the cores are divided between them)")->check(CLI::Range(1, 1024));
  run->add_option("--threads", a->threads, "Threads per run (default: 1; run more at a time with --jobs)")->check(CLI::Range(0, 1024));
  run->add_flag("--retry-failed", a->retry_failed, "Rerun runs that failed earlier");
  run->add_flag("--quiet,-q", a->quiet, "No progress bar");
  run->add_option("--moetb", a->moetb, "The moetb executable to run (default: this one)");
  run->callback([a] { do_run(*a); });

  CLI::App* one = sweep->add_subcommand("run-one", "Run one planned run by index (what each Slurm array task does)");
  one->add_option("dir", a->dir, "Sweep directory")->required();
  one->add_option("--index", a->index, "Plan index (0-based)")->required();
  one->add_option("--threads", a->threads, "Threads (default: SLURM_CPUS_PER_TASK, else all cores)")->check(CLI::Range(0, 1024));
  one->add_flag("--retry-failed", a->retry_failed, "Rerun the run if it failed earlier");
  one->add_option("--moetb", a->moetb, "The moetb executable to run (default: this one)");
  one->callback([a] { do_run_one(*a); });

  CLI::App* slurm = sweep->add_subcommand("slurm", "Write an sbatch job-array script for the pending runs (--submit: submit it)");
  slurm->add_option("dir", a->dir, "Sweep directory")->required();
  slurm->add_option("--partition,-p", a->slurm.partition, "Slurm partition");
  slurm->add_option("--time,-t", a->slurm.time, "Time limit per run, e.g. 00:30:00");
  slurm->add_option("--cpus-per-task,-c", a->cpus_per_task, "Cores per run (its threads)")->check(CLI::Range(1, 1024));
  slurm->add_option("--mem", a->slurm.mem, "Memory per run, e.g. 4G");
  slurm->add_option("--max-parallel", a->max_parallel, "At most this many runs at once (the array's %N)")->check(CLI::Range(0, 100000));
  slurm->add_option("--account,-A", a->slurm.account, "Slurm account");
  slurm->add_option("--qos", a->slurm.qos, "Slurm QOS");
  slurm->add_option("--job-name", a->slurm.job_name, "Job name (default moetb-<sweep name>)");
  slurm->add_option("--sbatch", a->slurm.extra, "Another sbatch option for the script, e.g. --sbatch=--gres=gpu:1 (repeatable)");
  slurm->add_flag("--retry-failed", a->retry_failed, "Include runs that failed earlier");
  slurm->add_flag("--submit", a->submit, "Submit the script with sbatch");
  slurm->add_flag("--wait", a->wait, "With --submit: wait for the array to finish (sbatch --wait)");
  slurm->add_option("--moetb", a->moetb, "The moetb executable the tasks run (default: this one)");
  slurm->callback([a] { do_slurm(*a); });

  CLI::App* coll = sweep->add_subcommand("collect", "results.csv, summary.csv, summary.md and SVG plots");
  coll->add_option("dir", a->dir, "Sweep directory")->required();
  coll->add_option("--metrics", a->metrics, "Columns to summarise and plot, comma-separated (default: the spec's)");
  coll->add_option("--out,-o", a->out, "Output folder (default: the sweep directory)");
  coll->callback([a] { do_collect(*a); });
}

}  // namespace moetb::cli
