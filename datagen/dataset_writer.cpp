// Dataset directory writer (dataset_writer.h).
#include "datagen/dataset_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace moetb {
namespace fs = std::filesystem;
namespace {

void write_file(const fs::path& path, const void* data, std::size_t bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error(path.string() + ": cannot create: " + std::strerror(errno));
  const bool ok = std::fwrite(data, 1, bytes, f) == bytes;
  if (std::fclose(f) != 0 || !ok) throw std::runtime_error(path.string() + ": write failed (disk full?)");
}

void write_text(const fs::path& path, const std::string& text) { write_file(path, text.data(), text.size()); }

struct SplitCounts {
  std::vector<int64_t> tokens, documents, motif_tokens;  // per domain
};

// Streams one split into dir/<split>/ and describes it in the manifest.
nlohmann::json write_split(SplitProducer& producer, Split split, const DatagenConfig& cfg, int64_t n_domains,
                           const fs::path& dir, SplitCounts& counts) {
  const std::string name = split_name(split);
  fs::create_directories(dir / name);
  const int64_t S = cfg.seq_len;
  const bool narrow = cfg.token_dtype == "u16";
  counts.tokens.assign(n_domains, 0);
  counts.documents.assign(n_domains, 0);
  counts.motif_tokens.assign(n_domains, 0);
  std::vector<DocumentRecord> docs;
  TokenChunk chunk;
  std::vector<uint16_t> tokens16;
  nlohmann::json shards = nlohmann::json::array();
  const int64_t total = producer.n_sequences();
  for (int64_t begin = 0, index = 0; begin < total; begin += cfg.shard_sequences, ++index) {
    const int64_t n = std::min(cfg.shard_sequences, total - begin);
    const auto n_tok = static_cast<std::size_t>(n * S);
    chunk.resize(n_tok);
    producer.fill(n, chunk, docs);
    char stem[40];
    std::snprintf(stem, sizeof stem, "shard-%05lld", static_cast<long long>(index));
    const fs::path base = dir / name / stem;
    if (narrow) {
      tokens16.assign(chunk.tokens.begin(), chunk.tokens.end());
      write_file(base.string() + ".tokens", tokens16.data(), n_tok * 2);
    } else {
      write_file(base.string() + ".tokens", chunk.tokens.data(), n_tok * 4);
    }
    write_file(base.string() + ".domains", chunk.domains.data(), n_tok);
    write_file(base.string() + ".motifs", chunk.motifs.data(), n_tok * 2);
    for (std::size_t i = 0; i < n_tok; ++i) {
      counts.tokens[chunk.domains[i]] += 1;
      counts.motif_tokens[chunk.domains[i]] += chunk.motifs[i] >= 0 ? 1 : 0;
    }
    shards.push_back({{"name", name + "/" + stem}, {"n_sequences", n}});
  }
  for (const auto& d : docs) counts.documents[d.domain] += 1;
  write_file(dir / name / "documents.bin", docs.data(), docs.size() * sizeof(DocumentRecord));
  const std::vector<std::string> sources = producer.sources();
  if (!sources.empty()) {
    std::string text;
    for (const auto& s : sources) text += s + "\n";
    write_text(dir / name / "sources.txt", text);
  }
  return {{"n_sequences", total}, {"n_tokens", total * S}, {"n_documents", docs.size()}, {"shards", shards}};
}

// Builds the directory under a temporary name, then swaps it into place.
template <typename Fill>
nlohmann::json write_directory(const DatasetWriteOptions& opts, Fill&& fill) {
  if (opts.dir.empty()) throw std::invalid_argument("--out: no dataset directory given");
  fs::path target = fs::path(opts.dir).lexically_normal();
  if (!target.has_filename() && target.has_relative_path()) target = target.parent_path();  // "out/" names out
  std::error_code ec;
  if (fs::exists(target, ec) && !opts.force)
    throw std::invalid_argument(opts.dir + ": already exists (pass --force to replace it)");
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) throw std::invalid_argument(opts.dir + ": parent folder does not exist");
  const std::string stem = target.filename().string();
  const fs::path tmp = parent / ("." + stem + ".tmp-" + std::to_string(::getpid()));
  const fs::path old = parent / ("." + stem + ".old-" + std::to_string(::getpid()));
  try {
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp);
    nlohmann::json manifest = fill(tmp);
    manifest["format"] = kDatasetFormat;
    manifest["git_revision"] = opts.git_revision;
    manifest["config"] = opts.config_json;
    write_text(tmp / "config.toml", opts.config_toml);
    write_text(tmp / "manifest.json", manifest.dump(2) + "\n");
    const bool replacing = fs::exists(target, ec);
    if (replacing) fs::rename(target, old);
    fs::rename(tmp, target);
    if (replacing) fs::remove_all(old, ec);
    return manifest;
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

nlohmann::json split_counts_json(const SplitCounts (&counts)[2], int64_t d) {
  nlohmann::json j;
  for (int s = 0; s < 2; ++s) {
    const char* name = split_name(static_cast<Split>(s));
    j["tokens"][name] = counts[s].tokens[d];
    j["documents"][name] = counts[s].documents[d];
    j["motif_tokens"][name] = counts[s].motif_tokens[d];
  }
  return j;
}

}  // namespace

nlohmann::json write_synthetic_dataset(const SyntheticCorpus& corpus, const DatasetWriteOptions& opts) {
  const DatagenConfig& cfg = corpus.config();
  return write_directory(opts, [&](const fs::path& dir) {
    nlohmann::json m;
    m["kind"] = "synthetic";
    SplitCounts counts[2];
    for (int s = 0; s < 2; ++s) {
      auto producer = corpus.producer(static_cast<Split>(s));
      m["splits"][split_name(static_cast<Split>(s))] = write_split(*producer, static_cast<Split>(s), cfg, corpus.n_domains(), dir, counts[s]);
    }
    const TokenLayout& t = corpus.layout();
    m["seed"] = cfg.seed;
    m["vocab_size"] = t.vocab_size;
    m["token_dtype"] = cfg.token_dtype;
    m["bos_token"] = t.bos_token >= 0 ? nlohmann::json(t.bos_token) : nlohmann::json(nullptr);
    m["seq_len"] = cfg.seq_len;
    m["layout"] = {{"n_shared", t.n_shared}, {"n_private", t.n_private}, {"marker_base", t.marker_base},
                   {"motifs_per_domain", cfg.motifs_per_domain}};
    const std::vector<double> p = corpus.domain_probabilities();
    for (int64_t d = 0; d < corpus.n_domains(); ++d) {
      const MarkovSource& src = corpus.source(d);
      nlohmann::json dj = split_counts_json(counts, d);
      dj["name"] = cfg.domain_names.empty() ? "d" + std::to_string(d) : cfg.domain_names[d];
      dj["share"] = p[d];
      dj["entropy_rate_bits"] = src.entropy_rate_bits();
      dj["n_states"] = src.n_states();
      nlohmann::json motifs = nlohmann::json::array();
      for (const auto& symbols : src.motifs()) {
        std::vector<uint32_t> tokens;
        for (uint32_t s : symbols) tokens.push_back(t.symbol_to_token[d][s]);
        motifs.push_back(tokens);
      }
      dj["motifs"] = motifs;
      m["domains"].push_back(dj);
    }
    return m;
  });
}

nlohmann::json write_text_dataset(const TextCorpus& corpus, const DatagenConfig& cfg, const DatasetWriteOptions& opts) {
  return write_directory(opts, [&](const fs::path& dir) {
    nlohmann::json m;
    m["kind"] = "text";
    const auto n_domains = static_cast<int64_t>(corpus.domains().size());
    SplitCounts counts[2];
    for (int s = 0; s < 2; ++s) {
      auto producer = corpus.producer(static_cast<Split>(s));
      m["splits"][split_name(static_cast<Split>(s))] = write_split(*producer, static_cast<Split>(s), cfg, n_domains, dir, counts[s]);
    }
    m["seed"] = cfg.seed;
    m["vocab_size"] = corpus.vocab_size();
    m["token_dtype"] = cfg.token_dtype;
    m["bos_token"] = cfg.bos ? nlohmann::json(corpus.bos_token()) : nlohmann::json(nullptr);
    m["seq_len"] = cfg.seq_len;
    m["tokenizer"] = corpus.tokenizer_json();  // a subword model is stored beside the data
    if (corpus.subword() != nullptr) write_text(dir / "tokenizer.model", corpus.subword()->serialized());
    for (int64_t d = 0; d < n_domains; ++d) {
      const TextDomainSummary& sd = corpus.domains()[d];
      nlohmann::json dj = split_counts_json(counts, d);
      dj["name"] = sd.name;
      dj["folder"] = sd.folder;
      dj["entropy_rate_bits"] = nullptr;  // unknown for real text
      dj["source"] = sd.source;
      dj["files_found"] = sd.files_found;
      if (sd.source == "manpages") dj["pages_skipped"] = sd.skipped;
      dj["files"] = {{"train", sd.files[0]}, {"val", sd.files[1]}};
      m["domains"].push_back(dj);
    }
    return m;
  });
}

}  // namespace moetb
