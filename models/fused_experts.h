// The routed experts' SwiGLU feed-forwards (Shazeer, arXiv 2002.05202) over tokens already
// grouped by expert (the sort-based dispatch of moe_layer.cpp, Switch Transformer arXiv
// 2101.03961), as one custom autograd function: per expert two products into one packed
// [gate | up] buffer, the fused activation over all rows at once, one down product; the
// backward writes the gathered-input gradient and the three weight gradients straight into
// their tensors (no per-expert slices, concatenations and summed slice gradients).
// Float32/64 on the CPU; anything else takes the ATen composition.
#pragma once
#include <ATen/core/Tensor.h>

namespace moetb {

// xs: [m, d] rows grouped by expert, counts: [E] int64 on the CPU (rows per expert, summing
// to m); w_gate, w_up: [E, d, F]; w_down: [E, F, d]. Returns [m, d]: row i of expert e is
// (silu(x W_gate[e]) * (x W_up[e])) W_down[e].
at::Tensor fused_grouped_swiglu(const at::Tensor& xs, const at::Tensor& w_gate, const at::Tensor& w_up, const at::Tensor& w_down,
                                const at::Tensor& counts);

// The whole routed step: xs = x[tokens] (x: [T, d], tokens: [m] int64 grouped by expert),
// the experts as above, each row scaled by w: [m] and added back into a [T, d] result in row
// order, starting from residual ([T, d], e.g. the block's residual stream; undefined: zeros);
// the backward gathers, scatters and forms dw = <y_i, dout[tokens_i]> itself, so no
// index_select / mul / index_add nodes and their zero-filled gradients.
at::Tensor fused_routed_swiglu(const at::Tensor& x, const at::Tensor& tokens, const at::Tensor& w, const at::Tensor& w_gate,
                               const at::Tensor& w_up, const at::Tensor& w_down, const at::Tensor& counts,
                               const at::Tensor& residual = at::Tensor());

// The ATen compositions: per expert with rows, mm(swiglu_act(mm(xs slice, [W_gate | W_up])), W_down), concatenated.
at::Tensor grouped_swiglu_reference(const at::Tensor& xs, const at::Tensor& w_gate, const at::Tensor& w_up, const at::Tensor& w_down,
                                    const at::Tensor& counts);
// (residual or zeros_like(x)).index_add(0, tokens, grouped_swiglu_reference(x[tokens], ...) * w[:, None]).
at::Tensor routed_swiglu_reference(const at::Tensor& x, const at::Tensor& tokens, const at::Tensor& w, const at::Tensor& w_gate,
                                   const at::Tensor& w_up, const at::Tensor& w_down, const at::Tensor& counts,
                                   const at::Tensor& residual = at::Tensor());

}  // namespace moetb
