// Sampling in datagen/: Walker alias tables (alone and several rows in one buffer),
// MarkovSource::step (each row's outcomes with their exact probabilities, motif coin
// included) and sample_start (the stationary law), all against 5-sigma binomial bounds;
// and structure that depends only on the seeds.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <tuple>
#include <vector>

#include "datagen/alias_table.h"
#include "datagen/markov_source.h"

using namespace moetb;

namespace {

SourceSpec spec_of(int64_t V, int64_t order, int64_t b, double zipf, double mix, int64_t M, double rate) {
  SourceSpec s;
  s.vocab = V;
  s.order = order;
  s.branching = b;
  s.transition_zipf = zipf;
  s.common_mix = mix;
  s.n_motifs = M;
  s.motif_len_min = 3;
  s.motif_len_max = 6;
  s.motif_rate = rate;
  return s;
}

// The exact probability of an emitted outcome (the row entry with its symbol, agreeing on
// next state and motif), or -1 when there is none. No assertion macros: runs per draw.
double probability_of(const MarkovSource& src, uint32_t state, const SourceOutcome& o) {
  for (uint32_t i = src.row_begin(state); i < src.row_end(state); ++i) {
    const SourceOutcome& e = src.outcome(i);
    if (e.symbol == o.symbol) return e.next_state == o.next_state && e.motif == o.motif ? src.probability(i) : -1.0;
  }
  return -1.0;
}

}  // namespace

TEST_CASE("datagen: alias tables sample their probabilities", "[datagen]") {
  const std::vector<double> weights = {8, 4, 3, 2, 2, 1, 0, 0.02, 0.5};
  double total = 0.0;
  for (double x : weights) total += x;
  // Two tables in one buffer (as the sources store their rows): sample the second.
  std::vector<uint32_t> thr, ali;
  build_alias(std::vector<double>{1, 1, 1, 1, 1, 1, 1}.data(), 7, thr, ali);
  build_alias(weights.data(), static_cast<uint32_t>(weights.size()), thr, ali);
  REQUIRE(thr.size() == 7 + weights.size());
  const AliasTable uniform7(std::vector<double>(7, 1.0));
  const int64_t N = 1000000;
  const auto Nd = static_cast<double>(N);
  Rng rng(42);
  std::vector<int64_t> counts(weights.size(), 0), counts7(7, 0);
  for (int64_t i = 0; i < N; ++i) {
    const uint32_t x = sample_alias(thr.data() + 7, ali.data() + 7, static_cast<uint32_t>(weights.size()), rng);
    if (x < weights.size()) counts[x] += 1;
    counts7[uniform7.sample(rng)] += 1;
  }
  int64_t drawn = 0;
  for (int64_t c : counts) drawn += c;
  CHECK(drawn == N);  // every draw in range
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const double p = weights[i] / total;
    INFO("outcome " << i << ": p " << p << ", count " << counts[i]);
    CHECK(std::fabs(static_cast<double>(counts[i]) - Nd * p) <= 5.0 * std::sqrt(Nd * p * (1.0 - p)) + 1.0);
  }
  CHECK(counts[6] == 0);  // zero weight: never drawn
  for (int64_t c : counts7) CHECK(std::fabs(static_cast<double>(c) - Nd / 7.0) <= 5.0 * std::sqrt(Nd / 7.0 * 6.0 / 7.0));
  const AliasTable one({3.0});
  for (int i = 0; i < 100; ++i) CHECK(one.sample(rng) == 0);
  CHECK_THROWS_AS(AliasTable(std::vector<double>{}), std::invalid_argument);
  CHECK_THROWS_AS(AliasTable(std::vector<double>{0.0, 0.0}), std::invalid_argument);
}

TEST_CASE("datagen: step draws each row's outcomes with their probabilities", "[datagen]") {
  const MarkovSource src(spec_of(9, 1, 4, 1.5, 0.5, 3, 0.2), 31, 32);
  const int64_t N = 200000;
  Rng rng(77);
  for (uint32_t state : {0u, 4u, static_cast<uint32_t>(src.n_states() - 1)}) {
    std::map<uint32_t, int64_t> counts;  // by symbol
    int64_t bad = 0;
    for (int64_t k = 0; k < N; ++k) {
      const SourceOutcome o = src.step(state, rng);
      bad += probability_of(src, state, o) > 0.0 ? 0 : 1;  // one of the row's outcomes, consistent
      counts[o.symbol] += 1;
    }
    CHECK(bad == 0);
    for (uint32_t i = src.row_begin(state); i < src.row_end(state); ++i) {
      const double p = src.probability(i);
      const auto c = static_cast<double>(counts[src.outcome(i).symbol]);
      INFO("state " << state << ", symbol " << src.outcome(i).symbol << ": p " << p << ", count " << c);
      CHECK(std::fabs(c - static_cast<double>(N) * p) <= 5.0 * std::sqrt(static_cast<double>(N) * p * (1.0 - p)) + 1.0);
    }
  }
}

TEST_CASE("datagen: start states follow the stationary distribution and structure is seeded", "[datagen]") {
  const MarkovSource src(spec_of(10, 1, 3, 1.0, 0.0, 2, 0.1), 5, 6);
  const int64_t N = 400000;
  const auto Nd = static_cast<double>(N);
  Rng rng(9);
  std::vector<int64_t> counts(static_cast<std::size_t>(src.n_states()), 0);
  for (int64_t i = 0; i < N; ++i) counts[src.sample_start(rng)] += 1;
  for (std::size_t s = 0; s < counts.size(); ++s) {
    const double p = src.stationary()[s];
    INFO("state " << s);
    CHECK(std::fabs(static_cast<double>(counts[s]) - Nd * p) <= 5.0 * std::sqrt(Nd * p * (1.0 - p)) + 1.0);
  }
  // Same seeds: same rows; another own seed: other rows.
  auto rows = [](const MarkovSource& s) {
    std::vector<std::tuple<uint32_t, uint32_t, double>> out;
    for (uint32_t i = 0; i < s.row_end(static_cast<uint32_t>(s.n_states() - 1)); ++i)
      out.emplace_back(s.outcome(i).symbol, s.outcome(i).next_state, s.probability(i));
    return out;
  };
  CHECK(rows(src) == rows(MarkovSource(src.spec(), 5, 6)));
  CHECK(rows(src) != rows(MarkovSource(src.spec(), 55, 6)));
  CHECK_THROWS_AS(MarkovSource(spec_of(10, 3, 3, 1.0, 0.0, 0, 0.0), 1, 2), std::invalid_argument);
  CHECK_THROWS_AS(MarkovSource(spec_of(4, 1, 5, 1.0, 0.0, 0, 0.0), 1, 2), std::invalid_argument);
}
