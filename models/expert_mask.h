// Expert removal for knockout experiments (docs/finetune.md): a removed expert is never
// selected; the slots that held it are emptied (-1, weight 0) and the token's remaining
// weights are rescaled to the total weight it had, so a renormalising router's weights
// still sum to 1. Works after any router (learned, oracle, hash, expert choice) because it
// edits the decision, not the logits. Causal importance in the sense of arXiv 2606.10703.
#pragma once
#include <ATen/core/Tensor.h>

#include "routers/router.h"

namespace moetb {

// removed: [E] bool on the decision's device. Tokens without a removed expert keep their
// experts and weights bit for bit; a token whose every expert is removed gets weight 0.
void remove_experts(RoutingDecision& decision, const at::Tensor& removed);

}  // namespace moetb
