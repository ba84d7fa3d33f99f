// Google Benchmark cases for the per-layer metric kernels (docs/performance.md):
// the streaming layer pass (counts, load, N-gram windows, RSS keys), the RSS table
// radix sort + fold, and the count-matrix formulas (RS, NER, DI, purity).
#include <benchmark/benchmark.h>

#include "metrics/layer_accumulator.h"
#include "metrics/rss_table.h"
#include "metrics/trace_metrics.h"
#include "oracle/planted_simulator.h"

namespace {

moetb::TraceData qwen_like_layer(int64_t tokens) {  // one layer shaped like Qwen3-30B-A3B
  moetb::SimConfig c;
  c.n_experts = 128, c.top_k = 8, c.n_domains = 8, c.n_layers = 1, c.alpha = {0.5};
  c.load_profile = "zipf", c.zipf_s = 1.0, c.beta = 0.2, c.gamma = 0.2, c.vocab_per_domain = 4096;
  c.n_tokens = tokens, c.seed = 1;
  return moetb::simulate_trace(c);
}

void BM_LayerPass(benchmark::State& state) {
  const moetb::TraceData trace = qwen_like_layer(state.range(0));
  const moetb::ShardView shard = trace.shard(0);
  for (auto _ : state) {
    moetb::LayerAccumulator acc(0, 128, 8, 0, 8 * 4096);
    acc.consume(shard);
    benchmark::DoNotOptimize(acc.finish());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));  // token-layers
}
BENCHMARK(BM_LayerPass)->Arg(1 << 16)->Arg(1 << 20)->Unit(benchmark::kMillisecond);

void BM_RadixSortKeys(benchmark::State& state) {
  moetb::Rng rng(5);
  std::vector<uint64_t> keys(static_cast<std::size_t>(state.range(0))), scratch;
  for (auto _ : state) {
    state.PauseTiming();
    for (auto& k : keys) k = rng.below(uint64_t{1} << 23);
    state.ResumeTiming();
    moetb::radix_sort_keys(keys, scratch);
    benchmark::DoNotOptimize(keys.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_RadixSortKeys)->Arg(1 << 20)->Arg(9 << 20)->Unit(benchmark::kMillisecond);

void BM_LayerFormulas(benchmark::State& state) {
  const moetb::TraceData trace = qwen_like_layer(1 << 16);
  moetb::LayerAccumulator acc(0, 128, 8, 0, 8 * 4096);
  acc.consume(trace.shard(0));
  const moetb::LayerStats stats = acc.finish();
  const auto groups = trace.meta_data.reference_groups;
  for (auto _ : state) benchmark::DoNotOptimize(moetb::layer_metrics_from_stats(0, stats, 8, groups));
}
BENCHMARK(BM_LayerFormulas)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
