// The knockout figures of run reports: when RUN/knockout.json ("moetb-knockout/1", written by
// `moetb knockout RUN -o RUN/knockout.json`) is there, one heatmap per MoE layer of the
// per-domain validation loss increase when each expert is removed, captioned with the rank
// correlations against routing specialization (docs/finetune.md; arXiv 2606.10703). Torch-free.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace moetb::reports {

// The content of the report's "knockout" section; a note when the document is not a knockout.
std::string knockout_figures(const nlohmann::json& knockout);

}  // namespace moetb::reports
