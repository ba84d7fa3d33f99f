// Running a planned sweep: `moetb train` child processes, several at a time with the
// cores divided between them (local), or one run by index (a Slurm array task). A run
// is complete only once its result.json is written; reruns skip complete runs, resume
// interrupted ones from their last checkpoint, and rerun failed ones on request.
#pragma once
#include <cstdint>
#include <string>

#include "sweeps/sweep_dir.h"

namespace moetb::sweeps {

struct RunOptions {
  int jobs = 1;              // runs at a time
  int threads_per_run = 0;   // 0: usable cores / jobs (at least 1)
  bool retry_failed = false; // rerun runs whose result says failed
  bool progress = true;      // a progress bar when stderr is a terminal, else one line per run
  std::string moetb;         // the moetb executable to run (default: this one)
};

struct RunSummary {
  int ok = 0, failed = 0;       // finished by this call
  int already_complete = 0;     // skipped: result.json existed with status ok
  int skipped_failed = 0;       // failed earlier, not retried
  int busy = 0;                 // locked by another runner (e.g. a Slurm task)
  int exit_code() const { return failed + skipped_failed > 0 ? 1 : 0; }
};

// Makes sure the dataset exists (generating it once, under a lock, for a [datagen] sweep).
void ensure_dataset(const SweepDir& dir, const SweepPlan& plan, const std::string& moetb);

RunSummary run_sweep(const SweepDir& dir, const RunOptions& options);
// One run by plan index, in the foreground. Returns the process exit code to use.
int run_one(const SweepDir& dir, int64_t index, const RunOptions& options);

}  // namespace moetb::sweeps
