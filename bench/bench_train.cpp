// Google Benchmark: the training step of `moetb train` (models/train_step.h: forward,
// cross-entropy + router aux losses, backward, clipping, AdamW, lr schedule, a fresh batch
// each step) at the default shape and a larger one, and single-core sgemm (the machine's
// limit). The Python eager peer (bench/peer_train.py) trains the same model on the same
// batches; bench/train_side_by_side.py runs both in one run (docs/performance.md).
// Model FLOPs per token: 6 N_active + 12 L S D (PaLM's count, arXiv 2204.02311, App. B).
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <benchmark/benchmark.h>

#include <cmath>
#include <vector>

#include "bench/bench_threads.h"
#include "common/machine_info.h"
#include "models/train_step.h"

namespace {

struct Shape {
  const char* name;
  int64_t vocab, d_model, layers, heads, experts, top_k, d_ff, seq, batch;
};
constexpr Shape kShapes[] = {{"default", 241, 128, 2, 4, 8, 2, 128, 128, 16},
                             {"large", 241, 256, 4, 4, 16, 2, 256, 256, 16}};

using moetb_bench::bench_threads;
using moetb_bench::set_threads;

double flops_per_token(const Shape& s) {
  const double D = static_cast<double>(s.d_model);
  const double per_layer = 4.0 * D * D + static_cast<double>(s.experts) * D +
                           static_cast<double>(s.top_k * 3 * s.d_ff) * D;  // qkv + out, router, k active experts
  const double n_active = static_cast<double>(s.layers) * per_layer + static_cast<double>(s.vocab) * D;  // + LM head
  return 6.0 * n_active + 12.0 * static_cast<double>(s.layers * s.seq) * D;
}

double lr_at(int64_t step) {  // the trainer's schedule with its defaults: 20 warmup steps, cosine to 0.1 lr over 200
  const double lr = 3e-3;
  if (step <= 20) return lr * static_cast<double>(step) / 20.0;
  const double t = std::min(1.0, static_cast<double>(step - 20) / 180.0);
  return 0.1 * lr + 0.5 * 0.9 * lr * (1.0 + std::cos(M_PI * t));
}

void BM_TrainStep(benchmark::State& state) {
  const Shape& s = kShapes[state.range(0)];
  set_threads(bench_threads());
  at::manual_seed(1);
  moetb::ModelConfig mc;
  mc.vocab_size = s.vocab;
  mc.max_seq_len = s.seq;
  mc.d_model = s.d_model;
  mc.n_layers = s.layers;
  mc.n_heads = s.heads;
  mc.moe.n_experts = s.experts;
  mc.moe.top_k = s.top_k;
  mc.moe.d_ff = s.d_ff;
  moetb::MoETransformer model(mc);  // topk router, balance 0.01, z-loss 0.001 (the defaults)
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(3e-3).betas({0.9, 0.95}).weight_decay(0.1));
  // The same batches as peer_train.py: torch.Generator().manual_seed(1), randint per step.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  std::vector<at::Tensor> batches;
  for (int i = 0; i < 64; ++i) batches.push_back(at::randint(s.vocab, {s.batch, s.seq}, gen, at::kLong));  // [B, S]
  const std::vector<at::Tensor> params = model->parameters();
  int64_t step = 0;
  double loss = 0.0;
  for (auto _ : state) {
    ++step;
    moetb::zero_grads(params);
    const at::Tensor& tokens = batches[static_cast<std::size_t>(step - 1) % batches.size()];
    const moetb::MicroStep m = moetb::forward_backward(*model, tokens, at::Tensor(), 1);
    moetb::optimizer_step(opt, params, lr_at(step), 1.0);
    for (moetb::Router* r : model->routers()) r->end_step();
    loss = m.loss;
  }
  const double tokens = static_cast<double>(state.iterations() * s.batch * s.seq);
  state.counters["tokens_per_s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  state.counters["model_GFLOP/s"] = benchmark::Counter(tokens * flops_per_token(s) * 1e-9, benchmark::Counter::kIsRate);
  state.counters["MFLOP_per_token"] = flops_per_token(s) * 1e-6;
  state.counters["final_loss"] = loss;
  state.SetLabel(s.name);
}
BENCHMARK(BM_TrainStep)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// One sgemm of n x n x n on one thread through at::mm (the same BLAS and kernel).
void BM_Sgemm(benchmark::State& state) {
  set_threads(1);
  const int64_t n = state.range(0);
  const at::Tensor a = at::randn({n, n}), b = at::randn({n, n});
  for (auto _ : state) benchmark::DoNotOptimize(at::mm(a, b));
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(n * n * n) * static_cast<double>(state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Sgemm)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  moetb::tune_malloc_for_training();  // as moetb-torch does
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
