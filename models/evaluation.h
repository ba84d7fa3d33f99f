// Evaluation on held-out data: per-domain next-token loss in bits next to datagen's
// entropy-rate floor, and the routing of every MoE block recorded as a trace (format v1,
// trace-format.md) for the metric suite. The model never computes a metric itself
// (design.md); the trainer hands the trace to metrics/. Routing at evaluation is either the
// training-time one (capacity limit, expert choice over the batch) or dropless: each token
// routed on its own (docs/training.md, eval.routing).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "datagen/dataset.h"
#include "metrics/trace.h"
#include "models/transformer.h"
#include "runs/run_format.h"

namespace moetb {

struct DomainLoss {
  std::string name;
  int64_t n_tokens = 0;                 // predicted tokens whose target is in this domain
  std::optional<double> loss_bits;      // mean cross-entropy, bits per token; none without tokens
  std::optional<double> floor_bits;     // the domain's analytic entropy rate
};

struct EvalResult {
  std::optional<double> loss_bits;      // over all predicted tokens; none without tokens
  std::optional<double> floor_bits;     // token-weighted mean of the domain floors
  std::optional<double> unigram_bits;   // cross-entropy of the train split's unigram model on the same tokens
  std::vector<DomainLoss> domains;
  TraceData trace;                      // routing of the evaluated tokens, one layer per MoE block
  runs::EvalSummary summary() const;    // loss, floor, gap, gap_closed, per-domain entries (run-format.md)
  nlohmann::json to_json() const { return summary().to_json(); }
};

// How the MoE layers route at evaluation. kTrain: as in training (capacity drops what is over
// the limit; the trace then also holds layers.{l}.experts_before_capacity). kDropless: no
// capacity limit, and each token's experts depend on that token alone (expert choice: its
// causal top-k' rule, docs/routers.md).
enum class EvalRouting { kTrain, kDropless };

// Evaluates the first `n_sequences` validation sequences (0 = all) in batches of `batch`.
// `reference_groups` (may be empty) goes into the trace's metadata. The MoE layers' routing
// switch is set for this call only.
EvalResult evaluate(MoETransformerImpl& model, const Dataset& data, int64_t n_sequences, int64_t batch,
                    const at::Device& device, const std::vector<std::vector<int>>& reference_groups,
                    EvalRouting routing = EvalRouting::kTrain);

// The model's MoE layers in block order, found by module name ("block<l>_moe").
std::vector<MoEFeedForwardImpl*> moe_layers(MoETransformerImpl& model);

}  // namespace moetb
