// MarkovSource (markov_source.h): builds the automaton, its alias tables, and solves
// for the stationary distribution, from which the exact entropy rate follows.
#include "datagen/markov_source.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>

#include "datagen/alias_table.h"

namespace moetb {
namespace {

using Row = std::vector<std::pair<uint32_t, double>>;  // (free symbol, probability)

// Sparse random transition rows over the V^order free contexts. Every row holds the
// successor (last + 1) mod V, so all contexts reach one cycle (one recurrent class),
// and context ...0 also holds 0, a self-loop that makes the chain aperiodic.
std::vector<Row> random_rows(const SourceSpec& sp, uint64_t seed) {
  const auto V = static_cast<uint32_t>(sp.vocab);
  const uint64_t n_ctx = sp.order == 1 ? V : uint64_t{V} * V;
  const auto b = static_cast<std::size_t>(sp.branching);
  Rng rng(seed);
  std::vector<Row> rows(n_ctx);
  std::vector<uint32_t> succ;
  std::vector<double> weight(b);
  double total = 0.0;
  for (std::size_t k = 0; k < b; ++k) total += weight[k] = std::pow(static_cast<double>(k + 1), -sp.transition_zipf);
  for (uint64_t c = 0; c < n_ctx; ++c) {
    const auto last = static_cast<uint32_t>(c % V);
    succ.assign(1, (last + 1) % V);
    if (last == 0 && b >= 2) succ.push_back(0);
    while (succ.size() < b) {
      const auto j = static_cast<uint32_t>(rng.below(V));
      if (std::find(succ.begin(), succ.end(), j) == succ.end()) succ.push_back(j);
    }
    for (std::size_t i = succ.size() - 1; i > 0; --i) std::swap(succ[i], succ[rng.below(i + 1)]);  // random ranks
    Row& row = rows[c];
    for (std::size_t k = 0; k < b; ++k) row.emplace_back(succ[k], weight[k] / total);
  }
  return rows;
}

double entropy_bits(const double* p, uint32_t n) {
  double h = 0.0;
  for (uint32_t i = 0; i < n; ++i)
    if (p[i] > 0.0) h -= p[i] * std::log2(p[i]);
  return h;
}

}  // namespace

MarkovSource::MarkovSource(const SourceSpec& spec, uint64_t own_seed, uint64_t common_seed) : spec_(spec) {
  if (spec.vocab < 2 || spec.vocab > (1 << 20) || spec.order < 1 || spec.order > 2 || spec.branching < 2 ||
      spec.branching > std::min<int64_t>(spec.vocab, 1024) || spec.n_motifs < 0 || spec.n_motifs > 256)
    throw std::invalid_argument("markov source: need 2 <= vocab <= 2^20, order 1 or 2, 2 <= branching <= min(vocab, 1024), <= 256 motifs");
  if (spec.n_motifs > 0 && (spec.motif_len_min < 3 || spec.motif_len_max < spec.motif_len_min))
    throw std::invalid_argument("markov source: motif lengths must satisfy 3 <= min <= max");
  build(own_seed, common_seed);
  solve_stationary();
}

void MarkovSource::build(uint64_t own_seed, uint64_t common_seed) {
  const auto V = static_cast<uint32_t>(spec_.vocab);
  const double lambda = spec_.common_mix;
  std::vector<Row> own = random_rows(spec_, own_seed);
  if (lambda > 0.0) {  // row = (1 - lambda) own + lambda common, supports merged
    const std::vector<Row> common = random_rows(spec_, common_seed);
    for (std::size_t c = 0; c < own.size(); ++c) {
      std::map<uint32_t, double> merged;
      for (const auto& [j, p] : own[c]) merged[j] += (1.0 - lambda) * p;
      for (const auto& [j, p] : common[c]) merged[j] += lambda * p;
      own[c].assign(merged.begin(), merged.end());
    }
  }
  n_free_contexts_ = static_cast<uint32_t>(own.size());

  // Motifs: a marker symbol V + m, then a body of free symbols. The marker makes the
  // position inside the motif a function of the history (the source stays unifilar).
  Rng motif_rng(mix_seed({own_seed, 0x6d6f74696675ull}));
  const auto M = static_cast<uint32_t>(spec_.n_motifs);
  std::vector<uint32_t>& motif_state = motif_state_;  // first state (m, 0) of each motif
  motif_state.resize(M);
  uint64_t n_states = own.size();
  for (uint32_t m = 0; m < M; ++m) {
    const auto len = static_cast<uint32_t>(spec_.motif_len_min +
        static_cast<int64_t>(motif_rng.below(static_cast<uint64_t>(spec_.motif_len_max - spec_.motif_len_min + 1))));
    std::vector<uint32_t> symbols{V + m};
    for (uint32_t i = 1; i < len; ++i) symbols.push_back(static_cast<uint32_t>(motif_rng.below(V)));
    motif_state[m] = static_cast<uint32_t>(n_states);
    n_states += len - 1;  // states after the marker and after each body symbol but the last
    motifs_.push_back(std::move(symbols));
  }
  if (n_states > 0xffffffffull) throw std::invalid_argument("markov source: too many states");

  auto context_after = [&](uint64_t context, uint32_t j) -> uint32_t {
    return static_cast<uint32_t>(spec_.order == 1 ? j : (context % V) * V + j);
  };
  row_begin_.assign(1, 0);
  const double r = M > 0 ? spec_.motif_rate : 0.0;
  for (uint64_t c = 0; c < own.size(); ++c) {
    for (uint32_t m = 0; m < M && r > 0.0; ++m) {
      outcomes_.push_back({motif_state[m], V + m, static_cast<int32_t>(m)});
      probs_.push_back(r / M);
    }
    for (const auto& [j, p] : own[c]) {
      outcomes_.push_back({context_after(c, j), j, -1});
      probs_.push_back((1.0 - r) * p);
    }
    row_begin_.push_back(static_cast<uint32_t>(outcomes_.size()));
  }
  for (uint32_t m = 0; m < M; ++m) {
    const auto& s = motifs_[m];
    const auto n = static_cast<uint32_t>(s.size());
    for (uint32_t p = 0; p + 1 < n; ++p) {  // state (m, p): emits s[p + 1]
      uint32_t next = motif_state[m] + p + 1;
      if (p + 2 == n) next = spec_.order == 1 ? s[n - 1] : s[n - 2] * V + s[n - 1];  // back to free contexts
      outcomes_.push_back({next, s[p + 1], static_cast<int32_t>(m)});
      probs_.push_back(1.0);
      row_begin_.push_back(static_cast<uint32_t>(outcomes_.size()));
    }
  }
  // The sampler: the same rows without the markers (the motif coin comes first in step()).
  std::vector<uint32_t> thresholds, aliases;
  sample_begin_.assign(1, 0);
  for (std::size_t s = 0; s + 1 < row_begin_.size(); ++s) {
    const uint32_t first = row_begin_[s] + (s < n_free_contexts_ && r > 0.0 ? M : 0);
    const uint32_t n = row_begin_[s + 1] - first;
    thresholds.clear();
    aliases.clear();
    build_alias(probs_.data() + first, n, thresholds, aliases);
    for (uint32_t i = 0; i < n; ++i) {
      const SourceOutcome& o = outcomes_[first + i];
      sample_entries_.push_back({thresholds[i], o.next_state, o.symbol, static_cast<uint16_t>(aliases[i]), static_cast<int16_t>(o.motif)});
    }
    sample_begin_.push_back(static_cast<uint32_t>(sample_entries_.size()));
  }
  motif_threshold_ = r > 0.0 ? static_cast<uint32_t>(std::min(4294967295.0, std::round(std::ldexp(r, 32)))) : 0;
}

void MarkovSource::solve_stationary() {
  // Power iteration on the lazy chain (I + P) / 2: same stationary distribution as P,
  // always aperiodic. Stops when the L1 change is at the level of rounding.
  const std::size_t n = row_begin_.size() - 1;
  std::vector<double> pi(n, 1.0 / static_cast<double>(n)), next(n);
  double change = 1.0;
  for (int iter = 0; iter < 200000 && change > 1e-14; ++iter) {
    std::fill(next.begin(), next.end(), 0.0);
    for (std::size_t s = 0; s < n; ++s) {
      const double mass = 0.5 * pi[s];
      next[s] += mass;
      for (uint32_t i = row_begin_[s]; i < row_begin_[s + 1]; ++i) next[outcomes_[i].next_state] += mass * probs_[i];
    }
    double sum = 0.0;
    for (double x : next) sum += x;
    change = 0.0;
    for (std::size_t s = 0; s < n; ++s) {
      next[s] /= sum;
      change += std::fabs(next[s] - pi[s]);
    }
    pi.swap(next);
  }
  if (change > 1e-11)
    throw std::runtime_error("markov source: stationary distribution did not converge (L1 change " + std::to_string(change) + ")");
  stationary_ = pi;
  entropy_rate_bits_ = 0.0;
  for (std::size_t s = 0; s < n; ++s)
    entropy_rate_bits_ += pi[s] * entropy_bits(probs_.data() + row_begin_[s], row_begin_[s + 1] - row_begin_[s]);
  build_alias(stationary_.data(), static_cast<uint32_t>(n), start_thresholds_, start_aliases_);
}

uint32_t MarkovSource::sample_start(Rng& rng) const {
  return sample_alias(start_thresholds_.data(), start_aliases_.data(), static_cast<uint32_t>(start_thresholds_.size()), rng);
}

}  // namespace moetb
