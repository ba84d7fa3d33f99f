// The sweep runner: a pool of `moetb train` children (one log each), results committed
// atomically as result.json, per-run flock so two runners (a local one and Slurm tasks)
// never run the same run twice, and a progress bar over runs.
#include "sweeps/runner.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include "runs/run_reader.h"
#include "sweeps/process.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace moetb::sweeps {
namespace {

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string hostname() {
  char buf[256] = {0};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

std::string describe(const PlanEntry& e, const std::string& seed_key) {
  std::string s;
  for (const auto& [k, v] : e.axes) s += k + "=" + v + " ";
  return s + seed_key + "=" + std::to_string(e.seed);
}

// The line that says why a run failed: the last line naming an error, else the last line.
std::string error_line(const fs::path& log) {
  std::ifstream in(log);
  std::string line, last, last_error;
  while (std::getline(in, line)) {
    if (const auto cr = line.rfind('\r'); cr != std::string::npos) line = line.substr(cr + 1);  // progress bars
    if (line.find_first_not_of(" \t") == std::string::npos || line.rfind("=== moetb sweep", 0) == 0) continue;
    last = line;
    if (line.find("error") != std::string::npos || line.find("Error") != std::string::npos) last_error = line;
  }
  return last_error.empty() ? last : last_error;
}

struct Started {
  PlanEntry entry;
  pid_t pid = 0;
  std::unique_ptr<FileLock> lock;
  Clock::time_point t0;
  std::string started_utc;
  int threads = 1;
  int attempt = 1;
  std::vector<std::string> command;
};

class Runner {
 public:
  Runner(const SweepDir& dir, SweepPlan plan, RunOptions options)
      : dir_(dir), plan_(std::move(plan)), opt_(std::move(options)) {
    if (opt_.moetb.empty()) opt_.moetb = self_executable();
  }

  // Starts a run if nobody else holds it and it still needs running; nullopt otherwise.
  std::optional<Started> start(const PlanEntry& e, int threads, RunSummary& summary) {
    auto lock = FileLock::try_acquire(dir_.lock_path(e.id).string());
    if (!lock) {
      ++summary.busy;
      return std::nullopt;
    }
    const auto previous = dir_.read_result(e.id);  // re-read under the lock
    if (previous && (*previous)["status"] == "ok") {
      ++summary.already_complete;
      return std::nullopt;
    }
    Started s;
    s.entry = e;
    s.lock = std::make_unique<FileLock>(std::move(*lock));
    s.threads = threads;
    s.attempt = previous ? previous->value("attempt", 1) + 1 : 1;
    s.command = {opt_.moetb, "train", "--config", dir_.config_path(e.id).string(), "--out", dir_.train_dir(e.id).string(),
                 "--threads", std::to_string(threads)};
    if (!plan_.datagen_id.empty()) s.command.insert(s.command.end(), {"--data", dir_.data_dir(plan_).string()});
    // An interrupted run continues from its checkpoint; a failed one starts over.
    const bool resumable = !previous && fs::exists(dir_.train_dir(e.id) / runs::kCheckpointsDir / "latest");
    s.command.push_back(resumable ? "--resume" : "--force");
    std::string header = "=== moetb sweep: attempt " + std::to_string(s.attempt) + " at " + utc_now() + ":";
    for (const auto& a : s.command) header += " " + a;
    if (previous) remove_output(dir_.result_path(e.id), OutputKind::file);  // a retried failure is pending again
    std::ofstream(dir_.log_path(e.id), std::ios::app) << header << "\n";
    s.started_utc = utc_now();
    s.t0 = Clock::now();
    s.pid = spawn_logged(s.command, dir_.log_path(e.id).string());
    return s;
  }

  // Writes the result of a finished run; returns true when it succeeded.
  bool finish(const Started& s, int code) {
    const double wall = std::chrono::duration<double>(Clock::now() - s.t0).count();
    nlohmann::json eval;  // eval.json through the run-directory reader (runs/)
    if (code == 0) {
      try {
        if (const auto final_eval = runs::read_final_eval(dir_.train_dir(s.entry.id))) eval = final_eval->to_json();
      } catch (const std::exception&) {  // not an eval.json: the run failed
      }
    }
    const bool ok = code == 0 && eval.is_object() && eval.contains("eval");
    nlohmann::json axes = nlohmann::json::object();
    for (const auto& [k, v] : s.entry.axes) axes[k] = v;
    nlohmann::json r = {{"format", "moetb-sweep-run/1"}, {"id", s.entry.id},       {"index", s.entry.index},
                        {"axes", axes},                   {"seed", s.entry.seed},   {"status", ok ? "ok" : "failed"},
                        {"exit_code", code},              {"wall_s", wall},         {"started_utc", s.started_utc},
                        {"finished_utc", utc_now()},      {"host", hostname()},     {"threads", s.threads},
                        {"attempt", s.attempt},           {"command", s.command}};
    if (ok) {
      r["error"] = nullptr;
      for (const char* key : {"router", "step", "eval", "metrics_summary", "routing", "dropless"})
        if (eval.contains(key)) r[key] = eval[key];
    } else {
      const std::string why = error_line(dir_.log_path(s.entry.id));
      r["error"] = code == 0 ? "exited 0 without writing eval.json" : why.empty() ? "exit code " + std::to_string(code) : why;
    }
    dir_.write_result(s.entry.id, r);
    last_error_ = r["error"].is_string() ? r["error"].get<std::string>() : "";
    return ok;
  }

  const std::string& last_error() const { return last_error_; }
  const SweepPlan& plan() const { return plan_; }
  const RunOptions& options() const { return opt_; }

 private:
  const SweepDir& dir_;
  SweepPlan plan_;
  RunOptions opt_;
  std::string last_error_;
};

std::string format_duration(double s) {
  char buf[32];
  const long v = static_cast<long>(s + 0.5);
  if (v >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", v / 3600, (v % 3600) / 60);
  else if (v >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", v / 60, v % 60);
  else std::snprintf(buf, sizeof buf, "%lds", v);
  return buf;
}

}  // namespace

void ensure_dataset(const SweepDir& dir, const SweepPlan& plan, const std::string& moetb) {
  if (plan.datagen_id.empty()) return;  // the spec names its dataset; training reports if it is missing
  const fs::path data = dir.data_dir(plan);
  if (fs::exists(data / "manifest.json")) return;
  FileLock lock = FileLock::acquire((dir.root() / "data.lock").string());  // one generator at a time
  if (fs::exists(data / "manifest.json")) return;
  const fs::path log = dir.root() / ("datagen-" + plan.datagen_id + ".log");
  std::cerr << "moetb sweep: generating the dataset " << data.string() << "\n";
  const pid_t pid = spawn_logged({moetb.empty() ? self_executable() : moetb, "datagen", "--config",
                                  dir.datagen_config_path(plan).string(), "--out", data.string(), "--force"},
                                 log.string());
  if (*wait_child(pid, true) != 0)
    throw std::runtime_error("generating the dataset failed (" + log.string() + "): " + error_line(log));
}

RunSummary run_sweep(const SweepDir& dir, const RunOptions& options) {
  dir.load();  // "not a sweep directory" before anything else
  const OutputLock held = dir.lock(OutputLock::Mode::shared);  // runners share; a re-plan waits for none of them
  Runner runner(dir, dir.load(), options);
  const SweepPlan& plan = runner.plan();
  RunSummary summary;
  std::deque<PlanEntry> todo;
  for (const auto& e : plan.runs) {
    if (!e.active) continue;
    const RunState st = dir.state(e.id);
    if (st == RunState::ok) ++summary.already_complete;
    else if (st == RunState::failed && !options.retry_failed) ++summary.skipped_failed;
    else todo.push_back(e);
  }
  if (!todo.empty()) ensure_dataset(dir, plan, runner.options().moetb);
  const int jobs = std::max(1, options.jobs);
  // One thread per run unless asked: two threads per training run were slower than one at
  // both benchmark shapes on shared cores (docs/performance.md, "Threads"); use --jobs instead.
  const int threads = options.threads_per_run > 0 ? options.threads_per_run : 1;
  const std::size_t total = todo.size();
  const bool bar = options.progress && ::isatty(2);
  std::cerr << "moetb sweep: " << total << " runs to do (" << summary.already_complete << " complete, "
            << summary.skipped_failed << " failed earlier" << (summary.skipped_failed ? ", rerun with --retry-failed" : "")
            << "); " << jobs << " at a time, " << threads << " thread" << (threads > 1 ? "s" : "") << " each\n";
  std::vector<Started> active;
  std::size_t done = 0;
  const auto t0 = Clock::now();
  double busy_s = 0;
  while (!todo.empty() || !active.empty()) {
    while (static_cast<int>(active.size()) < jobs && !todo.empty()) {
      PlanEntry e = todo.front();
      todo.pop_front();
      if (auto s = runner.start(e, threads, summary)) active.push_back(std::move(*s));
      else ++done;
    }
    bool finished_any = false;
    for (std::size_t i = 0; i < active.size();) {
      const auto code = wait_child(active[i].pid, false);
      if (!code) {
        ++i;
        continue;
      }
      const bool ok = runner.finish(active[i], *code);
      ok ? ++summary.ok : ++summary.failed;
      ++done;
      busy_s += std::chrono::duration<double>(Clock::now() - active[i].t0).count();
      if (bar) std::cerr << "\r\033[K";
      if (!bar || !ok)
        std::cerr << "[" << done << "/" << total << "] " << (ok ? "ok     " : "FAILED ") << active[i].entry.id << "  "
                  << format_duration(std::chrono::duration<double>(Clock::now() - active[i].t0).count()) << "  "
                  << describe(active[i].entry, plan.seed_key) << (ok ? "" : "\n    " + runner.last_error()) << "\n";
      active.erase(active.begin() + static_cast<std::ptrdiff_t>(i));
      finished_any = true;
    }
    if (bar) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
      const std::size_t finished = static_cast<std::size_t>(summary.ok + summary.failed);
      const int width = 30;
      const int filled = total ? static_cast<int>(width * done / total) : width;
      std::string line = "\r[" + std::string(static_cast<std::size_t>(filled), '#') + std::string(static_cast<std::size_t>(width - filled), '.') +
                         "] " + std::to_string(done) + "/" + std::to_string(total) + " runs, " + std::to_string(summary.failed) +
                         " failed, " + std::to_string(active.size()) + " running, " + format_duration(elapsed);
      if (finished > 0 && done < total)
        line += ", about " + format_duration(busy_s / static_cast<double>(finished) * static_cast<double>(total - done) / jobs) + " left";
      std::cerr << line << "\033[K" << std::flush;
    }
    if (!finished_any && !active.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (bar) std::cerr << "\n";
  return summary;
}

int run_one(const SweepDir& dir, int64_t index, const RunOptions& options) {
  dir.load();
  const OutputLock held = dir.lock(OutputLock::Mode::shared);
  Runner runner(dir, dir.load(), options);
  const SweepPlan& plan = runner.plan();
  if (index < 0 || index >= static_cast<int64_t>(plan.runs.size()))
    throw std::invalid_argument("--index " + std::to_string(index) + ": the plan has runs 0-" + std::to_string(plan.runs.size() - 1));
  const PlanEntry& e = plan.runs[static_cast<std::size_t>(index)];
  if (!e.active) {
    std::cerr << "moetb sweep: run " << index << " (" << e.id << ") is no longer in the spec; nothing to do\n";
    return 0;
  }
  const RunState st = dir.state(e.id);
  if (st == RunState::ok) {
    std::cerr << "moetb sweep: run " << index << " (" << e.id << ") is already complete\n";
    return 0;
  }
  if (st == RunState::failed && !options.retry_failed) {
    std::cerr << "moetb sweep: run " << index << " (" << e.id << ") failed earlier: "
              << dir.read_result(e.id)->value("error", std::string("?")) << " (rerun with --retry-failed)\n";
    return 1;
  }
  int threads = options.threads_per_run;
  if (threads <= 0) {
    const char* slurm = std::getenv("SLURM_CPUS_PER_TASK");
    threads = slurm != nullptr && std::atoi(slurm) > 0 ? std::atoi(slurm) : usable_cores();
  }
  ensure_dataset(dir, plan, runner.options().moetb);
  RunSummary summary;
  auto s = runner.start(e, threads, summary);
  if (!s) {
    if (summary.already_complete) return 0;
    std::cerr << "moetb sweep: run " << index << " (" << e.id << ") is running in another process\n";
    return 1;
  }
  std::cerr << "moetb sweep: run " << index << " (" << e.id << "): " << describe(e, plan.seed_key) << "\n";
  const bool ok = runner.finish(*s, *wait_child(s->pid, true));
  std::cerr << "moetb sweep: run " << index << " (" << e.id << ") " << (ok ? "ok" : "FAILED: " + runner.last_error()) << "\n";
  return ok ? 0 : 1;
}

}  // namespace moetb::sweeps
