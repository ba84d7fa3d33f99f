// Dataset directory writer (dataset_writer.h).
#include "datagen/dataset_writer.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "common/safe_output.h"

namespace moetb {
namespace fs = std::filesystem;
namespace {


struct SplitCounts {
  std::vector<int64_t> tokens, documents, motif_tokens;  // per domain
};

// Streams one split into dir/<split>/ and describes it in the manifest.
nlohmann::json write_split(SplitProducer& producer, Split split, const DatagenConfig& cfg, int64_t n_domains,
                           const OutputDir& out, SplitCounts& counts) {
  const fs::path& dir = out.tmp();
  auto write_file = [&out](const fs::path& path, const void* data, std::size_t bytes) { out.write_file(path, data, bytes); };
  const std::string name = split_name(split);
  out.make_folder(dir / name);
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
    out.write_file(dir / name / "sources.txt", text);
  }
  return {{"n_sequences", total}, {"n_tokens", total * S}, {"n_documents", docs.size()}, {"shards", shards}};
}

// Builds the directory under a temporary name and a lock beside it, then swaps it into place.
template <typename Fill>
nlohmann::json write_directory(const DatasetWriteOptions& opts, uint64_t estimate, Fill&& fill) {
  if (opts.dir.empty()) throw std::invalid_argument("--out: no dataset directory given");
  fs::path target = fs::path(opts.dir).lexically_normal();
  if (!target.has_filename() && target.has_relative_path()) target = target.parent_path();  // "out/" names out
  OutputOptions oo;
  oo.force = opts.force;
  for (const auto& in : opts.inputs) oo.inputs.emplace_back(in);
  check_output(target, OutputKind::dataset, oo);  // before the lock: a missing parent folder is named as such
  if (estimate > 0) check_space_for(target, estimate, "the dataset");
  const OutputLock lock = OutputLock::take(OutputLock::beside(target), opts.dir, OutputLock::Mode::exclusive, true);
  OutputDir out(target, OutputKind::dataset, oo);
  nlohmann::json manifest = fill(out);
  manifest["format"] = kDatasetFormat;
  manifest["git_revision"] = opts.git_revision;
  manifest["config"] = opts.config_json;
  out.write_file(out.tmp() / "config.toml", opts.config_toml);
  out.write_file(out.tmp() / "manifest.json", manifest.dump(2) + "\n");
  out.commit();
  return manifest;
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
  // tokens (2 or 4 bytes) + domain id (1) + motif id (2) per token, both splits
  const auto n_tokens = static_cast<uint64_t>(std::max<int64_t>(0, cfg.train_tokens) + std::max<int64_t>(0, cfg.val_tokens));
  const uint64_t estimate = n_tokens * ((cfg.token_dtype == "u16" ? 2 : 4) + 3);
  return write_directory(opts, estimate, [&](const OutputDir& dir) {
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
  DatasetWriteOptions with_inputs = opts;
  for (const auto& [name, folder] : cfg.text_domains) with_inputs.inputs.push_back(folder);
  return write_directory(with_inputs, 0, [&](const OutputDir& dir) {
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
    if (corpus.subword() != nullptr) dir.write_file(dir.tmp() / "tokenizer.model", corpus.subword()->serialized());
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
