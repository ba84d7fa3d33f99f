// sbatch job-array scripts for sweeps. Paths are absolute and single-quoted so the tasks
// find the sweep from any working directory on the cluster's shared file system.
#include "sweeps/slurm.h"

#include <stdexcept>

#include "sweeps/process.h"

namespace fs = std::filesystem;

namespace moetb::sweeps {
namespace {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

void check_option(const std::string& name, const std::string& value) {
  if (value.find_first_of("\n\r") != std::string::npos) throw std::invalid_argument(name + ": must be one line");
}

}  // namespace

std::string index_ranges(const std::vector<int64_t>& indices) {
  std::string out;
  for (std::size_t i = 0; i < indices.size();) {
    std::size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(indices[i]);
    if (j > i) out += "-" + std::to_string(indices[j]);
    i = j + 1;
  }
  return out;
}

std::vector<int64_t> runs_to_submit(const SweepDir& dir, const SweepPlan& plan, bool retry_failed) {
  std::vector<int64_t> out;
  for (const auto& e : plan.runs) {
    if (!e.active) continue;
    const RunState st = dir.state(e.id);
    if (st == RunState::pending || (st == RunState::failed && retry_failed)) out.push_back(e.index);
  }
  return out;
}

std::string sbatch_script(const SweepDir& dir, const SweepPlan& plan, const std::vector<int64_t>& indices,
                          const SlurmOptions& o) {
  if (indices.empty()) throw std::logic_error("sbatch_script: no runs");
  if (o.cpus_per_task < 1) throw std::invalid_argument("--cpus-per-task: must be at least 1");
  if (o.max_parallel < 0) throw std::invalid_argument("--max-parallel: must be 0 (no limit) or more");
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"--partition", o.partition}, {"--time", o.time}, {"--mem", o.mem}, {"--account", o.account},
           {"--qos", o.qos}, {"--job-name", o.job_name}})
    check_option(name, value);
  for (const auto& x : o.extra) {
    check_option("--sbatch", x);
    if (x.rfind("--", 0) != 0) throw std::invalid_argument("--sbatch '" + x + "': give a long sbatch option such as --gres=gpu:1");
  }
  const fs::path root = fs::absolute(dir.root()).lexically_normal();
  const std::string moetb = o.moetb.empty() ? self_executable() : fs::absolute(o.moetb).string();
  std::string s = "#!/bin/bash\n";
  s += "# moetb sweep " + plan.name + ": " + std::to_string(indices.size()) + " runs as a Slurm job array.\n";
  s += "# Each task runs one planned run; complete runs are skipped, so resubmitting is safe.\n";
  s += "#SBATCH --job-name=" + (o.job_name.empty() ? "moetb-" + plan.name : o.job_name) + "\n";
  s += "#SBATCH --array=" + index_ranges(indices) + (o.max_parallel > 0 ? "%" + std::to_string(o.max_parallel) : "") + "\n";
  s += "#SBATCH --cpus-per-task=" + std::to_string(o.cpus_per_task) + "\n";
  s += "#SBATCH --ntasks=1\n";
  s += "#SBATCH --output=" + (root / "slurm" / "logs" / "%A_%a.out").string() + "\n";
  if (!o.partition.empty()) s += "#SBATCH --partition=" + o.partition + "\n";
  if (!o.time.empty()) s += "#SBATCH --time=" + o.time + "\n";
  if (!o.mem.empty()) s += "#SBATCH --mem=" + o.mem + "\n";
  if (!o.account.empty()) s += "#SBATCH --account=" + o.account + "\n";
  if (!o.qos.empty()) s += "#SBATCH --qos=" + o.qos + "\n";
  for (const auto& x : o.extra) s += "#SBATCH " + x + "\n";
  s += "set -euo pipefail\n";
  s += "exec " + shell_quote(moetb) + " sweep run-one " + shell_quote(root.string()) +
       " --index \"$SLURM_ARRAY_TASK_ID\" --threads \"${SLURM_CPUS_PER_TASK:-1}\"" + (o.retry_failed ? " --retry-failed" : "") + "\n";
  return s;
}

}  // namespace moetb::sweeps
