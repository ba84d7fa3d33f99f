// One synthetic domain as a unifilar source: a finite automaton whose state is a
// function of the tokens seen so far (the last `order` free tokens, or the position
// inside a planted motif) and which emits each next token with known probabilities.
// Because the state is recoverable from the history, the entropy rate of the token
// process is exactly sum_s pi(s) H(row s), the best loss any model can reach
// (the "known ground truth" of the MoE Routing Testbed's data mix, arXiv 2604.07030).
#pragma once
#include <cstdint>
#include <vector>

#include "common/rng.h"

namespace moetb {

struct SourceSpec {
  int64_t vocab = 64;            // V free symbols, local ids [0, V); markers are V + m
  int64_t order = 1;             // free context = last `order` free symbols
  int64_t branching = 4;         // successors per context
  double transition_zipf = 1.0;  // successor k (random rank) has weight (k+1)^-s
  double common_mix = 0.0;       // lambda: row = (1-lambda) own + lambda common
  int64_t n_motifs = 0;
  int64_t motif_len_min = 3;     // marker + body, >= 3
  int64_t motif_len_max = 8;
  double motif_rate = 0.0;       // P(a motif starts) at each free step
};

struct SourceOutcome {
  uint32_t next_state;
  uint32_t symbol;  // local: [0, V) free symbol, V + m the marker of motif m
  int32_t motif;    // local motif index for marker and body emissions, -1 otherwise
};

class MarkovSource {
 public:
  // `own_seed` draws this domain's structure and motifs; `common_seed` the structure
  // shared by every domain (used when common_mix > 0).
  MarkovSource(const SourceSpec& spec, uint64_t own_seed, uint64_t common_seed);

  const SourceSpec& spec() const { return spec_; }
  int64_t n_states() const { return static_cast<int64_t>(row_begin_.size()) - 1; }
  int64_t n_free_contexts() const { return n_free_contexts_; }
  double entropy_rate_bits() const { return entropy_rate_bits_; }
  const std::vector<double>& stationary() const { return stationary_; }
  // motifs()[m] = local symbols of motif m, marker first.
  const std::vector<std::vector<uint32_t>>& motifs() const { return motifs_; }
  // Outcomes of a state's row and their exact probabilities (for tests and -log p).
  uint32_t row_begin(uint32_t state) const { return row_begin_[state]; }
  uint32_t row_end(uint32_t state) const { return row_begin_[state + 1]; }
  const SourceOutcome& outcome(uint32_t i) const { return outcomes_[i]; }
  double probability(uint32_t i) const { return probs_[i]; }

  uint32_t sample_start(Rng& rng) const;  // a state drawn from the stationary distribution
  // One emission from `state`, distributed as that state's row. The hot path of data
  // generation: a motif coin at free contexts, then one alias draw from a packed row
  // (16-byte entries, a row of 4 successors is one cache line).
  SourceOutcome step(uint32_t state, Rng& rng) const {
    if (state < n_free_contexts_ && motif_threshold_ != 0) {
      const uint64_t x = rng.next();
      if (static_cast<uint32_t>(x) < motif_threshold_) {
        const auto m = static_cast<uint32_t>(((x >> 32) * motif_state_.size()) >> 32);
        return {motif_state_[m], static_cast<uint32_t>(spec_.vocab) + m, static_cast<int32_t>(m)};
      }
    }
    const uint32_t b = sample_begin_[state];
    const uint32_t n = sample_begin_[state + 1] - b;
    const SamplerEntry* e = &sample_entries_[b];
    if (n > 1) {
      const uint64_t x = rng.next();
      auto column = static_cast<uint32_t>(((x >> 32) * n) >> 32);
      if (static_cast<uint32_t>(x) >= e[column].threshold) column = e[column].alias;
      e += column;
    }
    return {e->next_state, e->symbol, e->motif};
  }

 private:
  void build(uint64_t own_seed, uint64_t common_seed);
  void solve_stationary();

  SourceSpec spec_;
  uint32_t n_free_contexts_ = 0;
  std::vector<uint32_t> row_begin_;          // [n_states + 1]
  std::vector<SourceOutcome> outcomes_;      // CSR rows
  std::vector<double> probs_;                // [n_outcomes]
  struct SamplerEntry {  // one free successor (or the single motif step) with its alias column
    uint32_t threshold;   // P(keep this column) in 1/2^32 units
    uint32_t next_state;
    uint32_t symbol;
    uint16_t alias;
    int16_t motif;
  };
  std::vector<uint32_t> sample_begin_;          // [n_states + 1]
  std::vector<SamplerEntry> sample_entries_;    // rows without the motif markers
  std::vector<uint32_t> motif_state_;           // [M] first state of each motif
  uint32_t motif_threshold_ = 0;                // P(a motif starts) in 1/2^32 units
  std::vector<double> stationary_;           // [n_states]
  std::vector<uint32_t> start_thresholds_, start_aliases_;
  std::vector<std::vector<uint32_t>> motifs_;
  double entropy_rate_bits_ = 0.0;
};

}  // namespace moetb
