// Google Benchmark: synthetic data generation speed (tokens per second per core), the
// issue's target being 10 M tokens/s. Measures the producer filling in-memory chunks
// (sampling + ground truth, no disk), the alias sampler alone, and building the sources.
#include <benchmark/benchmark.h>

#include "datagen/synthetic_corpus.h"

namespace {

moetb::DatagenConfig bench_config(int64_t order, int64_t vocab) {
  moetb::DatagenConfig cfg;
  cfg.order = order;
  cfg.vocab_per_domain = vocab;
  cfg.train_tokens = int64_t{1} << 40;  // the producer never runs dry inside the benchmark
  cfg.seq_len = 1024;
  return cfg;
}

void BM_GenerateTokens(benchmark::State& state) {
  const moetb::SyntheticCorpus corpus(bench_config(state.range(0), state.range(1)));
  auto producer = corpus.producer(moetb::Split::kTrain);
  const int64_t n_seq = 256;  // 256 K tokens per fill
  moetb::TokenChunk chunk;
  chunk.resize(static_cast<std::size_t>(n_seq * corpus.config().seq_len));
  std::vector<moetb::DocumentRecord> docs;
  for (auto _ : state) {
    producer->fill(n_seq, chunk, docs);
    docs.clear();
    benchmark::DoNotOptimize(chunk.tokens.data());
  }
  state.SetItemsProcessed(state.iterations() * n_seq * corpus.config().seq_len);
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations() * n_seq * corpus.config().seq_len),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_GenerateTokens)->Args({1, 64})->Args({1, 1024})->Args({2, 64})->Args({2, 256})->Unit(benchmark::kMillisecond);

void BM_BuildSources(benchmark::State& state) {
  const moetb::DatagenConfig cfg = bench_config(state.range(0), state.range(1));
  for (auto _ : state) {
    const moetb::SyntheticCorpus corpus(cfg);
    benchmark::DoNotOptimize(corpus.source(0).entropy_rate_bits());
  }
}
BENCHMARK(BM_BuildSources)->Args({1, 64})->Args({2, 64})->Args({2, 256})->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
