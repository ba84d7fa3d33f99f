// A subword tokenizer beside bytes: SentencePiece (Kudo & Richardson, arXiv 1808.06226;
// unigram LM, arXiv 1804.10959, or BPE) trained in process on the train split's text only,
// with settings that make it deterministic (one thread, no sentence sampling or shuffling,
// a fixed seed) and lossless (identity normalisation, byte fallback, no dummy prefix).
// Text is encoded line by line; ids 0..n_pieces-1 are pieces, n_pieces is the newline.
// Library moetb_subword (never linked into torch binaries: see text_tokenizer.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "datagen/text_tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace moetb {

struct SubwordTrainOptions {
  int64_t vocab_size = 8000;          // pieces (a soft limit on small corpora)
  std::string model_type = "unigram"; // unigram or bpe
  double character_coverage = 0.9995; // share of characters covered by pieces (the rest: bytes)
  uint64_t seed = 1;
};

// Registers SentencePiece as the subword trainer of TextCorpus (tokenizer = "sentencepiece").
void register_sentencepiece_tokenizer();

class SubwordTokenizer final : public TextTokenizer {
 public:
  // Trains on the lines of `texts` (empty lines skipped). Throws std::invalid_argument
  // ("tokenizer: sentencepiece: ...") when training fails.
  static SubwordTokenizer train(const std::vector<const std::string*>& texts, const SubwordTrainOptions& opts);
  static SubwordTokenizer load(const std::string& serialized_model);  // a stored tokenizer.model
  SubwordTokenizer(SubwordTokenizer&&) noexcept;
  SubwordTokenizer& operator=(SubwordTokenizer&&) noexcept;
  ~SubwordTokenizer() override;

  const std::string& serialized() const override { return model_; }  // the model file's bytes
  int64_t n_pieces() const override { return n_pieces_; }
  uint32_t newline_token() const override { return static_cast<uint32_t>(n_pieces_); }
  int64_t training_bytes() const override { return training_bytes_; }  // bytes of the lines it was trained on
  std::vector<uint32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<uint32_t>& ids) const;
  std::string piece(uint32_t id) const;

 private:
  SubwordTokenizer();
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string model_;
  int64_t n_pieces_ = 0, training_bytes_ = 0;
};

}  // namespace moetb
