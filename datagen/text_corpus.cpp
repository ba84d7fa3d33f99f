// TextCorpus (text_corpus.h): folder or man-tree scan, split by path hash, byte budgets,
// page rendering in parallel batches, tokenization (bytes or SentencePiece), packing.
#include "datagen/text_corpus.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <stdexcept>
#include <thread>

#include "common/rng.h"
#include "datagen/manpage_render.h"

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
  TextProducer(const DatagenConfig& cfg, const std::vector<TextCorpus::Doc>& docs, Split split, uint32_t bos)
      : cfg_(cfg), docs_(docs), bos_(bos) {
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
        chunk.tokens[at] = cfg_.bos ? (pos == 0 ? bos_ : docs_[p.doc].tokens[static_cast<std::size_t>(pos - 1)])
                                    : docs_[p.doc].tokens[static_cast<std::size_t>(pos)];
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
  int64_t doc_tokens(std::size_t i) const { return static_cast<int64_t>(docs_[i].tokens.size()) + (cfg_.bos ? 1 : 0); }

  const DatagenConfig& cfg_;
  const std::vector<TextCorpus::Doc>& docs_;
  uint32_t bos_;
  std::vector<Piece> plan_;
  int64_t n_sequences_ = 0, written_ = 0;
  std::size_t piece_ = 0, piece_started_ = SIZE_MAX;
  std::vector<std::string> sources_;
};

// Loads documents of one domain: a file's first max_file_bytes, or a rendered page (in
// parallel batches of render_jobs). nullopt = left out (counted as skipped).
class DomainLoader {
 public:
  DomainLoader(const DatagenConfig& cfg, std::string folder, bool manpages)
      : cfg_(cfg), folder_(std::move(folder)), manpages_(manpages) {}
  std::size_t batch() const { return manpages_ ? static_cast<std::size_t>(cfg_.render_jobs) : 1; }
  std::vector<std::optional<std::string>> load(const std::vector<std::string>& rel) const {
    std::vector<std::optional<std::string>> out(rel.size());
    auto one = [&](std::size_t i) {
      const std::string path = (fs::path(folder_) / rel[i]).string();
      if (!manpages_) {
        out[i] = read_prefix(path, cfg_.max_file_bytes);
        return;
      }
      RenderResult r = render_manpage(path, cfg_.groff);
      if (r.status == RenderStatus::kOk) out[i] = utf8_prefix(r.text, static_cast<std::size_t>(cfg_.max_file_bytes));
    };
    if (rel.size() <= 1) {
      for (std::size_t i = 0; i < rel.size(); ++i) one(i);
      return out;
    }
    std::vector<std::thread> workers;
    std::vector<std::exception_ptr> errors(rel.size());
    for (std::size_t i = 0; i < rel.size(); ++i)
      workers.emplace_back([&, i] {
        try {
          one(i);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      });
    for (auto& w : workers) w.join();
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
    return out;
  }

 private:
  const DatagenConfig& cfg_;
  std::string folder_;
  bool manpages_;
};

}  // namespace

TextCorpus::TextCorpus(const DatagenConfig& cfg) : cfg_(cfg) {
  validate_datagen_config(cfg_);
  if (!is_text_dataset(cfg_)) throw std::invalid_argument("text_domains: no text domains given");
  const auto seed = static_cast<uint64_t>(cfg_.seed);
  // Every domain, folders and man trees together, in name order.
  struct Source {
    std::string name, folder;
    bool manpages;
  };
  std::vector<Source> sources;
  for (const auto& [name, folder] : cfg_.text_domains) sources.push_back({name, folder, false});
  for (const auto& [name, folder] : cfg_.manpage_domains) sources.push_back({name, folder, true});
  std::sort(sources.begin(), sources.end(), [](const Source& a, const Source& b) { return a.name < b.name; });
  std::vector<double> shares = cfg_.shares.empty() ? std::vector<double>(sources.size(), 1.0) : cfg_.shares;
  double share_sum = 0.0;
  for (double s : shares) share_sum += s;
  std::vector<std::pair<uint64_t, Doc>> ordered[2];
  // Page lists first: translated_only domains keep the pages some other man tree also has.
  std::vector<std::vector<std::string>> listed;
  std::map<std::string, std::vector<std::string>> pages_of;  // manpage domain -> its pages (sorted)
  for (const Source& src : sources) {
    const std::string key = (src.manpages ? "manpage_domains." : "text_domains.") + src.name;
    listed.push_back(src.manpages ? list_manpages(key, src.folder) : list_files(key, src.folder));
    if (src.manpages) pages_of[src.name] = listed.back();
  }
  int d = 0;
  for (const Source& src : sources) {
    const std::string key = (src.manpages ? "manpage_domains." : "text_domains.") + src.name;
    TextDomainSummary summary{src.name, src.folder};
    summary.source = src.manpages ? "manpages" : "files";
    std::vector<std::string> files = std::move(listed[static_cast<std::size_t>(d)]);
    if (std::find(cfg_.translated_only.begin(), cfg_.translated_only.end(), src.name) != cfg_.translated_only.end()) {
      std::vector<std::string> kept;
      for (const auto& f : files)
        for (const auto& [other, pages] : pages_of)
          if (other != src.name && std::binary_search(pages.begin(), pages.end(), f)) {
            kept.push_back(f);
            break;
          }
      if (kept.empty()) throw std::invalid_argument(key + ": " + src.folder + ": no page that another manpage domain also has (translated_only)");
      files = std::move(kept);
    }
    summary.files_found = static_cast<int64_t>(files.size());
    // Seeded hash of the relative path: its top bits pick the split, the whole value the order.
    std::vector<std::pair<uint64_t, std::string>> ranked[2];
    for (const auto& f : files) {
      const uint64_t h = mix_seed({seed, hash_text(f)});
      const bool val = static_cast<double>(h >> 11) * 0x1.0p-53 < cfg_.val_fraction;
      ranked[val ? 1 : 0].push_back({h, f});
    }
    const DomainLoader loader(cfg_, src.folder, src.manpages);
    for (int s = 0; s < 2; ++s) {
      if (ranked[s].empty())
        throw std::invalid_argument(key + ": " + src.folder + ": " + std::to_string(files.size()) + " files leave the " +
                                    split_name(static_cast<Split>(s)) + " split empty (need more files or another val_fraction)");
      std::sort(ranked[s].begin(), ranked[s].end());
      const double budget = static_cast<double>(s == 0 ? cfg_.train_tokens : cfg_.val_tokens) * shares[d] / share_sum;
      auto full = [&] {
        return static_cast<double>(summary.bytes[s]) >= budget || (src.manpages && cfg_.max_pages > 0 && summary.files[s] >= cfg_.max_pages);
      };
      // Load in batches (pages render in parallel); accept in hash order until full, so the
      // result does not depend on the batch size.
      for (std::size_t at = 0; at < ranked[s].size() && !full();) {
        std::vector<std::string> rel;
        for (std::size_t k = at; k < ranked[s].size() && rel.size() < loader.batch(); ++k) rel.push_back(ranked[s][k].second);
        std::vector<std::optional<std::string>> texts = loader.load(rel);
        for (std::size_t k = 0; k < rel.size() && !full(); ++k, ++at) {
          if (!texts[k] || texts[k]->empty()) {
            summary.skipped += src.manpages ? 1 : 0;
            continue;
          }
          summary.files[s] += 1;
          summary.bytes[s] += static_cast<int64_t>(texts[k]->size());
          const uint64_t h = ranked[s][at].first;
          ordered[s].push_back({mix_seed({seed, 0x9ac4ull, static_cast<uint64_t>(s), h}), Doc{d, rel[k], std::move(*texts[k]), {}}});
        }
      }
      if (summary.files[s] == 0)
        throw std::invalid_argument(key + ": " + src.folder + ": no usable document for the " + split_name(static_cast<Split>(s)) +
                                    " split (" + std::to_string(summary.skipped) + " pages left out)");
    }
    domains_.push_back(summary);
    ++d;
  }
  for (int s = 0; s < 2; ++s) {  // domains interleaved in a seeded order
    std::sort(ordered[s].begin(), ordered[s].end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [h, doc] : ordered[s]) docs_[s].push_back(std::move(doc));
  }
  if (cfg_.tokenizer == "sentencepiece") {  // trained on the train split only
    std::vector<const std::string*> train_texts;
    for (const Doc& doc : docs_[0]) train_texts.push_back(&doc.text);
    if (!subword_trainer())
      throw std::invalid_argument("tokenizer: sentencepiece is not linked into this program (moetb datagen has it)");
    subword_ = subword_trainer()(train_texts, cfg_);
    n_text_tokens_ = subword_->n_pieces() + 1;  // + the newline token
    if (cfg_.token_dtype == "u16" && vocab_size() > 65536)
      throw std::invalid_argument("subword_vocab_size: " + std::to_string(vocab_size()) + " ids do not fit token_dtype u16");
  }
  for (auto& split_docs : docs_)
    for (Doc& doc : split_docs) {
      if (subword_) {
        doc.tokens = subword_->encode(doc.text);
      } else {
        doc.tokens.assign(doc.text.size(), 0);
        for (std::size_t i = 0; i < doc.text.size(); ++i) doc.tokens[i] = static_cast<unsigned char>(doc.text[i]);
      }
      std::string().swap(doc.text);
    }
}

nlohmann::json TextCorpus::tokenizer_json() const {
  if (!subword_) return {{"kind", "bytes"}};
  return {{"kind", "sentencepiece"},
          {"model", "tokenizer.model"},
          {"model_type", cfg_.subword_model_type},
          {"n_pieces", subword_->n_pieces()},
          {"newline_token", subword_->newline_token()},
          {"trained_on", "train"},
          {"training_bytes", subword_->training_bytes()},
          {"encoding", "each line encoded separately (identity normalisation, byte fallback); newline_token between lines"}};
}

namespace {
SubwordTrainer& trainer_slot() {
  static SubwordTrainer trainer;
  return trainer;
}
}  // namespace

void set_subword_trainer(SubwordTrainer trainer) { trainer_slot() = std::move(trainer); }
const SubwordTrainer& subword_trainer() { return trainer_slot(); }

std::unique_ptr<SplitProducer> TextCorpus::producer(Split split) const {
  return std::make_unique<TextProducer>(cfg_, docs_[static_cast<int>(split)], split, static_cast<uint32_t>(bos_token() < 0 ? 0 : bos_token()));
}

}  // namespace moetb
