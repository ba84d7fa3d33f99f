// Google Benchmark: the fused CPU paths of the training step one at a time, forward +
// backward, at the two shapes of bench_train (docs/performance.md): the rotary block-causal
// attention (models/fused_attention.h) by row-block size, and the routed expert SwiGLU
// (models/fused_experts.h) with an even top-k dispatch, the qkv projection and the tied LM
// head (models/fused_linear.h) against ATen's matmul, and the MoE layer's routing (logits,
// top-k router, aux losses). For choosing block sizes, checking how each
// path scales with MOETB_BENCH_THREADS (default 1) threads, and MOETB_GEMM_JIT=0 against
// libxsmm's kernels.
#include <ATen/ops/arange.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/full.h>
#include <benchmark/benchmark.h>

#include "models/fused_attention.h"
#include "models/fused_experts.h"
#include "models/fused_linear.h"
#include "models/moe_layer.h"
#include "bench/bench_threads.h"
#include "common/machine_info.h"

namespace {

struct Shape {
  int64_t d_model, heads, experts, top_k, d_ff, seq, batch, vocab;
};
constexpr Shape kShapes[] = {{128, 4, 8, 2, 128, 128, 16, 241}, {256, 4, 16, 2, 256, 256, 16, 241}};

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

// Args: shape, 1 = fused_linear_t / 0 = ATen's matmul. The tied LM head [B*S, D] x [V, D]^T.
void BM_TiedHead(benchmark::State& state) {
  set_bench_threads();
  const Shape& s = kShapes[state.range(0)];
  const int64_t N = s.batch * s.seq, D = s.d_model;
  const at::Tensor x = at::randn({N, D}).requires_grad_(true), e = at::randn({s.vocab, D}).mul(0.02).requires_grad_(true);
  const at::Tensor g = at::randn({N, s.vocab});
  for (auto _ : state) {
    at::Tensor y = state.range(1) ? moetb::fused_linear_t(x, e) : moetb::linear_t_reference(x, e);  // [N, V]
    y.backward(g);
    for (const at::Tensor* p : {&x, &e}) p->mutable_grad().reset();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * 3.0 * static_cast<double>(N * D * s.vocab * state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TiedHead)->ArgsProduct({{0, 1}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();

// Args: shape. The MoE layer's routing in training (logits, the default top-k router, its
// balance and z losses), forward + backward through the weights and the aux loss.
void BM_Routing(benchmark::State& state) {
  set_bench_threads();
  const Shape& s = kShapes[state.range(0)];
  const int64_t N = s.batch * s.seq;
  moetb::MoEConfig cfg;
  cfg.d_model = s.d_model;
  cfg.d_ff = s.d_ff;
  cfg.n_experts = s.experts;
  cfg.top_k = s.top_k;
  moetb::MoEFeedForward layer(cfg);
  const at::Tensor x = at::randn({N, s.d_model}).requires_grad_(true);  // [N, d]
  const at::Tensor g = at::randn({N, s.top_k});                         // [N, k]
  moetb::RouteContext ctx;
  ctx.training = true;
  for (auto _ : state) {
    const moetb::RoutingDecision d = layer->route(x, ctx);
    d.weights.mul(g).sum().add(d.aux_loss).backward();
    x.mutable_grad().reset();
    layer->router_weight.mutable_grad().reset();
    layer->router().end_step();
  }
  state.counters["tokens_per_s"] = benchmark::Counter(static_cast<double>(N * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Routing)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  moetb::tune_malloc_for_training();  // as moetb-torch does: the step's buffers stay mapped
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
