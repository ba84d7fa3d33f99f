// One training step of `moetb train`, shared by the trainer (models/trainer.cpp) and the
// side-by-side benchmark (bench/bench_train.cpp) so that both time the same code: forward,
// next-token cross-entropy + the routers' aux loss, backward; then global gradient-norm
// clipping and the AdamW update (Loshchilov & Hutter, arXiv 1711.05101). One host read per
// micro-batch (loss, cross-entropy, aux loss together); none in the update.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/optim/adamw.h>

#include <cstdint>
#include <vector>

#include "models/transformer.h"

namespace moetb {

struct MicroStep {
  double loss = 0, ce = 0, aux = 0;  // nats; loss = ce + aux (NaN-poisoned when asked)
  LMOutput out;                      // logits, decisions (per MoE block)
};

// tokens/domains: [B, S] int64 on the model's device. Runs the forward pass, reads the three
// losses in one host sync, returns early (no backward) if the loss is not finite, else
// backpropagates loss / accum_steps (gradients accumulate).
MicroStep forward_backward(MoETransformerImpl& model, const at::Tensor& tokens, const at::Tensor& domains,
                           int64_t accum_steps, bool poison_nan = false);

// Drops the gradients (set to none: the next backward writes them instead of adding to zeros).
void zero_grads(const std::vector<at::Tensor>& params);

// Scales all gradients so that their global L2 norm is at most max_norm: on the CPU one
// double-precision pass per gradient; on other devices without a host sync.
void clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

// The factor clip_grad_norm would scale by (1 within the norm), when every gradient is a
// contiguous CPU float32 tensor; -1 otherwise (then clip with clip_grad_norm).
double cpu_clip_scale(const std::vector<at::Tensor>& params, double max_norm);

// Sets the learning rate, clips (grad_clip > 0) and steps the optimizer: on CPU with float32
// parameters a fused AdamW (models/fused_adamw.h) that keeps torch's AdamW state layout (so
// checkpoints are unchanged), otherwise torch::optim::AdamW::step.
void optimizer_step(torch::optim::AdamW& opt, const std::vector<at::Tensor>& params, double lr, double grad_clip);

}  // namespace moetb
