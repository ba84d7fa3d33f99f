// The training-key check of `moetb sweep plan`: before a plan writes anything, every planned
// run's config is read the way `moetb train --config` reads it (the same key table,
// bind_train_config in models/train_config.h) and validated the way it validates it, so a
// misspelt key or a bad value fails the plan with one line instead of failing every run.
// Torch-free: the key table and its checks live in moetb_train_config. docs/sweeps.md.
#pragma once
#include <string>
#include <vector>

#include "sweeps/sweep_spec.h"

namespace moetb::sweeps {

// Throws std::invalid_argument with one line naming the spec (label), where the bad key is
// set ("[base]", "axes[1]", "sweep.seed_key", or "run ID (axis values, seed)" for a value
// that is wrong only in a combination), the key and what is wrong. Does nothing when the
// spec sets [sweep] check_train_keys = false (runs by a stand-in trainer).
void check_train_configs(const SweepSpec& spec, const std::vector<PlannedRun>& runs, const std::string& label);

}  // namespace moetb::sweeps
