// Real text domains: byte-level tokens (0..255, BOS = 256) from the files under one
// folder per domain, one document per file. A seeded hash of each file's relative path
// puts it in the train or validation split, so the split is deterministic and does not
// move when other files are added. No analytic entropy rate exists for real text.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "datagen/config.h"
#include "datagen/corpus.h"

namespace moetb {

struct TextDomainSummary {
  std::string name, folder;
  int64_t files_found = 0;           // non-empty regular files under the folder
  int64_t files[2] = {0, 0};         // used per split
  int64_t bytes[2] = {0, 0};         // document bytes used per split (before packing)
};

class TextCorpus {
 public:
  explicit TextCorpus(const DatagenConfig& cfg);  // reads every selected file; throws on bad folders
  const std::vector<TextDomainSummary>& domains() const { return domains_; }
  static constexpr int64_t kBosToken = 256;
  int64_t vocab_size() const { return cfg_.bos ? 257 : 256; }
  std::unique_ptr<SplitProducer> producer(Split split) const;

  struct Doc {
    int domain;
    std::string path;   // relative to the domain's folder
    std::string bytes;
  };

 private:
  DatagenConfig cfg_;
  std::vector<TextDomainSummary> domains_;
  std::vector<Doc> docs_[2];  // per split, in packing order
};

}  // namespace moetb
