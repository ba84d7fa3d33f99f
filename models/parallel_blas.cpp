// Coarse-grained parallel loops over at::parallel_for with OpenBLAS held at one thread
// (parallel_blas.h). OpenBLAS's thread count is global, so it is lowered only by the
// thread that owns the step (never inside a parallel region) and restored afterwards.
#include "models/parallel_blas.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>

namespace moetb::blas {
namespace {

using GetThreads = int (*)();
using SetThreads = void (*)(int);

struct OpenBlasThreads {
  GetThreads get = reinterpret_cast<GetThreads>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  SetThreads set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  bool found() const { return get != nullptr && set != nullptr; }
};

const OpenBlasThreads& openblas() {
  static const OpenBlasThreads o;
  return o;
}

// Holds OpenBLAS at one thread for its lifetime.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() : saved_(openblas().get()) {
    if (saved_ != 1) openblas().set(1);
  }
  ~SingleThreadedBlas() {
    if (saved_ != 1) openblas().set(saved_);
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int saved_;
};

}  // namespace

int loop_threads() {
  if (at::in_parallel_region() || !openblas().found()) return 1;
  return std::max(1, at::get_num_threads());
}

int chunks_for(int64_t n) { return static_cast<int>(std::clamp<int64_t>(n, 1, loop_threads())); }

void parallel_chunks(int64_t n, int chunks, const std::function<void(int, int64_t, int64_t)>& task) {
  if (n <= 0) return;
  chunks = static_cast<int>(std::clamp<int64_t>(chunks, 1, std::min<int64_t>(n, loop_threads())));
  const auto bounds = [&](int64_t t) { return n * t / chunks; };
  if (chunks == 1) {
    task(0, 0, n);
    return;
  }
  const SingleThreadedBlas hold;
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) task(static_cast<int>(t), bounds(t), bounds(t + 1));
  });
}

std::vector<int64_t> balanced_bounds(const int64_t* cost, int64_t n, int parts) {
  parts = std::max(1, parts);
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) total += cost[i];
  std::vector<int64_t> b(static_cast<std::size_t>(parts) + 1, n);
  b[0] = 0;
  int64_t acc = 0, i = 0;
  for (int t = 1; t < parts; ++t) {
    const int64_t target = total * t / parts;  // the range ends where the running cost first reaches its share
    while (i < n && acc + cost[i] / 2 < target) acc += cost[i++];
    b[static_cast<std::size_t>(t)] = i;
  }
  return b;
}

}  // namespace moetb::blas
