// SyntheticCorpus (synthetic_corpus.h): token layout, document lengths, and the
// producer that samples documents and packs them into sequences.
#include "datagen/synthetic_corpus.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace moetb {

TokenLayout make_token_layout(const DatagenConfig& cfg) {
  TokenLayout t;
  const int64_t V = cfg.vocab_per_domain, D = cfg.domains, M = cfg.motifs_per_domain;
  t.n_shared = std::llround(cfg.shared_vocab * static_cast<double>(V));
  t.n_private = V - t.n_shared;
  t.marker_base = t.n_shared + D * t.n_private;
  t.vocab_size = t.marker_base + D * M;
  if (cfg.bos) t.bos_token = t.vocab_size++;
  const int64_t limit = cfg.token_dtype == "u16" ? 65536 : int64_t{1} << 32;
  if (t.vocab_size > limit)
    throw std::invalid_argument("token_dtype: a vocabulary of " + std::to_string(t.vocab_size) +
                                " tokens does not fit " + cfg.token_dtype + " (at most " + std::to_string(limit) + ")");
  t.symbol_to_token.assign(D, std::vector<uint32_t>(V + M));
  for (int64_t d = 0; d < D; ++d) {
    for (int64_t j = 0; j < V; ++j)
      t.symbol_to_token[d][j] = static_cast<uint32_t>(j < t.n_shared ? j : t.n_shared + d * t.n_private + (j - t.n_shared));
    for (int64_t m = 0; m < M; ++m) t.symbol_to_token[d][V + m] = static_cast<uint32_t>(t.marker_base + d * M + m);
  }
  return t;
}

int64_t sample_doc_length(const DatagenConfig& cfg, Rng& rng) {
  if (cfg.doc_len_dist == "fixed") return cfg.doc_len_mean;
  // min + a geometric number of extra tokens with mean (mean - min), capped at max.
  const double extra_mean = static_cast<double>(cfg.doc_len_mean - cfg.doc_len_min);
  if (extra_mean <= 0.0) return cfg.doc_len_min;
  const double q = extra_mean / (extra_mean + 1.0);  // P(one more token)
  const double u = 1.0 - rng.uniform();               // (0, 1]
  const double extra = std::floor(std::log(u) / std::log(q));
  return std::min(cfg.doc_len_max, cfg.doc_len_min + static_cast<int64_t>(std::min(extra, 1e15)));
}

SyntheticCorpus::SyntheticCorpus(const DatagenConfig& cfg) : cfg_(cfg) {
  validate_datagen_config(cfg_);
  if (is_text_dataset(cfg_)) throw std::invalid_argument("text_domains: a synthetic corpus takes no text domains");
  layout_ = make_token_layout(cfg_);
  SourceSpec spec;
  spec.vocab = cfg.vocab_per_domain;
  spec.order = cfg.order;
  spec.branching = cfg.branching;
  spec.transition_zipf = cfg.transition_zipf;
  spec.common_mix = cfg.common_mix;
  spec.n_motifs = cfg.motifs_per_domain;
  spec.motif_len_min = cfg.motif_len_min;
  spec.motif_len_max = cfg.motif_len_max;
  spec.motif_rate = cfg.motif_rate;
  const auto seed = static_cast<uint64_t>(cfg.seed);
  const uint64_t common_seed = mix_seed({seed, 0xc0aa0aull});
  for (int64_t d = 0; d < cfg.domains; ++d)
    sources_.push_back(std::make_unique<MarkovSource>(spec, mix_seed({seed, 0x5eedull, static_cast<uint64_t>(d)}), common_seed));
}

std::vector<double> SyntheticCorpus::domain_probabilities() const {
  std::vector<double> p = cfg_.shares.empty() ? std::vector<double>(cfg_.domains, 1.0) : cfg_.shares;
  double sum = 0.0;
  for (double x : p) sum += x;
  for (double& x : p) x /= sum;
  return p;
}

namespace {

class SyntheticProducer : public SplitProducer {
 public:
  SyntheticProducer(const SyntheticCorpus& corpus, Split split)
      : corpus_(corpus),
        cfg_(corpus.config()),
        rng_(mix_seed({static_cast<uint64_t>(cfg_.seed), 0x5a3b1e5ull, static_cast<uint64_t>(split)})),
        shares_(corpus.domain_probabilities()) {
    const int64_t tokens = split == Split::kTrain ? cfg_.train_tokens : cfg_.val_tokens;
    n_sequences_ = (tokens + cfg_.seq_len - 1) / cfg_.seq_len;
    n_motifs_ = cfg_.motifs_per_domain;
  }
  int64_t n_sequences() const override { return n_sequences_; }

  void fill(int64_t n, TokenChunk& chunk, std::vector<DocumentRecord>& docs) override {
    const int64_t S = cfg_.seq_len;
    const bool one_domain = cfg_.packing == "domain";
    for (int64_t i = 0; i < n; ++i) {
      if (one_domain) {  // each sequence: one domain, its documents cut at the sequence end
        domain_ = static_cast<int64_t>(shares_.sample(rng_));
        remaining_ = 0;
      }
      int64_t pos = 0;
      while (pos < S) {
        if (remaining_ == 0) start_document(docs, one_domain, S - pos);
        const int64_t n_emit = std::min(remaining_, S - pos);
        emit(chunk, static_cast<std::size_t>(i * S + pos), n_emit);
        pos += n_emit;
        remaining_ -= n_emit;
        written_ += n_emit;
      }
      if (one_domain) remaining_ = 0;
      ++sequences_done_;
    }
    if (sequences_done_ == n_sequences_ && !docs.empty()) {  // cut the open document at the split's end
      DocumentRecord& last = docs.back();
      last.length = static_cast<uint32_t>(std::min<uint64_t>(last.length, static_cast<uint64_t>(written_) - last.start));
    }
  }

 private:
  void start_document(std::vector<DocumentRecord>& docs, bool one_domain, int64_t room) {
    if (!one_domain) domain_ = static_cast<int64_t>(shares_.sample(rng_));
    remaining_ = sample_doc_length(cfg_, rng_);
    const int64_t stored = one_domain ? std::min(remaining_, room) : remaining_;
    docs.push_back({static_cast<uint64_t>(written_), static_cast<uint32_t>(stored), static_cast<uint16_t>(domain_), 0});
    const MarkovSource& src = corpus_.source(domain_);
    state_ = src.sample_start(rng_);
    bos_pending_ = cfg_.bos;
  }

  // Emits n tokens of the open document into the chunk at `at`.
  void emit(TokenChunk& chunk, std::size_t at, int64_t n) {
    const MarkovSource& src = corpus_.source(domain_);
    const uint32_t* to_token = corpus_.layout().symbol_to_token[domain_].data();
    const auto d8 = static_cast<uint8_t>(domain_);
    const auto motif_base = static_cast<int32_t>(domain_ * n_motifs_);
    uint32_t* tok = chunk.tokens.data() + at;
    uint8_t* dom = chunk.domains.data() + at;
    int16_t* mot = chunk.motifs.data() + at;
    int64_t k = 0;
    if (bos_pending_ && n > 0) {
      tok[0] = static_cast<uint32_t>(corpus_.layout().bos_token);
      dom[0] = d8;
      mot[0] = -1;
      bos_pending_ = false;
      k = 1;
    }
    uint32_t state = state_;
    for (; k < n; ++k) {
      const SourceOutcome o = src.step(state, rng_);
      tok[k] = to_token[o.symbol];
      dom[k] = d8;
      mot[k] = static_cast<int16_t>(o.motif < 0 ? -1 : motif_base + o.motif);
      state = o.next_state;
    }
    state_ = state;
  }

  const SyntheticCorpus& corpus_;
  const DatagenConfig& cfg_;
  Rng rng_;
  AliasTable shares_;
  int64_t n_sequences_ = 0, n_motifs_ = 0, sequences_done_ = 0, written_ = 0;
  int64_t domain_ = 0, remaining_ = 0;
  uint32_t state_ = 0;
  bool bos_pending_ = false;
};

}  // namespace

std::unique_ptr<SplitProducer> SyntheticCorpus::producer(Split split) const {
  return std::make_unique<SyntheticProducer>(*this, split);
}

}  // namespace moetb
