// Training FLOPs of a partial fine-tune (docs/finetune.md), counted per step from the
// step's real routing: forward 2 FLOPs per multiply-add of every matmul (attention
// projections, QK^T and AV over the full S x S scores, router, the experts each token was
// sent to, shared and dense FFNs, LM head); backward = input gradients for every op above
// the lowest trainable block plus weight gradients of trainable matrices only (a trainable
// expert costs twice its forward per assignment; a frozen one above it, once). Elementwise
// ops, norms and softmax are not counted. The `full` arm is the usual 3x forward.
#pragma once
#include <cstdint>
#include <vector>

namespace moetb {

struct FlopShape {
  int64_t d_model = 0, n_heads = 0, vocab = 0, d_ff = 0, n_shared = 0, dense_d_ff = 0, n_experts = 0;
  std::vector<int64_t> moe_index;  // per block: its MoE layer, or -1 for a dense block
};

struct StepRouting {
  int64_t batch = 0, seq_len = 0;
  std::vector<int64_t> assignments;          // per MoE layer: (token, slot) pairs with an expert
  std::vector<int64_t> trainable_assignments;  // per MoE layer: ... with a trainable expert
};

struct StepFlops {
  double forward = 0.0, backward = 0.0;
  double full = 0.0;  // 3 x forward: what training every parameter costs on the same routing
};

// full_model = true: every parameter trainable (the `full` arm).
StepFlops step_flops(const FlopShape& shape, const StepRouting& routing, bool full_model);

}  // namespace moetb
