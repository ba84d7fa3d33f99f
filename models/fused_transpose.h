// Out-of-place matrix transposes for the fused CPU paths: the attention's per-head K^T and
// V^T (fused_attention.cpp) and the experts' weights in the backward (fused_experts.cpp),
// which libxsmm's kernels then take as untransposed operands (it has no kernels for
// op(A) = A^T in row-major terms). Float in 8 x 8 vector shuffles, cloned per CPU.
#pragma once
#include <cstdint>

namespace moetb::fused {

// dst [cols, rows] (row stride ldd) = src^T for src [rows, cols] (row stride lds).
void transpose(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t rows, int64_t cols);
void transpose(const double* src, int64_t lds, double* dst, int64_t ldd, int64_t rows, int64_t cols);

}  // namespace moetb::fused
