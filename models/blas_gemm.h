// Row-major matrix products straight through the Fortran BLAS libtorch itself calls
// (OpenBLAS behind libblas.so.3 on Debian), for the fused CPU paths that run many small
// products on sub-blocks of one buffer (fused_attention.cpp, fused_experts.cpp) without an
// ATen tensor, dispatch and autograd node per product.
#pragma once
#include <cstdint>

namespace moetb::blas {

// C[m x n] = alpha op(A) op(B) + beta C, all row-major with row strides lda, ldb, ldc
// (op(X) = X^T when the flag is set). Sizes and strides must fit in int.
void gemm_rm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
             float beta, float* c, int64_t ldc);
void gemm_rm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b,
             int64_t ldb, double beta, double* c, int64_t ldc);

}  // namespace moetb::blas
