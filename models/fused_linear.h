// The model's dense projections, y = x W (+ residual), as one custom autograd function whose
// three products (forward, dx = dy W^T on a transposed copy of W, dW = x^T dy) run through
// blas_gemm.h, so on the CPU they take libxsmm's JIT kernels like the fused paths' products
// (ATen's matmul would send them to OpenBLAS, packing both operands on every call). Used for
// the attention's qkv and output projections, the LM head (transformer.cpp) and the router's
// logits (moe_layer.cpp).
// Float32/64 on the CPU; anything else takes the ATen composition.
#pragma once
#include <ATen/core/Tensor.h>

namespace moetb {

// x: [..., in], w: [in, out] -> [..., out]; residual (undefined: none) has the result's shape
// and is added (its gradient is the output's).
at::Tensor fused_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& residual = at::Tensor());

// x: [..., in], w: [out, in] (nn.Linear's layout: the tied LM head's embedding, the
// router's weight) -> x w^T: [..., out]. The forward runs on a transposed copy of w (small
// next to x), dx = dy w on w itself and dw = dy^T x.
at::Tensor fused_linear_t(const at::Tensor& x, const at::Tensor& w);

// The ATen compositions: matmul(x, w), plus residual; matmul(x, w^T).
at::Tensor linear_reference(const at::Tensor& x, const at::Tensor& w, const at::Tensor& residual = at::Tensor());
at::Tensor linear_t_reference(const at::Tensor& x, const at::Tensor& w);

}  // namespace moetb
