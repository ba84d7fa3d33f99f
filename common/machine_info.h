// The machine moetb runs on, torch-free: CPU model and vector features (cpuid), the BLAS
// that libtorch will load (libblas.so.3) and, when it is OpenBLAS, the kernel family it
// picks. Debian 12's OpenBLAS 0.3.21 does not recognise some AVX-512 CPUs (an unnamed Xeon gets
// its SSE3 Prescott kernels); choose_blas_kernel() names the better one the CPU supports so
// the launcher can set OPENBLAS_CORETYPE before OpenBLAS loads (never over a user's value).
// Used by `moetb` (before exec'ing moetb-torch), `moetb env` and each run's provenance.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

namespace moetb {

struct CpuInfo {
  std::string model;        // /proc/cpuinfo "model name" ("" if unknown)
  int logical_cpus = 0;     // online CPUs this process may use
  bool avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
};
CpuInfo cpu_info();

// The best OpenBLAS core type this CPU supports: "SkylakeX" (AVX-512 F/BW/DQ/VL),
// "Haswell" (AVX2 + FMA) or "" (nothing better than OpenBLAS's own pick to offer).
std::string best_blas_kernel(const CpuInfo& cpu);

// Rank of an OpenBLAS x86-64 core name (higher = wider kernels); -1 when unknown.
int blas_kernel_rank(const std::string& core_name);

struct BlasKernelChoice {
  std::string openblas_default;  // what OpenBLAS picks by itself ("" = not OpenBLAS / no BLAS)
  std::string user_value;        // OPENBLAS_CORETYPE as the user set it ("" = unset)
  std::string chosen;            // the value to set ("" = leave the environment alone)
  std::string kernel;            // the kernel the run will use
  std::string source;            // "user", "moetb", "openblas" or "none"
};
// The decision alone (tested): user_value wins; else the CPU's best kernel when it outranks
// openblas_default (a known name); else OpenBLAS's own pick. "" default = no OpenBLAS.
BlasKernelChoice decide_blas_kernel(const CpuInfo& cpu, const std::string& openblas_default, const std::string& user_value);

// Probes OpenBLAS's default in a forked child (this process never loads the BLAS) and
// decides: a user value wins; else the CPU's best kernel when it outranks the default.
BlasKernelChoice choose_blas_kernel(const CpuInfo& cpu);

// Sets OPENBLAS_CORETYPE (and MOETB_BLAS_KERNEL_SOURCE, read back by blas_provenance) as
// choose_blas_kernel() says; call before anything loads the BLAS (moetb does, before exec).
BlasKernelChoice apply_blas_kernel_choice();

// OMP_WAIT_POLICY=PASSIVE and OPENBLAS_THREAD_TIMEOUT=4, each unless the user set it: with
// --threads 2 on two cores, libgomp's idle threads spun between parallel regions against
// OpenBLAS's own pool and the other jobs (a training step took 20x longer, 4.7 s instead of
// 0.26 s), and OpenBLAS's idle worker kept yielding for about 2^28 cycles after each product
// while the fused paths' own threads needed the core (1.27x instead of 1.7x from a second
// thread at the larger benchmark shape; docs/performance.md). Returns OMP_WAIT_POLICY's
// value in effect. Call before libgomp and OpenBLAS load (moetb does, before exec).
std::string apply_thread_environment();

struct BlasCheck {
  std::string kernel;       // openblas_get_corename() in the child
  double max_rel_error = 0; // max |C - C_ref| / (sum_k |A_ik B_kj|) over C's entries
  double gflops = 0;        // single-thread sgemm at n = 1024 (0 when not measured)
  std::string error;        // "" or why it could not run
};
// In a forked child with OPENBLAS_CORETYPE = kernel ("" = as the environment says) and one
// BLAS thread: C = A B (m x k times k x n, seeded) through sgemm_, against a double
// reference; optionally times an n = 1024 product.
BlasCheck check_blas_sgemm(const std::string& kernel, int m, int n, int k, bool time_it);

// What the current process's loaded BLAS is: path, OpenBLAS config and core, threads,
// and where the kernel choice came from. {"loaded": false} when no BLAS is loaded.
nlohmann::json blas_provenance();
// CPU model, features, logical CPUs: {"model", "logical_cpus", "features": [...]}.
nlohmann::json cpu_provenance(const CpuInfo& cpu);
// glibc malloc for a training loop: keep freed blocks (up to the 32 MiB mmap limit) in the
// heap instead of returning them to the kernel every step: each step frees and reallocates
// the same activation buffers, and returning them cost ~15% of the CPU time in page faults.
void tune_malloc_for_training();

// {"cpu": cpu_provenance(cpu_info()), "blas": blas_provenance()}: a run's provenance.
nlohmann::json machine_provenance();

}  // namespace moetb
