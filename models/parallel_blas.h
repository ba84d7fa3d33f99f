// Coarse-grained parallel loops for the fused CPU paths (fused_attention.cpp,
// fused_experts.cpp, fused_ops.cpp, fused_adamw.cpp): each thread runs whole independent
// pieces (attention heads, a group of experts, a range of rows or columns) and calls BLAS
// on its own products, with OpenBLAS held at one thread
// meanwhile so the two levels of threading do not fight (docs/performance.md, Threads).
// The split depends only on the work and the thread count, so a run with the same
// threads gives the same numbers; with one thread everything runs in the calling thread.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

namespace moetb::blas {

// Threads the parallel loops may use: at::get_num_threads(), or 1 when the BLAS threads
// cannot be held at one (not OpenBLAS) or when already inside a parallel region.
int loop_threads();

// Chunks parallel_chunks cuts n items into: min(n, loop_threads()), at least 1; size
// per-chunk scratch or partial results with it.
int chunks_for(int64_t n);

// Runs task(t, begin, end) for the chunks of [0, n): chunk t of `chunks` (each at least one
// item) on its own thread, so t can index per-thread scratch; chunks <= loop_threads().
void parallel_chunks(int64_t n, int chunks, const std::function<void(int, int64_t, int64_t)>& task);

// Splits items with the given costs into at most `parts` contiguous ranges of about equal
// total cost: returns parts + 1 boundaries (begin of range t = result[t]), ranges may be empty.
std::vector<int64_t> balanced_bounds(const int64_t* cost, int64_t n, int parts);

}  // namespace moetb::blas
