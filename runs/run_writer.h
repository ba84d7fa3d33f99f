// Writing a run directory (moetb-run/1, docs/run-format.md): what the trainer uses. The run
// starts as a folder built beside its target and swapped into place with run.json (the
// marker) and config.toml in it, so a half-created run never has a marker; --force replaces
// only a folder that already holds a moetb run. The folder is held under an exclusive lock
// (PARENT/.NAME.lock) for the writer's lifetime: a second writer fails with "in use by
// process N". Every file goes through the common/ output layer. Torch-free.
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include "common/safe_output.h"
#include "runs/run_format.h"

namespace moetb::runs {

class RunWriter {
 public:
  // Locks `dir`; then either creates the run (create: the folder is missing or empty, or holds
  // a moetb run and force is set) or opens it to continue (resume: it must hold a run).
  // Throws OutputError / std::invalid_argument with one line otherwise.
  static RunWriter create(const std::filesystem::path& dir, const RunInfo& info, const std::string& config_toml, bool force);
  static RunWriter resume(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  void append_step(const StepRecord& step) const;
  void append_eval(const EvalRecord& eval) const;
  void write_final_eval(const FinalEval& eval) const;  // eval.json, atomically
  // Keeps the log records up to `step` (a resumed run rewrites what came after its
  // checkpoint); a torn last line goes too.
  void truncate_log(int64_t step) const;
  std::filesystem::path path(const std::string& relative) const { return dir_ / relative; }

 private:
  RunWriter(std::filesystem::path dir, OutputLock lock) : dir_(std::move(dir)), lock_(std::make_unique<OutputLock>(std::move(lock))) {}
  void append_line(const std::string& line) const;
  std::filesystem::path dir_;
  std::unique_ptr<OutputLock> lock_;
};

// Locks a run directory for writing (PARENT/.NAME.lock; "DIR: in use by process N").
OutputLock lock_run(const std::filesystem::path& dir);

}  // namespace moetb::runs
