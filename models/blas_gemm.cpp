// Row-major gemm (blas_gemm.h): row-major C = op(A) op(B) is the column-major
// C^T = op(B)^T op(A)^T, so each call swaps the operands and keeps the flags. The JIT path
// takes rows of C in blocks of kRowBlock and the inner dimension in blocks of kDepthBlock
// (later depth blocks add onto C), so the kernels generated depend on a bounded set of
// shapes even though the experts' row counts change every step.
#include "models/blas_gemm.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

#include "common/machine_info.h"

#ifdef MOETB_HAVE_LIBXSMM
#include <libxsmm.h>
#endif

extern "C" {
void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha, const float* a,
            const int* lda, const float* b, const int* ldb, const float* beta, float* c, const int* ldc);
void dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const double* alpha, const double* a,
            const int* lda, const double* b, const int* ldb, const double* beta, double* c, const int* ldc);
}

namespace moetb::blas {
namespace {

struct JitState {
  bool available = false;
  std::string target, why;
};

#ifdef MOETB_HAVE_LIBXSMM
constexpr int64_t kRowBlock = 64, kDepthBlock = 256;

// libxsmm's instruction set for OpenBLAS's kernel (by blas_kernel_rank), 0 = none: below
// AVX2, OpenBLAS's products stay the only ones.
int archid_for_openblas_kernel(const std::string& core) {
  const int rank = blas_kernel_rank(core);
  if (rank >= 6) return LIBXSMM_X86_AVX512_CPX;
  if (rank == 5) return LIBXSMM_X86_AVX512_CORE;
  if (rank == 4) return LIBXSMM_X86_AVX2;
  return 0;
}

JitState init_jit() {
  JitState s;
  const char* off = std::getenv("MOETB_GEMM_JIT");
  if (off && std::string(off) == "0") {
    s.why = "MOETB_GEMM_JIT=0";
    return s;
  }
  libxsmm_init();
  if (!std::getenv("LIBXSMM_TARGET")) {
    using CoreName = char* (*)();
    const auto core = reinterpret_cast<CoreName>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
    const std::string name = core ? core() : "";
    const int want = name.empty() ? libxsmm_cpuid() : archid_for_openblas_kernel(name);
    if (want == 0) {
      s.why = "OpenBLAS runs its " + name + " kernel (below AVX2)";
      return s;
    }
    libxsmm_set_target_archid(std::min(want, libxsmm_cpuid()));
    s.why = name.empty() ? "libxsmm's own CPU detection" : "matches OpenBLAS's " + name + " kernel";
  } else {
    s.why = "LIBXSMM_TARGET as set";
  }
  s.target = libxsmm_get_target_arch();
  if (libxsmm_get_target_archid() < LIBXSMM_X86_AVX2) {
    s.why = "libxsmm's target " + s.target + " is below AVX2";
    return s;
  }
  s.available = true;
  return s;
}

const JitState& jit_state() {
  static const JitState s = init_jit();
  return s;
}

std::atomic<bool>& jit_switch() {
  static std::atomic<bool> on{jit_state().available};
  return on;
}

// Column-major C[M x N] (+)= A[M x K] op(B), op(B) = B [K x N] or, with trans_b, B^T for
// B [N x K]; null where libxsmm has no kernel for it.
libxsmm_smmfunction kernel(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc, float beta, bool trans_b) {
  const auto m = static_cast<libxsmm_blasint>(M), n = static_cast<libxsmm_blasint>(N), k = static_cast<libxsmm_blasint>(K);
  const auto la = static_cast<libxsmm_blasint>(lda), lb = static_cast<libxsmm_blasint>(ldb), lc = static_cast<libxsmm_blasint>(ldc);
  const float one = 1.0f;
  const int flags = trans_b ? LIBXSMM_GEMM_FLAG_TRANS_B : LIBXSMM_GEMM_FLAG_NONE;
  return libxsmm_smmdispatch(m, n, k, &la, &lb, &lc, &one, &beta, &flags, nullptr);
}

// The float product through libxsmm; false (nothing written) where it cannot take it.
bool jit_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
               int64_t ldb, float beta, float* c, int64_t ldc) {
  if (tb || alpha != 1.0f || (beta != 0.0f && beta != 1.0f) || k == 0 || !jit_switch().load(std::memory_order_relaxed)) return false;
  // The kernels of this call: rows of C in {kRowBlock, the rest} x depth in {kDepthBlock, the
  // rest} x beta in {beta (first depth block), 1}, so at most 8.
  struct Entry {
    int64_t mi, kp;
    float beta;
    libxsmm_smmfunction f;
  } cache[8];
  int used = 0;
  auto get = [&](int64_t mi, int64_t kp, float bt) {
    for (int i = 0; i < used; ++i)
      if (cache[i].mi == mi && cache[i].kp == kp && cache[i].beta == bt) return cache[i].f;
    cache[used] = {mi, kp, bt, kernel(n, mi, kp, ldb, lda, ldc, bt, ta)};
    return cache[used++].f;
  };
  // Row-major C[i0 : i0 + mi] (+)= op(A)[i0 : i0 + mi, p0 : p0 + kp] B[p0 : p0 + kp] is the
  // column-major [n x mi] = B-part [n x kp] times the A-part as [kp x mi] (with ta, A's
  // columns i0 .. i0 + mi, transposed). The first pass only finds the kernels, so a shape
  // libxsmm cannot take goes to the BLAS before anything is written.
  for (int pass = 0; pass < 2; ++pass)
    for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
      const int64_t mi = std::min(kRowBlock, m - i0);
      for (int64_t p0 = 0; p0 < k; p0 += kDepthBlock) {
        const libxsmm_smmfunction f = get(mi, std::min(kDepthBlock, k - p0), p0 == 0 ? beta : 1.0f);
        if (!f) return false;
        if (pass == 1) f(b + p0 * ldb, ta ? a + p0 * lda + i0 : a + i0 * lda + p0, c + i0 * ldc);
      }
    }
  return true;
}
#endif

}  // namespace

void gemm_rm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
             float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
#ifdef MOETB_HAVE_LIBXSMM
  if (jit_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) return;
#endif
  gemm_rm_blas(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm_rm_blas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const char cta = ta ? 'T' : 'N', ctb = tb ? 'T' : 'N';
  const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
  const int ila = static_cast<int>(lda), ilb = static_cast<int>(ldb), ilc = static_cast<int>(ldc);
  sgemm_(&ctb, &cta, &in, &im, &ik, &alpha, b, &ilb, a, &ila, &beta, c, &ilc);
}

void gemm_rm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b,
             int64_t ldb, double beta, double* c, int64_t ldc) {
  gemm_rm_blas(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm_rm_blas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b,
                  int64_t ldb, double beta, double* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const char cta = ta ? 'T' : 'N', ctb = tb ? 'T' : 'N';
  const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
  const int ila = static_cast<int>(lda), ilb = static_cast<int>(ldb), ilc = static_cast<int>(ldc);
  dgemm_(&ctb, &cta, &in, &im, &ik, &alpha, b, &ilb, a, &ila, &beta, c, &ilc);
}

nlohmann::json jit_gemm_info() {
#ifdef MOETB_HAVE_LIBXSMM
  const JitState& s = jit_state();
  nlohmann::json j = {{"library", std::string("libxsmm ") + LIBXSMM_CONFIG_VERSION}, {"enabled", s.available && jit_switch().load()},
                      {"why", s.why}};
  if (!s.target.empty()) j["target"] = s.target;
  return j;
#else
  return {{"library", "none"}, {"enabled", false}, {"why", "built without libxsmm"}};
#endif
}

bool set_jit_gemm(bool on) {
#ifdef MOETB_HAVE_LIBXSMM
  return jit_switch().exchange(on && jit_state().available);
#else
  (void)on;
  return false;
#endif
}

}  // namespace moetb::blas
