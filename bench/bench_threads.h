// The benchmarks' thread setting, shared by bench_train, bench_moe and bench_fused:
// MOETB_BENCH_THREADS (default 1) intra-op threads, and OpenBLAS's own pool sized to match
// (at::set_num_threads does not reach it), as `moetb train --threads` does.
#pragma once
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <cstdlib>

namespace moetb_bench {

inline int bench_threads() {
  const char* env = std::getenv("MOETB_BENCH_THREADS");
  return env ? std::atoi(env) : 1;
}

inline void set_threads(int n) {
  at::set_num_threads(n);
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
}

inline void set_bench_threads() { set_threads(bench_threads()); }

}  // namespace moetb_bench
