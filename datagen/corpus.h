// What every data source hands the dataset writer: sequences of tokens with their
// per-token ground truth (domain id, motif id) and the list of documents. A split
// is produced front to back, a shard at a time, so memory stays bounded.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace moetb {

enum class Split { kTrain = 0, kVal = 1 };
inline const char* split_name(Split s) { return s == Split::kTrain ? "train" : "val"; }

// One document of a split, as stored in documents.bin (16 bytes, little-endian).
struct DocumentRecord {
  uint64_t start;   // offset of its first token in the split's token stream
  uint32_t length;  // tokens stored (cut where the split or a one-domain sequence ends)
  uint16_t domain;
  uint16_t reserved;  // 0
};
static_assert(sizeof(DocumentRecord) == 16, "documents.bin rows are 16 bytes");

// Per-token output buffers of one chunk of sequences, [n_sequences * seq_len] each.
struct TokenChunk {
  std::vector<uint32_t> tokens;
  std::vector<uint8_t> domains;
  std::vector<int16_t> motifs;  // global motif id, -1 = none
  void resize(std::size_t n) {
    tokens.resize(n);
    domains.resize(n);
    motifs.resize(n);
  }
};

class SplitProducer {
 public:
  virtual ~SplitProducer() = default;
  virtual int64_t n_sequences() const = 0;
  // Fills the next n sequences (chunk resized by the caller) and appends the documents
  // that start in them; a document still open at the split's end is cut there.
  virtual void fill(int64_t n, TokenChunk& chunk, std::vector<DocumentRecord>& docs) = 0;
  // Text domains: the source file of every document produced so far, in order.
  virtual std::vector<std::string> sources() const { return {}; }
};

}  // namespace moetb
