// Fused CPU paths of the small MoE LM's elementwise work, as custom autograd functions:
// RMSNorm (Zhang & Sennrich, arXiv 1910.07467) and rotary embeddings (RoFormer, arXiv
// 2104.09864), each one pass forward and one backward instead of 4-8 ATen ops per
// direction, and the SwiGLU activation (Shazeer, arXiv 2002.05202) on a packed [gate | up]
// product, so an expert runs two matrix products per pass instead of three, causal
// attention scores with the scale and mask folded into one baddbmm, the embedding gather
// and a pre-norm's residual pass-through. Float32/64, CPU, contiguous inner dimension;
// anything else takes the plain ATen path (same maths).
// tests/torch/test_fused_ops.cpp checks forward and gradients against the ATen path.
#pragma once
#include <ATen/core/Tensor.h>

#include <utility>

namespace moetb {

// x * rsqrt(mean(x^2, -1) + eps) * weight. x: [..., D], weight: [D].
at::Tensor fused_rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// {x, fused_rms_norm(x)} with x passed through one autograd node: the gradient x gets from
// the residual stream and the norm's input gradient are added in the norm's backward pass
// (transformer.cpp: pre-norm blocks, where x is both normalised and the residual).
std::pair<at::Tensor, at::Tensor> fused_rms_norm_pass(const at::Tensor& x, const at::Tensor& weight, double eps);

// weight [V, D] rows by ids ([N] int64) -> [N, D], as weight.index_select(0, ids); the
// table's gradient is summed row by row in one pass (ATen's index_add_ runs an add per row).
// An id outside [0, V) is refused by name.
at::Tensor fused_embedding(const at::Tensor& weight, const at::Tensor& ids);

// Rotates pairs (x[..., i], x[..., i + hd/2]) by the angles of each position: x: [B, H, S, hd]
// (any strides, inner stride 1), cos/sin: [S, hd/2] contiguous. Returns a contiguous [B, H, S, hd].
at::Tensor fused_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// h: [n, 2F] = x [W_gate | W_up]; returns silu(h[:, :F]) * h[:, F:]: [n, F].
at::Tensor fused_swiglu_act(const at::Tensor& h);

// Causal attention scores (q k^T) / sqrt(hd), -inf above the diagonal: q, k: [B, H, S, hd] ->
// [B, H, S, S]. One baddbmm with the mask as its addend (scale and mask inside the product)
// instead of matmul, mul and masked_fill, forward and backward.
at::Tensor causal_scores(const at::Tensor& q, const at::Tensor& k);

// The ATen compositions the fused paths replace (tests and non-CPU devices).
at::Tensor rms_norm_reference(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor embedding_reference(const at::Tensor& weight, const at::Tensor& ids);
at::Tensor rope_reference(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
at::Tensor swiglu_act_reference(const at::Tensor& h);
at::Tensor causal_scores_reference(const at::Tensor& q, const at::Tensor& k);

}  // namespace moetb
