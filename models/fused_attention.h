// Causal self-attention softmax(q k^T / sqrt(hd) + causal mask) v as one custom autograd
// function that skips the masked half: the sequence is cut into row blocks, and each block's
// QK^T and PV products (forward) and the four products of the backward run only over the
// key blocks at or below the diagonal, with the softmax fused per row between them (Vaswani
// et al., arXiv 1706.03762; the block-skipping of FlashAttention, Dao et al., arXiv
// 2205.14135, without its on-chip recomputation: the probabilities are kept for the backward).
// Float32/64 on the CPU with unit inner stride; anything else takes the ATen composition.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace moetb {

// q, k, v: [B, H, S, hd] (any strides, inner stride 1) -> [B, H, S, hd]. The result is a
// [B, S, H, hd]-contiguous tensor seen through permute(0, 2, 1, 3), so transposing it back to
// [B, S, H * hd] costs no copy. block: rows per block (0: the default, 32).
at::Tensor fused_causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t block = 0);

// The same with the rotary embedding (RoFormer, arXiv 2104.09864) of q and k inside, on the
// packed projection: qkv: [B, S, 3, H, hd] (q, k, v; any layout, made contiguous), cos, sin:
// [S, hd/2] -> [B, S, H * hd]. Its backward writes the packed gradient [B, S, 3, H, hd] in one
// tensor (no per-slice zero-filled gradients summed by autograd).
at::Tensor fused_rope_attention(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin, int64_t block = 0);

// The ATen compositions they replace: causal_scores_reference(q, k).softmax(-1) matmul v.
at::Tensor causal_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);
// rope_reference on q and k (fused_ops.h), then causal_attention_reference, as [B, S, H * hd].
at::Tensor rope_attention_reference(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace moetb
