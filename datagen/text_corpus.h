// Real text domains: the files under one folder per domain, or the manual pages of one
// man tree per domain rendered to text (manpage_render.h), one document per file or page.
// A seeded hash of each relative path puts it in the train or validation split, so the
// split is deterministic and does not move when files are added. Tokens are bytes (0..255,
// BOS = 256) or SentencePiece ids trained on the train split (subword_tokenizer.h).
// No analytic entropy rate exists for real text.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datagen/config.h"
#include "datagen/corpus.h"
#include "datagen/text_tokenizer.h"

namespace moetb {

struct TextDomainSummary {
  std::string name, folder;
  std::string source = "files";      // files (a folder) or manpages (a man tree)
  int64_t files_found = 0;           // non-empty regular files under the folder (pages of the tree)
  int64_t skipped = 0;               // pages left out: redirects (.so), not UTF-8, empty, formatter failed
  int64_t files[2] = {0, 0};         // used per split
  int64_t bytes[2] = {0, 0};         // document bytes used per split (before packing)
};

class TextCorpus {
 public:
  explicit TextCorpus(const DatagenConfig& cfg);  // reads every selected file; throws on bad folders
  const std::vector<TextDomainSummary>& domains() const { return domains_; }
  static constexpr int64_t kBosToken = 256;  // with the byte tokenizer
  // Bytes: 256 (+ BOS). Subword: the pieces, the newline token (+ BOS). BOS is the last id.
  int64_t vocab_size() const { return n_text_tokens_ + (cfg_.bos ? 1 : 0); }
  int64_t bos_token() const { return cfg_.bos ? n_text_tokens_ : -1; }
  const TextTokenizer* subword() const { return subword_.get(); }  // null with bytes
  nlohmann::json tokenizer_json() const;  // the manifest's "tokenizer" entry
  std::unique_ptr<SplitProducer> producer(Split split) const;

  struct Doc {
    int domain;
    std::string path;   // relative to the domain's folder
    std::string text;   // the document's bytes (cleared once tokenized)
    std::vector<uint32_t> tokens;
  };

 private:
  DatagenConfig cfg_;
  std::vector<TextDomainSummary> domains_;
  std::vector<Doc> docs_[2];  // per split, in packing order
  int64_t n_text_tokens_ = 256;
  std::unique_ptr<TextTokenizer> subword_;
};

}  // namespace moetb
