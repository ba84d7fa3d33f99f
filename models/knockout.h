// `moetb knockout RUN` (docs/finetune.md): causal expert importance. For every MoE layer
// and expert, the per-domain validation loss increase when that expert is removed (never
// selected; the token's other experts renormalised, models/expert_mask.h), beside the
// routing-based specialization of the same evaluation's trace and their rank correlation
// (metrics/expert_importance.h). Motivated by arXiv 2606.10703 and DBES (arXiv 2605.18498).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "models/run_model.h"

namespace moetb {

struct KnockoutOptions {
  int64_t eval_sequences = 0;  // validation sequences; 0 = the run's eval.sequences
  bool progress = false;       // one line per layer on stderr
};

// The "moetb-knockout/1" document. Leaves the model as it found it (no expert removed,
// router states restored).
nlohmann::json run_knockout(LoadedRun& run, const KnockoutOptions& options);

}  // namespace moetb
