// Google Benchmark: the fused CPU paths of the training step one at a time, forward +
// backward, at the two shapes of bench_train (docs/performance.md): the rotary block-causal
// attention (models/fused_attention.h) by row-block size, and the routed expert SwiGLU
// (models/fused_experts.h) with an even top-k dispatch, and the qkv projection
// (models/fused_linear.h) against ATen's matmul. For choosing block sizes, checking how each
// path scales with MOETB_BENCH_THREADS (default 1) threads, and MOETB_GEMM_JIT=0 against
// libxsmm's kernels.
#include <ATen/ops/arange.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/full.h>
#include <benchmark/benchmark.h>

#include "models/fused_attention.h"
#include "models/fused_experts.h"
#include "models/fused_linear.h"
#include "bench/bench_threads.h"
#include "common/machine_info.h"

namespace {

struct Shape {
  int64_t d_model, heads, experts, top_k, d_ff, seq, batch;
};
constexpr Shape kShapes[] = {{128, 4, 8, 2, 128, 128, 16}, {256, 4, 16, 2, 256, 256, 16}};

using moetb_bench::set_bench_threads;

// Args: shape, row block (0: the default).
void BM_RopeAttention(benchmark::State& state) {
  set_bench_threads();
  const Shape& s = kShapes[state.range(0)];
  const int64_t hd = s.d_model / s.heads;
  const at::Tensor qkv = at::randn({s.batch, s.seq, 3, s.heads, hd}).requires_grad_(true);  // [B, S, 3, H, hd]
  const at::Tensor angles = at::arange(s.seq * hd / 2).view({s.seq, hd / 2}).to(at::kFloat).mul(0.01);  // [S, hd/2]
  const at::Tensor cos = angles.cos(), sin = angles.sin();
  const at::Tensor g = at::randn({s.batch, s.seq, s.d_model});  // [B, S, D]
  for (auto _ : state) {
    at::Tensor out = moetb::fused_rope_attention(qkv, cos, sin, state.range(1));  // [B, S, D]
    out.backward(g);
    qkv.mutable_grad().reset();
  }
  state.counters["tokens_per_s"] = benchmark::Counter(static_cast<double>(state.iterations() * s.batch * s.seq), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RopeAttention)->ArgsProduct({{0, 1}, {16, 32, 64, 0}})->Unit(benchmark::kMillisecond)->UseRealTime();

// Args: shape. Every token to top_k experts in turn, so every expert gets the same rows.
void BM_RoutedExperts(benchmark::State& state) {
  set_bench_threads();
  const Shape& s = kShapes[state.range(0)];
  const int64_t T = s.batch * s.seq, m = T * s.top_k, E = s.experts, d = s.d_model, F = s.d_ff;
  const at::Tensor x = at::randn({T, d}).requires_grad_(true);  // [T, d]
  const at::Tensor tokens = at::arange(m).remainder(T);                   // [m], grouped by expert below
  const at::Tensor w = at::full({m}, 0.5);                       // [m]
  const at::Tensor counts = at::full({E}, m / E, at::kLong);     // [E]
  const at::Tensor wg = at::randn({E, d, F}).mul(0.05).requires_grad_(true), wu = at::randn({E, d, F}).mul(0.05).requires_grad_(true);
  const at::Tensor wd = at::randn({E, F, d}).mul(0.05).requires_grad_(true);
  const at::Tensor g = at::randn({T, d});
  for (auto _ : state) {
    at::Tensor y = moetb::fused_routed_swiglu(x, tokens, w, wg, wu, wd, counts);  // [T, d]
    y.backward(g);
    for (const at::Tensor* p : {&x, &wg, &wu, &wd}) p->mutable_grad().reset();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * 3.0 * 3.0 * static_cast<double>(m * d * F * state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RoutedExperts)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// Args: shape, 1 = fused_linear / 0 = ATen's matmul. The qkv projection [B*S, D] x [D, 3D].
void BM_QkvProjection(benchmark::State& state) {
  set_bench_threads();
  const Shape& s = kShapes[state.range(0)];
  const int64_t N = s.batch * s.seq, D = s.d_model;
  const at::Tensor x = at::randn({N, D}).requires_grad_(true), w = at::randn({D, 3 * D}).mul(0.05).requires_grad_(true);
  const at::Tensor g = at::randn({N, 3 * D});
  for (auto _ : state) {
    at::Tensor y = state.range(1) ? moetb::fused_linear(x, w) : moetb::linear_reference(x, w);  // [N, 3D]
    y.backward(g);
    for (const at::Tensor* p : {&x, &w}) p->mutable_grad().reset();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * 3.0 * static_cast<double>(N * D * 3 * D * state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_QkvProjection)->ArgsProduct({{0, 1}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  moetb::tune_malloc_for_training();  // as moetb-torch does: the step's buffers stay mapped
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
