// Synthetic multi-domain corpus: one MarkovSource per domain, a global token layout
// (shared tokens, private tokens, motif markers, BOS), the document length law and the
// packing of documents into training sequences. Ground truth per token: domain, document,
// motif. Follows the MoE Routing Testbed's separated-domain mix (arXiv 2604.07030).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "datagen/alias_table.h"
#include "datagen/config.h"
#include "datagen/corpus.h"
#include "datagen/markov_source.h"

namespace moetb {

struct TokenLayout {
  int64_t n_shared = 0;        // tokens [0, n_shared) belong to every domain
  int64_t n_private = 0;       // per domain, after the shared block
  int64_t marker_base = 0;     // motif m of domain d has marker token marker_base + d*M + m
  int64_t bos_token = -1;      // -1 when documents carry no BOS
  int64_t vocab_size = 0;
  std::vector<std::vector<uint32_t>> symbol_to_token;  // [D][V + M] local symbol -> token id
};
TokenLayout make_token_layout(const DatagenConfig& cfg);  // throws if it does not fit token_dtype

// Samples a document length (tokens, BOS included) from the configured law.
int64_t sample_doc_length(const DatagenConfig& cfg, Rng& rng);

class SyntheticCorpus {
 public:
  explicit SyntheticCorpus(const DatagenConfig& cfg);  // validates cfg, builds every source
  const DatagenConfig& config() const { return cfg_; }
  const TokenLayout& layout() const { return layout_; }
  int64_t n_domains() const { return static_cast<int64_t>(sources_.size()); }
  const MarkovSource& source(int64_t d) const { return *sources_[d]; }
  std::vector<double> domain_probabilities() const;  // normalised shares
  std::unique_ptr<SplitProducer> producer(Split split) const;

 private:
  DatagenConfig cfg_;
  TokenLayout layout_;
  std::vector<std::unique_ptr<MarkovSource>> sources_;
};

}  // namespace moetb
