// Slurm job arrays for a planned sweep: an sbatch script whose array tasks each run
// `moetb sweep run-one DIR --index $SLURM_ARRAY_TASK_ID` over the runs still to do, and
// its submission with sbatch. Resume rules are the local runner's (sweeps/runner.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "sweeps/sweep_dir.h"

namespace moetb::sweeps {

struct SlurmOptions {
  std::string partition, time, mem, account, qos, job_name;
  int cpus_per_task = 1;
  int max_parallel = 0;               // the array's %N throttle (0 = no limit)
  std::vector<std::string> extra;     // more #SBATCH options, e.g. "--gres=gpu:1"
  bool retry_failed = false;          // include runs that failed earlier
  std::string moetb;                  // the moetb executable the tasks run (default: this one)
};

// "0-3,5,7-9" from sorted distinct indices.
std::string index_ranges(const std::vector<int64_t>& indices);
// The runs a submission covers: active runs without a result (and failed ones if asked).
std::vector<int64_t> runs_to_submit(const SweepDir& dir, const SweepPlan& plan, bool retry_failed);
std::string sbatch_script(const SweepDir& dir, const SweepPlan& plan, const std::vector<int64_t>& indices,
                          const SlurmOptions& options);

}  // namespace moetb::sweeps
