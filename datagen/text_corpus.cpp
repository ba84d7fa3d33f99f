// TextCorpus (text_corpus.h): folder scan, split by path hash, byte budgets, packing.
#include "datagen/text_corpus.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "common/rng.h"

namespace moetb {
namespace fs = std::filesystem;
namespace {

uint64_t hash_text(const std::string& s) {  // FNV-1a, then mixed with the seed by the caller
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

std::vector<std::string> list_files(const std::string& key, const std::string& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw std::invalid_argument(key + ": " + folder + ": not a readable folder");
  std::vector<std::string> found;
  fs::recursive_directory_iterator it(folder, fs::directory_options::skip_permission_denied, ec);
  if (ec) throw std::invalid_argument(key + ": " + folder + ": cannot read folder: " + ec.message());
  for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
    if (ec) throw std::invalid_argument(key + ": " + folder + ": cannot read folder: " + ec.message());
    std::error_code ec2;
    if (it->is_regular_file(ec2) && !it->is_symlink(ec2) && it->file_size(ec2) > 0)
      found.push_back(fs::relative(it->path(), folder, ec2).generic_string());
  }
  std::sort(found.begin(), found.end());
  if (found.empty()) throw std::invalid_argument(key + ": " + folder + ": holds no non-empty files");
  return found;
}

std::string read_prefix(const std::string& path, int64_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument(path + ": cannot read file");
  std::string bytes(static_cast<std::size_t>(max_bytes), '\0');
  in.read(bytes.data(), max_bytes);
  bytes.resize(static_cast<std::size_t>(in.gcount()));
  return bytes;
}

// Packs documents (BOS + bytes) back to back into sequences; a split's tail that does
// not fill a sequence is dropped. Domain packing gives each sequence one domain.
class TextProducer : public SplitProducer {
 public:
  TextProducer(const DatagenConfig& cfg, const std::vector<TextCorpus::Doc>& docs, Split split)
      : cfg_(cfg), docs_(docs) {
    // Lay the stream out once: (doc index, start in stream); sequences are windows of it.
    const bool one_domain = cfg.packing == "domain";
    const int64_t S = cfg.seq_len;
    if (!one_domain) {
      for (std::size_t i = 0; i < docs.size(); ++i) plan_.push_back({i, 0, doc_tokens(i)});
    } else {  // per domain, a stream cut into sequences; sequences interleaved by a seeded order
      std::vector<std::vector<Piece>> per_domain;
      for (std::size_t i = 0; i < docs.size(); ++i) {
        if (static_cast<std::size_t>(docs[i].domain) >= per_domain.size()) per_domain.resize(docs[i].domain + 1);
        per_domain[docs[i].domain].push_back({i, 0, doc_tokens(i)});
      }
      std::vector<std::pair<uint64_t, std::vector<Piece>>> sequences;
      for (auto& pieces : per_domain) {
        std::vector<Piece> seq;
        int64_t fill = 0;
        for (Piece p : pieces) {
          while (p.length > 0) {
            const int64_t take = std::min(p.length, S - fill);
            seq.push_back({p.doc, p.offset, take});
            p.offset += take;
            p.length -= take;
            fill += take;
            if (fill == S) {
              sequences.push_back({mix_seed({static_cast<uint64_t>(cfg.seed), static_cast<uint64_t>(split), sequences.size()}), seq});
              seq.clear();
              fill = 0;
            }
          }
        }
      }
      std::sort(sequences.begin(), sequences.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      for (auto& s : sequences) plan_.insert(plan_.end(), s.second.begin(), s.second.end());
    }
    int64_t total = 0;
    for (const Piece& p : plan_) total += p.length;
    n_sequences_ = total / S;
    if (n_sequences_ == 0)
      throw std::invalid_argument(std::string(split_name(split)) + " split: " + std::to_string(total) +
                                  " tokens of text do not fill one sequence of seq_len " + std::to_string(S));
  }
  int64_t n_sequences() const override { return n_sequences_; }
  std::vector<std::string> sources() const override { return sources_; }

  void fill(int64_t n, TokenChunk& chunk, std::vector<DocumentRecord>& docs) override {
    const int64_t end = written_ + n * cfg_.seq_len;
    std::size_t at = 0;
    while (written_ < end) {
      Piece& p = plan_[piece_];
      const int64_t take = std::min(p.length, end - written_);
      if (piece_started_ != piece_) {  // a new piece is a new record (domain packing cuts documents)
        docs.push_back({static_cast<uint64_t>(written_), 0, static_cast<uint16_t>(docs_[p.doc].domain), 0});
        sources_.push_back(docs_[p.doc].path);
        piece_started_ = piece_;
      }
      for (int64_t k = 0; k < take; ++k, ++at) {
        const int64_t pos = p.offset + k;  // position in the document: 0 is BOS when enabled
        chunk.tokens[at] = cfg_.bos ? (pos == 0 ? 256u : static_cast<unsigned char>(docs_[p.doc].bytes[pos - 1]))
                                    : static_cast<unsigned char>(docs_[p.doc].bytes[pos]);
        chunk.domains[at] = static_cast<uint8_t>(docs_[p.doc].domain);
        chunk.motifs[at] = -1;
      }
      docs.back().length += static_cast<uint32_t>(take);
      written_ += take;
      p.offset += take;
      p.length -= take;
      if (p.length == 0) ++piece_;
    }
  }

 private:
  struct Piece {
    std::size_t doc;
    int64_t offset, length;  // token range of the document
  };
  int64_t doc_tokens(std::size_t i) const { return static_cast<int64_t>(docs_[i].bytes.size()) + (cfg_.bos ? 1 : 0); }

  const DatagenConfig& cfg_;
  const std::vector<TextCorpus::Doc>& docs_;
  std::vector<Piece> plan_;
  int64_t n_sequences_ = 0, written_ = 0;
  std::size_t piece_ = 0, piece_started_ = SIZE_MAX;
  std::vector<std::string> sources_;
};

}  // namespace

TextCorpus::TextCorpus(const DatagenConfig& cfg) : cfg_(cfg) {
  validate_datagen_config(cfg_);
  if (!is_text_dataset(cfg_)) throw std::invalid_argument("text_domains: no text domains given");
  if (cfg_.token_dtype == "u16" && vocab_size() > 65536) throw std::logic_error("unreachable");
  const auto seed = static_cast<uint64_t>(cfg_.seed);
  std::vector<double> shares = cfg_.shares.empty() ? std::vector<double>(cfg_.text_domains.size(), 1.0) : cfg_.shares;
  double share_sum = 0.0;
  for (double s : shares) share_sum += s;
  std::vector<std::pair<uint64_t, Doc>> ordered[2];
  int d = 0;
  for (const auto& [name, folder] : cfg_.text_domains) {  // std::map: domains in name order
    const std::string key = "text_domains." + name;
    TextDomainSummary summary{name, folder};
    std::vector<std::string> files = list_files(key, folder);
    summary.files_found = static_cast<int64_t>(files.size());
    // Seeded hash of the relative path: its top bits pick the split, the whole value the order.
    std::vector<std::pair<uint64_t, std::string>> ranked[2];
    for (const auto& f : files) {
      const uint64_t h = mix_seed({seed, hash_text(f)});
      const bool val = static_cast<double>(h >> 11) * 0x1.0p-53 < cfg_.val_fraction;
      ranked[val ? 1 : 0].push_back({h, f});
    }
    for (int s = 0; s < 2; ++s) {
      if (ranked[s].empty())
        throw std::invalid_argument(key + ": " + folder + ": " + std::to_string(files.size()) + " files leave the " +
                                    split_name(static_cast<Split>(s)) + " split empty (need more files or another val_fraction)");
      std::sort(ranked[s].begin(), ranked[s].end());
      const double budget = static_cast<double>(s == 0 ? cfg_.train_tokens : cfg_.val_tokens) * shares[d] / share_sum;
      for (const auto& [h, f] : ranked[s]) {
        if (static_cast<double>(summary.bytes[s]) >= budget) break;
        Doc doc{d, f, read_prefix((fs::path(folder) / f).string(), cfg_.max_file_bytes)};
        if (doc.bytes.empty()) continue;
        summary.files[s] += 1;
        summary.bytes[s] += static_cast<int64_t>(doc.bytes.size());
        ordered[s].push_back({mix_seed({seed, 0x9ac4ull, static_cast<uint64_t>(s), h}), std::move(doc)});
      }
    }
    domains_.push_back(summary);
    ++d;
  }
  for (int s = 0; s < 2; ++s) {  // domains interleaved in a seeded order
    std::sort(ordered[s].begin(), ordered[s].end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [h, doc] : ordered[s]) docs_[s].push_back(std::move(doc));
  }
}

std::unique_ptr<SplitProducer> TextCorpus::producer(Split split) const {
  return std::make_unique<TextProducer>(cfg_, docs_[static_cast<int>(split)], split);
}

}  // namespace moetb
