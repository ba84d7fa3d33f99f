// The synthetic domains' Markov sources (datagen/markov_source.h): the analytic entropy
// rate equals closed forms (log2 branching; a renewal formula with motifs), an independent
// stationary solve (Gaussian elimination on the free-context chain and on the full chain)
// and a long-run empirical average of -log2 p with a batch-means error; rows follow the
// spec, and the stationary vector solves pi P = pi.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <vector>

#include "datagen/alias_table.h"
#include "datagen/markov_source.h"

using namespace moetb;

namespace {

using Matrix = std::vector<std::vector<double>>;

// Solves x K = x, sum x = 1 for a row-stochastic K by Gaussian elimination with partial
// pivoting on (K^T - I) with the last equation replaced by the normalisation.
std::vector<double> solve_stationary_dense(const Matrix& K) {
  const std::size_t n = K.size();
  Matrix A(n, std::vector<double>(n + 1, 0.0));
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) A[i][j] = K[j][i] - (i == j ? 1.0 : 0.0);
  for (std::size_t j = 0; j <= n; ++j) A[n - 1][j] = 1.0;  // sum x = 1
  for (std::size_t c = 0; c < n; ++c) {
    std::size_t p = c;
    for (std::size_t r = c + 1; r < n; ++r)
      if (std::fabs(A[r][c]) > std::fabs(A[p][c])) p = r;
    std::swap(A[c], A[p]);
    REQUIRE(std::fabs(A[c][c]) > 1e-300);
    for (std::size_t r = 0; r < n; ++r) {
      if (r == c || A[r][c] == 0.0) continue;
      const double f = A[r][c] / A[c][c];
      for (std::size_t j = c; j <= n; ++j) A[r][j] -= f * A[c][j];
    }
  }
  std::vector<double> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = A[i][n] / A[i][i];
  return x;
}

double entropy_bits(const std::vector<double>& p) {
  double h = 0.0;
  for (double x : p)
    if (x > 0.0) h -= x * std::log2(x);
  return h;
}

// The source's full transition matrix over its states, from its rows.
Matrix dense_transitions(const MarkovSource& src) {
  const auto n = static_cast<std::size_t>(src.n_states());
  Matrix P(n, std::vector<double>(n, 0.0));
  for (uint32_t s = 0; s < n; ++s)
    for (uint32_t i = src.row_begin(s); i < src.row_end(s); ++i) P[s][src.outcome(i).next_state] += src.probability(i);
  return P;
}

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

// max over s' of |sum_s pi(s) P(s -> s') - pi(s')|
double stationarity_residual(const MarkovSource& src) {
  const std::vector<double>& pi = src.stationary();
  std::vector<double> next(pi.size(), 0.0);
  for (uint32_t s = 0; s < pi.size(); ++s)
    for (uint32_t i = src.row_begin(s); i < src.row_end(s); ++i) next[src.outcome(i).next_state] += pi[s] * src.probability(i);
  double worst = 0.0;
  for (std::size_t s = 0; s < pi.size(); ++s) worst = std::max(worst, std::fabs(next[s] - pi[s]));
  return worst;
}

}  // namespace

TEST_CASE("datagen: uniform successors give exactly log2 branching", "[datagen]") {
  for (int64_t order : {1, 2})
    for (int64_t b : {2, 3, 5, 8}) {
      const MarkovSource src(spec_of(order == 1 ? 24 : 10, order, b, 0.0, 0.0, 0, 0.0), 11 + b, 99);
      INFO("order " << order << ", branching " << b);
      CHECK(src.n_states() == (order == 1 ? 24 : 100));
      CHECK(std::fabs(src.entropy_rate_bits() - std::log2(static_cast<double>(b))) < 1e-12);
    }
}

TEST_CASE("datagen: with motifs and no common_mix the rate has a closed form", "[datagen]") {
  // Every free row holds the same probabilities (motif starts r/M, then the Zipf weights
  // times 1 - r) and motif states are deterministic; each free step emits 1 - r + r Lbar
  // tokens on average, so H = H(free row) / (1 - r + r Lbar) whatever the stationary law.
  for (int64_t order : {1, 2})
    for (double zipf : {0.0, 1.0, 2.5}) {
      const int64_t b = 5, M = 6;
      const double r = 0.07;
      const MarkovSource src(spec_of(order == 1 ? 20 : 9, order, b, zipf, 0.0, M, r), 40 + order, 41);
      std::vector<double> row(static_cast<std::size_t>(M), r / M);
      double wsum = 0.0, lbar = 0.0;
      for (int64_t k = 0; k < b; ++k) wsum += std::pow(static_cast<double>(k + 1), -zipf);
      for (int64_t k = 0; k < b; ++k) row.push_back((1.0 - r) * std::pow(static_cast<double>(k + 1), -zipf) / wsum);
      for (const auto& mo : src.motifs()) lbar += static_cast<double>(mo.size()) / M;
      INFO("order " << order << ", zipf " << zipf);
      CHECK(std::fabs(src.entropy_rate_bits() - entropy_bits(row) / (1.0 - r + r * lbar)) < 1e-12);
    }
}

TEST_CASE("datagen: rows follow the spec and the motif rate matches an independent renewal solve", "[datagen]") {
  const int64_t V = 12, b = 3, M = 3;
  const double r = 0.1, zipf = 1.3;
  const MarkovSource src(spec_of(V, 1, b, zipf, 0.0, M, r), 7, 8);
  // Zipf weights of the successors, largest first.
  std::vector<double> w(b);
  double wsum = 0.0;
  for (int64_t k = 0; k < b; ++k) wsum += w[k] = std::pow(static_cast<double>(k + 1), -zipf);
  for (double& x : w) x /= wsum;

  REQUIRE(src.motifs().size() == static_cast<std::size_t>(M));
  int64_t motif_states = 0;
  double mean_len = 0.0;
  for (int64_t m = 0; m < M; ++m) {
    const auto& mo = src.motifs()[m];
    CHECK(mo.front() == static_cast<uint32_t>(V + m));
    CHECK(mo.size() >= 3);
    CHECK(mo.size() <= 6);
    for (std::size_t i = 1; i < mo.size(); ++i) CHECK(mo[i] < static_cast<uint32_t>(V));
    motif_states += static_cast<int64_t>(mo.size()) - 1;
    mean_len += static_cast<double>(mo.size()) / M;
  }
  REQUIRE(src.n_states() == V + motif_states);

  Matrix K(V, std::vector<double>(V, 0.0));  // embedded chain over free contexts
  std::vector<double> H(V);                  // entropy of each free context's full row
  for (uint32_t c = 0; c < static_cast<uint32_t>(V); ++c) {
    INFO("context " << c);
    std::vector<double> row, free_p;
    std::map<uint32_t, double> q;
    for (uint32_t i = src.row_begin(c); i < src.row_end(c); ++i) {
      const SourceOutcome& o = src.outcome(i);
      const double p = src.probability(i);
      row.push_back(p);
      if (o.symbol >= static_cast<uint32_t>(V)) {  // a motif start: marker, then the body deterministically
        const auto m = o.symbol - static_cast<uint32_t>(V);
        CHECK(o.motif == static_cast<int32_t>(m));
        CHECK(p == Approx(r / M).epsilon(1e-15));
        const auto& mo = src.motifs()[m];
        uint32_t s = o.next_state;
        for (std::size_t k = 1; k < mo.size(); ++k) {
          REQUIRE(src.row_end(s) - src.row_begin(s) == 1);
          const SourceOutcome& body = src.outcome(src.row_begin(s));
          CHECK(src.probability(src.row_begin(s)) == 1.0);
          CHECK(body.symbol == mo[k]);
          CHECK(body.motif == static_cast<int32_t>(m));
          s = body.next_state;
        }
        CHECK(s == mo.back());  // order 1: back to the free context of the last body token
        K[c][mo.back()] += p;
      } else {
        CHECK(o.motif == -1);
        CHECK(o.next_state == o.symbol);
        CHECK(q.count(o.symbol) == 0);  // unifilar: one outcome per symbol
        q[o.symbol] = p / (1.0 - r);
        free_p.push_back(p / (1.0 - r));
        K[c][o.symbol] += p;
      }
    }
    CHECK(q.size() == static_cast<std::size_t>(b));
    CHECK(q.count(static_cast<uint32_t>((c + 1) % V)) == 1);
    if (c == 0) CHECK(q.count(0) == 1);
    std::sort(free_p.rbegin(), free_p.rend());
    for (int64_t k = 0; k < b; ++k) CHECK(free_p[k] == Approx(w[k]).epsilon(1e-12));
    H[c] = entropy_bits(row);
  }
  // Markov renewal: each free step emits 1 token (prob 1 - r) or a whole motif; the body
  // emissions are deterministic, so the rate is E_mu[H(row)] / E[tokens per free step].
  const std::vector<double> mu = solve_stationary_dense(K);
  double h = 0.0;
  for (int64_t c = 0; c < V; ++c) h += mu[c] * H[c];
  const double rate = h / (1.0 - r + r * mean_len);
  CHECK(std::fabs(src.entropy_rate_bits() - rate) < 1e-11);
  // The same chain's mass on free contexts, renormalised, is mu.
  double free_mass = 0.0;
  for (int64_t c = 0; c < V; ++c) free_mass += src.stationary()[c];
  for (int64_t c = 0; c < V; ++c) CHECK(std::fabs(src.stationary()[c] / free_mass - mu[c]) < 1e-11);
}

TEST_CASE("datagen: a dense stationary solve agrees with the source for order 2 with motifs and common_mix", "[datagen]") {
  const MarkovSource src(spec_of(7, 2, 3, 0.8, 0.4, 4, 0.07), 21, 22);
  const std::vector<double> pi = solve_stationary_dense(dense_transitions(src));
  REQUIRE(pi.size() == src.stationary().size());
  double rate = 0.0;
  for (uint32_t s = 0; s < pi.size(); ++s) {
    CHECK(std::fabs(pi[s] - src.stationary()[s]) < 1e-11);
    std::vector<double> row;
    for (uint32_t i = src.row_begin(s); i < src.row_end(s); ++i) row.push_back(src.probability(i));
    rate += pi[s] * entropy_bits(row);
  }
  CHECK(std::fabs(src.entropy_rate_bits() - rate) < 1e-11);
  // Mixing with a common structure merges supports: rows hold more than `branching` successors.
  std::size_t widest = 0;
  for (uint32_t c = 0; c < 49; ++c) widest = std::max<std::size_t>(widest, src.row_end(c) - src.row_begin(c));
  CHECK(widest > 3 + 4);
}

TEST_CASE("datagen: the stationary vector solves pi P = pi", "[datagen]") {
  const std::vector<SourceSpec> specs = {
      spec_of(16, 1, 4, 1.0, 0.0, 0, 0.0),   spec_of(16, 2, 4, 1.0, 0.0, 0, 0.0),
      spec_of(32, 1, 5, 1.5, 0.5, 0, 0.0),   spec_of(12, 2, 3, 0.7, 0.3, 0, 0.0),
      spec_of(24, 1, 4, 1.0, 0.2, 6, 0.05),  spec_of(9, 2, 4, 2.0, 0.6, 5, 0.2),
  };
  for (std::size_t k = 0; k < specs.size(); ++k) {
    INFO("spec " << k);
    const MarkovSource src(specs[k], 100 + k, 200);
    double sum = 0.0;
    for (double p : src.stationary()) {
      CHECK(p >= 0.0);
      sum += p;
    }
    CHECK(std::fabs(sum - 1.0) < 1e-12);
    CHECK(stationarity_residual(src) < 1e-12);
    for (uint32_t s = 0; s < static_cast<uint32_t>(src.n_states()); ++s) {  // rows are distributions
      double row = 0.0;
      for (uint32_t i = src.row_begin(s); i < src.row_end(s); ++i) row += src.probability(i);
      CHECK(std::fabs(row - 1.0) < 1e-12);
    }
  }
}

namespace {

// The exact probability of an emitted outcome: the row entry with its symbol (unifilar:
// one per symbol), which must also agree on the next state and motif; -1 when none does.
// (Plain code, no assertion macros: it runs once per sampled token.)
double probability_of(const MarkovSource& src, uint32_t state, const SourceOutcome& o) {
  for (uint32_t i = src.row_begin(state); i < src.row_end(state); ++i) {
    const SourceOutcome& e = src.outcome(i);
    if (e.symbol == o.symbol) return e.next_state == o.next_state && e.motif == o.motif ? src.probability(i) : -1.0;
  }
  return -1.0;
}

struct Walk {
  double mean = 0.0, se = 0.0;
  int64_t bad = 0;  // emissions that are not in the state's row (or have probability 0)
  std::vector<std::vector<int64_t>> pairs;  // [previous symbol][symbol], order 1 without motifs
};

// Walks `steps` emissions from a stationary start; the mean of -log2 p(outcome | state)
// with a batch-means standard error (100 batches).
Walk walk(const MarkovSource& src, int64_t steps, uint64_t seed, bool count_pairs) {
  const int batches = 100;
  const int64_t per = steps / batches;
  Rng rng(seed);
  uint32_t state = src.sample_start(rng);
  Walk w;
  if (count_pairs) w.pairs.assign(src.spec().vocab, std::vector<int64_t>(src.spec().vocab, 0));
  std::vector<double> means;
  for (int b = 0; b < batches; ++b) {
    double sum = 0.0;
    for (int64_t t = 0; t < per; ++t) {
      const SourceOutcome o = src.step(state, rng);
      const double p = probability_of(src, state, o);
      if (!(p > 0.0)) {
        w.bad += 1;
        continue;
      }
      sum -= std::log2(p);
      if (count_pairs) w.pairs[state][o.symbol] += 1;  // the state is the previous symbol
      state = o.next_state;
    }
    means.push_back(sum / static_cast<double>(per));
  }
  for (double m : means) w.mean += m / batches;
  double var = 0.0;
  for (double m : means) var += (m - w.mean) * (m - w.mean) / (batches - 1);
  w.se = std::sqrt(var / batches);
  return w;
}

}  // namespace

TEST_CASE("datagen: the analytic entropy rate matches a long-run empirical estimate", "[datagen]") {
  struct Case {
    SourceSpec spec;
    int64_t steps;
  };
  const std::vector<Case> cases = {
      {spec_of(32, 1, 4, 1.0, 0.0, 0, 0.0), 1000000},     // plain order 1 (also the plug-in check)
      {spec_of(32, 1, 6, 1.2, 0.3, 8, 0.05), 500000},    // motifs and a common structure
      {spec_of(12, 2, 4, 0.9, 0.0, 4, 0.08), 500000},    // order 2 with motifs
  };
  for (std::size_t k = 0; k < cases.size(); ++k) {
    const MarkovSource src(cases[k].spec, 300 + k, 400);
    const bool plain = cases[k].spec.order == 1 && cases[k].spec.n_motifs == 0;
    const Walk w = walk(src, cases[k].steps, 500 + k, plain);
    INFO("case " << k << ": rate " << src.entropy_rate_bits() << ", empirical " << w.mean << " +- " << w.se);
    CHECK(w.bad == 0);
    CHECK(w.se > 0.0);
    CHECK(std::fabs(w.mean - src.entropy_rate_bits()) < 5.0 * w.se);
    CHECK(std::fabs(w.mean - src.entropy_rate_bits()) < 0.01);
    if (plain) {  // plug-in H(x_t | x_t-1) = H(pairs) - H(previous)
      double h_pairs = 0.0, h_prev = 0.0, n = 0.0;
      for (const auto& row : w.pairs)
        for (int64_t c : row) n += static_cast<double>(c);
      for (const auto& row : w.pairs) {
        double r = 0.0;
        for (int64_t c : row) {
          r += static_cast<double>(c);
          const double x = static_cast<double>(c) / n;
          if (c > 0) h_pairs -= x * std::log2(x);
        }
        if (r > 0) h_prev -= r / n * std::log2(r / n);
      }
      INFO("plug-in " << h_pairs - h_prev);
      CHECK(std::fabs(h_pairs - h_prev - src.entropy_rate_bits()) < 0.01);
    }
  }
}
