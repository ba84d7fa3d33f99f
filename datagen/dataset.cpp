// Dataset reader and BatchSampler (dataset.h).
#include "datagen/dataset.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "datagen/dataset_writer.h"

namespace moetb {
namespace fs = std::filesystem;

struct Dataset::Shard {
  std::unique_ptr<MappedFile> tokens, domains, motifs;
  int64_t n_sequences = 0;
};

namespace {

[[noreturn]] void fail(const std::string& where, const std::string& what) { throw std::runtime_error(where + ": " + what); }

const nlohmann::json& field(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) fail(where, std::string("missing field '") + key + "'");
  return j.at(key);
}

int64_t int_field(const nlohmann::json& j, const char* key, const std::string& where, int64_t lo, int64_t hi) {
  const nlohmann::json& v = field(j, key, where);
  if (!v.is_number_integer()) fail(where, std::string("field '") + key + "' is not an integer");
  const auto x = v.get<int64_t>();
  if (x < lo || x > hi) fail(where, std::string("field '") + key + "' = " + std::to_string(x) + " is out of range");
  return x;
}

}  // namespace

Dataset::Dataset(const std::string& dir) : dir_(dir) {
  const std::string path = (fs::path(dir) / "manifest.json").string();
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (fs::exists(st) && !fs::is_regular_file(st))  // a FIFO would block the open forever
    fail(path, "is not a regular file (a dataset's manifest.json must be one)");
  std::ifstream in(path);
  if (!in) fail(dir, "not a dataset directory (cannot read manifest.json)");
  std::stringstream text;
  text << in.rdbuf();
  try {
    manifest_ = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception&) {
    fail(path, "not valid JSON");
  }
  if (!manifest_.is_object() || manifest_.value("format", "") != kDatasetFormat)
    fail(path, std::string("format is not ") + kDatasetFormat);
  const nlohmann::json& kind = field(manifest_, "kind", path);
  synthetic_ = kind == "synthetic";
  if (!synthetic_ && kind != "text") fail(path, "kind must be synthetic or text");
  vocab_size_ = int_field(manifest_, "vocab_size", path, 1, int64_t{1} << 32);
  seq_len_ = int_field(manifest_, "seq_len", path, 1, int64_t{1} << 24);
  const nlohmann::json& dtype = field(manifest_, "token_dtype", path);
  if (dtype != "u16" && dtype != "u32") fail(path, "token_dtype must be u16 or u32");
  token_bytes_ = dtype == "u16" ? 2 : 4;
  if (token_bytes_ == 2 && vocab_size_ > 65536) fail(path, "vocab_size does not fit token_dtype u16");
  const nlohmann::json& bos = field(manifest_, "bos_token", path);
  bos_token_ = bos.is_null() ? -1 : int_field(manifest_, "bos_token", path, 0, vocab_size_ - 1);
  const nlohmann::json& domains = field(manifest_, "domains", path);
  if (!domains.is_array() || domains.empty() || domains.size() > 256) fail(path, "domains must be a list of 1 to 256 entries");
  for (const auto& d : domains) {
    const nlohmann::json& name = field(d, "name", path);
    if (!name.is_string()) fail(path, "a domain name is not a string");
    domain_names_.push_back(name.get<std::string>());
    const nlohmann::json& h = field(d, "entropy_rate_bits", path);
    entropy_rates_.push_back(h.is_number() ? std::optional<double>(h.get<double>()) : std::nullopt);
  }
  load_split(Split::kTrain);
  load_split(Split::kVal);
}

Dataset::~Dataset() = default;

void Dataset::load_split(Split split) {
  const int s = static_cast<int>(split);
  const std::string manifest_path = (fs::path(dir_) / "manifest.json").string();
  const nlohmann::json& sj = field(field(manifest_, "splits", manifest_path), split_name(split), manifest_path);
  const nlohmann::json& shards = field(sj, "shards", manifest_path);
  if (!shards.is_array()) fail(manifest_path, "shards is not a list");
  int64_t first = 0;
  const auto n_domains = static_cast<uint8_t>(domain_names_.size() - 1);
  // Motif ids: -1, or below D * motifs_per_domain (synthetic); text datasets have none.
  int64_t motif_limit = 0;
  if (synthetic_ && manifest_.contains("layout") && manifest_["layout"].is_object())
    motif_limit = static_cast<int64_t>(domain_names_.size()) *
                  int_field(manifest_["layout"], "motifs_per_domain", manifest_path, 0, 1 << 16);
  for (const auto& sh : shards) {
    const nlohmann::json& name = field(sh, "name", manifest_path);
    if (!name.is_string() || name.get<std::string>().find("..") != std::string::npos) fail(manifest_path, "bad shard name");
    auto shard = std::make_unique<Shard>();
    shard->n_sequences = int_field(sh, "n_sequences", manifest_path, 1, int64_t{1} << 40);
    const std::string base = (fs::path(dir_) / name.get<std::string>()).string();
    shard->tokens = std::make_unique<MappedFile>(base + ".tokens");
    shard->domains = std::make_unique<MappedFile>(base + ".domains");
    shard->motifs = std::make_unique<MappedFile>(base + ".motifs");
    const auto n_tok = static_cast<std::size_t>(shard->n_sequences * seq_len_);
    auto expect = [&](const MappedFile& f, std::size_t width) {
      if (f.size() != n_tok * width)
        fail(f.path(), std::to_string(f.size()) + " bytes, expected " + std::to_string(n_tok * width) + " for " +
                           std::to_string(shard->n_sequences) + " sequences");
    };
    expect(*shard->tokens, static_cast<std::size_t>(token_bytes_));
    expect(*shard->domains, 1);
    expect(*shard->motifs, 2);
    // Ids in range, checked once here so that training never indexes out of bounds.
    for (std::size_t i = 0; i < n_tok; ++i) {
      uint32_t t;
      if (token_bytes_ == 2) {
        uint16_t v;
        std::memcpy(&v, shard->tokens->data() + 2 * i, 2);
        t = v;
      } else {
        std::memcpy(&t, shard->tokens->data() + 4 * i, 4);
      }
      if (t >= vocab_size_) fail(shard->tokens->path(), "token " + std::to_string(t) + " at " + std::to_string(i) + " is not below vocab_size " + std::to_string(vocab_size_));
      int16_t motif;
      std::memcpy(&motif, shard->motifs->data() + 2 * i, 2);
      if (motif < -1 || motif >= motif_limit)
        fail(shard->motifs->path(), "motif id " + std::to_string(motif) + " at " + std::to_string(i) + " is not -1 or below " + std::to_string(motif_limit));
      if (shard->domains->data()[i] > n_domains)
        fail(shard->domains->path(), "domain id " + std::to_string(shard->domains->data()[i]) + " at " + std::to_string(i) + " has no domain");
    }
    shard_first_seq_[s].push_back(first);
    first += shard->n_sequences;
    shards_[s].push_back(std::move(shard));
  }
  if (first != int_field(sj, "n_sequences", manifest_path, 0, int64_t{1} << 40))
    fail(manifest_path, std::string(split_name(split)) + ": shard sequences do not add up to n_sequences");
  if (first == 0) fail(manifest_path, std::string(split_name(split)) + ": no sequences");
  const std::string docs_path = (fs::path(dir_) / split_name(split) / "documents.bin").string();
  MappedFile docs(docs_path);
  if (docs.size() % sizeof(DocumentRecord) != 0) fail(docs_path, "size is not a multiple of 16 bytes");
  documents_[s].resize(docs.size() / sizeof(DocumentRecord));
  if (docs.size() > 0) std::memcpy(documents_[s].data(), docs.data(), docs.size());
  for (const auto& d : documents_[s])
    if (d.domain >= domain_names_.size() || d.start + d.length > static_cast<uint64_t>(first * seq_len_))
      fail(docs_path, "a document lies outside the split or has no domain");
}

int64_t Dataset::n_sequences(Split split) const {
  const int s = static_cast<int>(split);
  return shard_first_seq_[s].back() + shards_[s].back()->n_sequences;
}

const Dataset::Shard& Dataset::shard_of(Split split, int64_t seq, int64_t* row) const {
  const int s = static_cast<int>(split);
  if (seq < 0 || seq >= n_sequences(split))
    throw std::out_of_range("sequence " + std::to_string(seq) + " is not in the " + split_name(split) + " split");
  const auto it = std::upper_bound(shard_first_seq_[s].begin(), shard_first_seq_[s].end(), seq) - 1;
  *row = seq - *it;
  return *shards_[s][static_cast<std::size_t>(it - shard_first_seq_[s].begin())];
}

uint32_t Dataset::token(Split split, int64_t seq, int64_t i) const {
  int64_t row;
  const Shard& sh = shard_of(split, seq, &row);
  const std::size_t at = static_cast<std::size_t>(row * seq_len_ + i);
  if (token_bytes_ == 2) {
    uint16_t v;
    std::memcpy(&v, sh.tokens->data() + 2 * at, 2);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, sh.tokens->data() + 4 * at, 4);
  return v;
}

uint8_t Dataset::domain(Split split, int64_t seq, int64_t i) const {
  int64_t row;
  const Shard& sh = shard_of(split, seq, &row);
  return sh.domains->data()[row * seq_len_ + i];
}

int16_t Dataset::motif(Split split, int64_t seq, int64_t i) const {
  int64_t row;
  const Shard& sh = shard_of(split, seq, &row);
  int16_t v;
  std::memcpy(&v, sh.motifs->data() + 2 * (row * seq_len_ + i), 2);
  return v;
}

void Dataset::gather(Split split, const std::vector<int64_t>& sequences, int64_t* tokens, int64_t* domains, int64_t* motifs) const {
  const auto S = static_cast<std::size_t>(seq_len_);
  std::vector<uint16_t> t16(S);
  std::vector<uint32_t> t32(S);
  std::vector<int16_t> m16(S);
  for (std::size_t r = 0; r < sequences.size(); ++r) {
    int64_t row;
    const Shard& sh = shard_of(split, sequences[r], &row);
    const std::size_t at = static_cast<std::size_t>(row) * S;
    if (tokens != nullptr) {
      if (token_bytes_ == 2) {
        std::memcpy(t16.data(), sh.tokens->data() + 2 * at, 2 * S);
        for (std::size_t i = 0; i < S; ++i) tokens[r * S + i] = t16[i];
      } else {
        std::memcpy(t32.data(), sh.tokens->data() + 4 * at, 4 * S);
        for (std::size_t i = 0; i < S; ++i) tokens[r * S + i] = t32[i];
      }
    }
    if (domains != nullptr)
      for (std::size_t i = 0; i < S; ++i) domains[r * S + i] = sh.domains->data()[at + i];
    if (motifs != nullptr) {
      std::memcpy(m16.data(), sh.motifs->data() + 2 * at, 2 * S);
      for (std::size_t i = 0; i < S; ++i) motifs[r * S + i] = m16[i];
    }
  }
}

BatchSampler::BatchSampler(int64_t n_sequences, int64_t batch_size, bool shuffle, uint64_t seed)
    : n_(n_sequences), batch_(batch_size), shuffle_(shuffle), seed_(seed) {
  if (n_ <= 0 || batch_ <= 0) throw std::invalid_argument("batch sampler: need sequences and a positive batch size");
  make_order();
}

void BatchSampler::make_order() {
  order_.resize(static_cast<std::size_t>(n_));
  for (int64_t i = 0; i < n_; ++i) order_[i] = i;
  if (!shuffle_) return;
  Rng rng(mix_seed({seed_, state_.epoch}));
  for (int64_t i = n_ - 1; i > 0; --i) std::swap(order_[i], order_[rng.below(static_cast<uint64_t>(i + 1))]);
}

std::vector<int64_t> BatchSampler::next() {
  std::vector<int64_t> out;
  out.reserve(static_cast<std::size_t>(batch_));
  while (static_cast<int64_t>(out.size()) < batch_) {
    if (state_.position == n_) {
      ++state_.epoch;
      state_.position = 0;
      make_order();
    }
    out.push_back(order_[state_.position++]);
  }
  return out;
}

void BatchSampler::restore(const State& s) {
  if (s.position < 0 || s.position > n_) throw std::invalid_argument("batch sampler: position out of range");
  state_ = s;
  make_order();
}

}  // namespace moetb
