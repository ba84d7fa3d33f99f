// A fused AdamW step for CPU float32 parameters (Loshchilov & Hutter, arXiv 1711.05101):
// one pass per parameter doing weight decay, both moment updates, bias correction and the
// update, where torch::optim::AdamW (LibTorch 1.13) runs eight tensor ops with four
// temporaries. Same formulas in the same order, on the optimizer's own state entries
// (AdamWParamState: step, exp_avg, exp_avg_sq), so checkpoints and --resume are unchanged.
#pragma once
#include <torch/optim/adamw.h>

namespace moetb {

// Steps opt like opt.step(); falls back to it when a parameter is not a contiguous CPU
// float32 tensor or amsgrad is on. Returns true when the fused path ran.
bool fused_adamw_step(torch::optim::AdamW& opt);

}  // namespace moetb
