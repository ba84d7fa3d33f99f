// The model's dense projections, y = x W (+ residual), as one custom autograd function whose
// three products (forward, dx = dy W^T on a transposed copy of W, dW = x^T dy) run through
// blas_gemm.h, so on the CPU they take libxsmm's JIT kernels like the fused paths' products
// (ATen's matmul would send them to OpenBLAS, packing both operands on every call). Used for
// the attention's qkv and output projections and the untied LM head (transformer.cpp).
// Float32/64 on the CPU; anything else takes the ATen composition.
#pragma once
#include <ATen/core/Tensor.h>

namespace moetb {

// x: [..., in], w: [in, out] -> [..., out]; residual (undefined: none) has the result's shape
// and is added (its gradient is the output's).
at::Tensor fused_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& residual = at::Tensor());

// The ATen composition: matmul(x, w), plus residual.
at::Tensor linear_reference(const at::Tensor& x, const at::Tensor& w, const at::Tensor& residual = at::Tensor());

}  // namespace moetb
