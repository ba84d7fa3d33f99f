// A fused AdamW step for CPU float32 parameters (Loshchilov & Hutter, arXiv 1711.05101):
// one pass per parameter doing weight decay, both moment updates, bias correction and the
// update, where torch::optim::AdamW (LibTorch 1.13) runs eight tensor ops with four
// temporaries. Same formulas in the same order, on the optimizer's own state entries
// (AdamWParamState: step, exp_avg, exp_avg_sq), so checkpoints and --resume are unchanged.
#pragma once
#include <torch/optim/adamw.h>

namespace moetb {

// Steps opt like opt.step() on the gradients times grad_scale (the clipping factor, folded
// in here so the gradients are not rewritten in a pass of their own: the same floats as
// scaling them first); falls back to scaling them and opt.step() when a parameter is not a
// contiguous CPU float32 tensor or amsgrad is on. Returns true when the fused path ran.
bool fused_adamw_step(torch::optim::AdamW& opt, float grad_scale = 1.0f);

}  // namespace moetb
