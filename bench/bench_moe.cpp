// Google Benchmark: the MoE feed-forward (sort-based dispatch, models/moe_layer.h)
// forward + backward in GFLOP/s, against a dense SwiGLU of the same total shape (the
// practical limit of this machine's BLAS): d_model 256, d_ff 512, 8 experts, top-2,
// 8192 tokens = 16384 token-slots. Also the default training step of `moetb train`.
// One intra-op thread and one OpenBLAS thread unless MOETB_BENCH_THREADS says otherwise.
#include <ATen/ops/matmul.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/silu.h>
#include <benchmark/benchmark.h>


#include "bench/bench_threads.h"
#include "models/moe_layer.h"

namespace {

constexpr int64_t kModel = 256, kFF = 512, kExperts = 8, kTopK = 2, kTokens = 8192;
// Three d_model x d_ff products per token-slot, forward (1x) + backward (2x), 2 flops per MAC.
constexpr double kFlops = 2.0 * 3.0 * 3.0 * kTokens * kTopK * kModel * kFF;

using moetb_bench::set_bench_threads;

void BM_MoEForwardBackward(benchmark::State& state) {
  set_bench_threads();
  moetb::MoEConfig cfg;
  cfg.d_model = kModel;
  cfg.d_ff = kFF;
  cfg.n_experts = kExperts;
  cfg.top_k = kTopK;
  moetb::MoEFeedForward layer(cfg);
  const at::Tensor x = at::randn({kTokens, kModel}).requires_grad_(true);  // [T, d_model]
  for (auto _ : state) {
    moetb::MoEOutput out = layer->forward(x, moetb::RouteContext{});
    (out.y.sum() + out.decision.aux_loss).backward();
    layer->zero_grad();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(kFlops * static_cast<double>(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MoEForwardBackward)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same FLOPs as one dense SwiGLU over all 16384 token-slots.
void BM_DenseSwiGLUSameShape(benchmark::State& state) {
  set_bench_threads();
  const at::Tensor x = at::randn({kTokens * kTopK, kModel}).requires_grad_(true);  // [T*k, d_model]
  const at::Tensor wg = at::randn({kModel, kFF}).requires_grad_(true), wu = at::randn({kModel, kFF}).requires_grad_(true);
  const at::Tensor wd = at::randn({kFF, kModel}).requires_grad_(true);
  for (auto _ : state) {
    const at::Tensor y = at::matmul(at::silu(at::matmul(x, wg)) * at::matmul(x, wu), wd);  // [T*k, d_model]
    y.sum().backward();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(kFlops * static_cast<double>(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DenseSwiGLUSameShape)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
