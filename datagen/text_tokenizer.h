// The tokenizer interface of text datasets beside bytes (text_corpus.h). The SentencePiece
// implementation (subword_tokenizer.h, library moetb_subword) is registered at run time by
// the binaries that build datasets, because libsentencepiece carries its own copy of
// protobuf that clashes with LibTorch's at load time: torch binaries must not link it.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace moetb {
struct DatagenConfig;

class TextTokenizer {
 public:
  virtual ~TextTokenizer() = default;
  virtual std::vector<uint32_t> encode(const std::string& text) const = 0;
  virtual const std::string& serialized() const = 0;  // the model file's bytes (tokenizer.model)
  virtual int64_t n_pieces() const = 0;
  virtual uint32_t newline_token() const = 0;          // n_pieces(): lines are encoded one by one
  virtual int64_t training_bytes() const = 0;          // bytes of the lines it was trained on
};

// Trains a subword tokenizer on `texts` (the train split) with cfg's subword_* settings.
using SubwordTrainer = std::function<std::unique_ptr<TextTokenizer>(const std::vector<const std::string*>& texts,
                                                                    const DatagenConfig& cfg)>;
void set_subword_trainer(SubwordTrainer trainer);
const SubwordTrainer& subword_trainer();  // empty when none is registered

}  // namespace moetb
