// Row-major matrix products for the fused CPU paths that run many small products on
// sub-blocks of one buffer (fused_attention.cpp, fused_experts.cpp, fused_linear.cpp)
// without an ATen tensor, dispatch and autograd node per product. Float products that
// libxsmm's JIT can take (alpha 1, beta 0 or 1, op(B) = B) run its generated kernels, at
// the instruction set of OpenBLAS's kernel so both sides of a comparison use the same one;
// everything else goes to the Fortran BLAS libtorch itself calls (OpenBLAS behind
// libblas.so.3 on Debian).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>

namespace moetb::blas {

// C[m x n] = alpha op(A) op(B) + beta C, all row-major with row strides lda, ldb, ldc
// (op(X) = X^T when the flag is set). Sizes and strides must fit in int.
void gemm_rm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
             float beta, float* c, int64_t ldc);
void gemm_rm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b,
             int64_t ldb, double beta, double* c, int64_t ldc);
// The same always through the BLAS (products where its kernels are measured to be faster).
void gemm_rm_blas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float beta, float* c, int64_t ldc);
void gemm_rm_blas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b,
                  int64_t ldb, double beta, double* c, int64_t ldc);

// The JIT path as run provenance: {"library": "libxsmm 1.17", "enabled": true, "target":
// "avx512_cpx", "why": ...}, or {"library": "none"} in a build without it. MOETB_GEMM_JIT=0
// turns it off; LIBXSMM_TARGET, when set, is libxsmm's own choice and kept.
nlohmann::json jit_gemm_info();
// Turns the JIT path on or off for this process (tests and benchmarks compare both); returns
// whether it was on. It stays off where jit_gemm_info() says it is unavailable.
bool set_jit_gemm(bool on);

}  // namespace moetb::blas
