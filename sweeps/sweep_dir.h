// The on-disk sweep: DIR/sweep.json (the plan: every run ever planned, with a stable
// index), DIR/spec.toml, DIR/runs/ID/{config.toml, log.txt, train/, result.json}. A run
// is complete exactly when its result.json exists (written atomically); re-planning
// keeps indices and results, adds new runs and marks runs no longer in the spec inactive.
// Planning holds DIR/sweep.lock exclusively, running holds it shared (lock()), so a plan
// never rewrites a sweep that runs; every file goes through common/safe_output.h.
// docs/sweeps.md describes the layout.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/safe_output.h"

namespace moetb::sweeps {

struct PlanEntry {
  int64_t index = 0;
  std::string id;
  bool active = true;  // false: from an earlier version of the spec (kept, not run)
  std::vector<std::pair<std::string, std::string>> axes;  // axis key -> display value
  int64_t seed = 0;
};

struct SweepPlan {
  std::string name;
  std::string seed_key;
  std::vector<std::string> axis_keys;
  std::vector<std::string> metrics;
  std::string data_dir;    // absolute dataset directory, or "" when the sweep generates it
  std::string datagen_id;  // the generated dataset's id (its config hash) when it does
  std::vector<PlanEntry> runs;
};

enum class RunState { pending, ok, failed };

struct PlanReport {
  std::size_t total = 0, added = 0, kept = 0, inactive = 0;
};

class SweepDir {
 public:
  explicit SweepDir(std::filesystem::path root) : root_(std::move(root)) {}

  // Expands the spec at `spec_path` into this directory (creating it), merging with an
  // existing plan. Writes sweep.json, spec.toml and each new run's config.toml. Refuses a
  // folder that is neither empty nor a sweep (the spec file itself may be in it).
  PlanReport plan(const std::string& spec_path) const;
  // The sweep's lock: exclusive while planning, shared while running ("DIR: in use by process N").
  OutputLock lock(OutputLock::Mode mode) const;

  SweepPlan load() const;  // throws with one line if DIR is not a planned sweep
  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path run_dir(const std::string& id) const { return root_ / "runs" / id; }
  std::filesystem::path config_path(const std::string& id) const { return run_dir(id) / "config.toml"; }
  std::filesystem::path log_path(const std::string& id) const { return run_dir(id) / "log.txt"; }
  std::filesystem::path train_dir(const std::string& id) const { return run_dir(id) / "train"; }
  std::filesystem::path result_path(const std::string& id) const { return run_dir(id) / "result.json"; }
  std::filesystem::path lock_path(const std::string& id) const { return run_dir(id) / "lock"; }
  // The dataset the runs train on, and the datagen config that makes it (if generated).
  std::filesystem::path data_dir(const SweepPlan& plan) const;
  std::filesystem::path datagen_config_path(const SweepPlan& plan) const;

  std::optional<nlohmann::json> read_result(const std::string& id) const;
  RunState state(const std::string& id) const;
  void write_result(const std::string& id, const nlohmann::json& result) const;

 private:
  std::filesystem::path root_;
};

// Writes `text` to `path` through a temporary name in the same folder, fsync and rename
// (common/safe_output.h replace_owned_file: for files inside the sweep folder).
void write_file_atomic(const std::filesystem::path& path, const std::string& text);
std::string read_text_file(const std::filesystem::path& path);

}  // namespace moetb::sweeps
