// Reads a dataset directory written by `moetb datagen` (docs/datagen.md): the manifest,
// memory-mapped shards, and documents; checks sizes and id ranges once on open. Plus the
// batch sampler training uses: random (seeded, a fresh permutation per epoch) or
// sequential order over a split's sequences, with a state that can be saved and restored.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/mapped_file.h"
#include "datagen/corpus.h"
#include "common/rng.h"

namespace moetb {

class Dataset {
 public:
  explicit Dataset(const std::string& dir);  // throws one-line errors naming the file
  ~Dataset();
  Dataset(const Dataset&) = delete;
  Dataset& operator=(const Dataset&) = delete;

  const std::string& dir() const { return dir_; }
  const nlohmann::json& manifest() const { return manifest_; }
  bool is_synthetic() const { return synthetic_; }
  int64_t vocab_size() const { return vocab_size_; }
  int64_t seq_len() const { return seq_len_; }
  int64_t bos_token() const { return bos_token_; }  // -1 = none
  int64_t n_domains() const { return static_cast<int64_t>(domain_names_.size()); }
  const std::vector<std::string>& domain_names() const { return domain_names_; }
  std::optional<double> entropy_rate_bits(int64_t domain) const { return entropy_rates_[domain]; }
  int64_t n_sequences(Split split) const;
  const std::vector<DocumentRecord>& documents(Split split) const { return documents_[static_cast<int>(split)]; }

  // Token, domain id and motif id at position i of sequence `seq` (slow path, for tests and stats).
  uint32_t token(Split split, int64_t seq, int64_t i) const;
  uint8_t domain(Split split, int64_t seq, int64_t i) const;
  int16_t motif(Split split, int64_t seq, int64_t i) const;
  // Copies the given sequences, row after row, into [n, seq_len] outputs (any may be null).
  void gather(Split split, const std::vector<int64_t>& sequences, int64_t* tokens, int64_t* domains, int64_t* motifs) const;

 private:
  struct Shard;
  const Shard& shard_of(Split split, int64_t seq, int64_t* row) const;
  void load_split(Split split);

  std::string dir_;
  nlohmann::json manifest_;
  bool synthetic_ = true;
  int64_t vocab_size_ = 0, seq_len_ = 0, bos_token_ = -1, token_bytes_ = 2;
  std::vector<std::string> domain_names_;
  std::vector<std::optional<double>> entropy_rates_;
  std::vector<std::unique_ptr<Shard>> shards_[2];
  std::vector<int64_t> shard_first_seq_[2];  // first sequence of each shard
  std::vector<DocumentRecord> documents_[2];
};

class BatchSampler {
 public:
  struct State {
    uint64_t epoch = 0;
    int64_t position = 0;  // next index in the epoch's order
  };
  // shuffle: a seeded permutation per epoch; otherwise 0, 1, 2, ... wrapping around.
  BatchSampler(int64_t n_sequences, int64_t batch_size, bool shuffle, uint64_t seed);
  std::vector<int64_t> next();
  State state() const { return state_; }
  void restore(const State& s);

 private:
  void make_order();
  int64_t n_, batch_;
  bool shuffle_;
  uint64_t seed_;
  State state_;
  std::vector<int64_t> order_;
};

}  // namespace moetb
