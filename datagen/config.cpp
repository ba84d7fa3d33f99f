// Binding and validation of DatagenConfig (config.h).
#include "datagen/config.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "common/config_binder.h"

namespace moetb {

void bind_datagen_config(ConfigBinder& b, DatagenConfig& c) {
  b.add("seed", &c.seed, "random seed (structure and sampling)");
  b.add("domains", &c.domains, "number of synthetic domains D (1..64)");
  b.add("vocab_per_domain", &c.vocab_per_domain, "free tokens per domain V");
  b.add("shared_vocab", &c.shared_vocab, "fraction of V shared by all domains, in [0, 1]");
  b.add("common_mix", &c.common_mix, "weight of the transition structure common to all domains, in [0, 1]");
  b.add("order", &c.order, "Markov order of the free process (1 or 2)");
  b.add("branching", &c.branching, "successors per context");
  b.add("transition_zipf", &c.transition_zipf, "successor probabilities proportional to rank^-s");
  b.add("motifs_per_domain", &c.motifs_per_domain, "planted n-gram motifs per domain");
  b.add("motif_len_min", &c.motif_len_min, "shortest motif, marker included (>= 3)");
  b.add("motif_len_max", &c.motif_len_max, "longest motif (<= 10)");
  b.add("motif_rate", &c.motif_rate, "probability that a motif starts at a free step");
  b.add("shares", &c.shares, "relative domain shares (empty = equal)");
  b.add("domain_names", &c.domain_names, "domain names (empty = d0, d1, ...)");
  b.add("doc_len_dist", &c.doc_len_dist, "document length distribution: geometric (min + geometric tail, capped at max) or fixed (= mean)");
  b.add("doc_len_mean", &c.doc_len_mean, "mean document length in tokens (BOS included)");
  b.add("doc_len_min", &c.doc_len_min, "shortest document");
  b.add("doc_len_max", &c.doc_len_max, "longest document");
  b.add("packing", &c.packing, "packed (documents back to back) or domain (one domain per sequence)");
  b.add("seq_len", &c.seq_len, "tokens per training sequence");
  b.add("train_tokens", &c.train_tokens, "training tokens (rounded up to whole sequences)");
  b.add("val_tokens", &c.val_tokens, "validation tokens (rounded up to whole sequences)");
  b.add("bos", &c.bos, "open every document with a BOS token");
  b.add("token_dtype", &c.token_dtype, "token storage: u16 or u32");
  b.add("shard_sequences", &c.shard_sequences, "sequences per shard file");
  b.add("text_domains", &c.text_domains, "real text domains: name = folder (byte-level, one document per file)");
  b.add("val_fraction", &c.val_fraction, "share of files in the validation split (text domains)");
  b.add("max_file_bytes", &c.max_file_bytes, "longer files and rendered pages are cut to this many bytes (text domains)");
  b.add("manpage_domains", &c.manpage_domains, "manual-page domains: name = man tree (DIR/man*/), one document per page rendered by groff");
  b.add("translated_only", &c.translated_only, "manpage domains that keep only the pages (same man*/NAME) another manpage domain also has");
  b.add("max_pages", &c.max_pages, "at most this many pages per manpage domain and split (0 = no cap)");
  b.add("render_jobs", &c.render_jobs, "formatter processes run at once (manpage domains)");
  b.add("groff", &c.groff, "the formatter program (manpage domains)");
  b.add("tokenizer", &c.tokenizer, "text tokenizer: bytes, or sentencepiece (trained on the train split)");
  b.add("subword_vocab_size", &c.subword_vocab_size, "sentencepiece pieces (the dataset adds newline and BOS tokens)");
  b.add("subword_model_type", &c.subword_model_type, "sentencepiece model: unigram or bpe");
  b.add("subword_character_coverage", &c.subword_character_coverage, "share of characters sentencepiece covers with pieces, in (0, 1]");
}

bool is_text_dataset(const DatagenConfig& cfg) { return !cfg.text_domains.empty() || !cfg.manpage_domains.empty(); }

namespace {
[[noreturn]] void bad(const std::string& key, const std::string& what) { throw std::invalid_argument(key + ": " + what); }
void require_range(const std::string& key, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) bad(key, std::to_string(v) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}
void require_unit(const std::string& key, double v) {
  if (!(v >= 0.0 && v <= 1.0)) bad(key, std::to_string(v) + " is outside [0, 1]");
}
}  // namespace

void validate_datagen_config(const DatagenConfig& c) {
  const bool text = is_text_dataset(c);
  const int64_t n_domains = text ? static_cast<int64_t>(c.text_domains.size() + c.manpage_domains.size()) : c.domains;
  require_range("domains", n_domains, 1, 64);
  if (!text) {
    require_range("vocab_per_domain", c.vocab_per_domain, 2, 1 << 20);
    require_unit("shared_vocab", c.shared_vocab);
    require_unit("common_mix", c.common_mix);
    require_range("order", c.order, 1, 2);
    require_range("branching", c.branching, 2, std::min<int64_t>(c.vocab_per_domain, 1024));
    if (!(c.transition_zipf >= 0.0 && c.transition_zipf <= 10.0)) bad("transition_zipf", "must be in [0, 10]");
    require_range("motifs_per_domain", c.motifs_per_domain, 0, 256);
    require_range("motif_len_min", c.motif_len_min, 3, 10);
    require_range("motif_len_max", c.motif_len_max, c.motif_len_min, 10);
    if (!(c.motif_rate >= 0.0 && c.motif_rate < 1.0)) bad("motif_rate", "must be in [0, 1)");
    if (c.motifs_per_domain == 0 && c.motif_rate > 0.0) bad("motif_rate", "is positive but motifs_per_domain is 0");
    // The free process on V^order contexts must stay a reasonable table.
    if (c.order == 2 && c.vocab_per_domain > 256) bad("vocab_per_domain", "at most 256 with order 2");
    if (!c.domain_names.empty() && static_cast<int64_t>(c.domain_names.size()) != c.domains)
      bad("domain_names", "has " + std::to_string(c.domain_names.size()) + " names for " + std::to_string(c.domains) + " domains");
    for (std::size_t i = 0; i < c.domain_names.size(); ++i)  // names key the per-domain results
      for (std::size_t j = 0; j < i; ++j)
        if (c.domain_names[i] == c.domain_names[j]) bad("domain_names", "names '" + c.domain_names[i] + "' twice");
  }
  if (!c.shares.empty()) {
    if (static_cast<int64_t>(c.shares.size()) != n_domains)
      bad("shares", "has " + std::to_string(c.shares.size()) + " values for " + std::to_string(n_domains) + " domains");
    double sum = 0.0;
    for (double s : c.shares) {
      if (!(s >= 0.0) || !std::isfinite(s)) bad("shares", "values must be finite and non-negative");
      sum += s;
    }
    if (!(sum > 0.0)) bad("shares", "must sum to a positive number");
  }
  if (c.doc_len_dist != "geometric" && c.doc_len_dist != "fixed")
    bad("doc_len_dist", "'" + c.doc_len_dist + "' is not one of geometric, fixed");
  require_range("doc_len_min", c.doc_len_min, 2, 1 << 24);
  require_range("doc_len_max", c.doc_len_max, c.doc_len_min, 1 << 24);
  require_range("doc_len_mean", c.doc_len_mean, c.doc_len_min, c.doc_len_max);
  if (c.packing != "packed" && c.packing != "domain") bad("packing", "'" + c.packing + "' is not one of packed, domain");
  require_range("seq_len", c.seq_len, 2, 1 << 20);
  require_range("train_tokens", c.train_tokens, 1, int64_t{1} << 40);
  require_range("val_tokens", c.val_tokens, 1, int64_t{1} << 40);
  if (c.token_dtype != "u16" && c.token_dtype != "u32") bad("token_dtype", "'" + c.token_dtype + "' is not one of u16, u32");
  require_range("shard_sequences", c.shard_sequences, 1, int64_t{1} << 30);
  if (text) {
    if (!(c.val_fraction > 0.0 && c.val_fraction < 1.0)) bad("val_fraction", "must be in (0, 1)");
    require_range("max_file_bytes", c.max_file_bytes, 1, int64_t{1} << 32);
    for (const auto& [name, dir] : c.text_domains) {
      if (name.empty()) bad("text_domains", "a domain name is empty");
      if (dir.empty()) bad("text_domains." + name, "folder is empty");
    }
    for (const auto& [name, dir] : c.manpage_domains) {
      if (name.empty()) bad("manpage_domains", "a domain name is empty");
      if (dir.empty()) bad("manpage_domains." + name, "folder is empty");
      if (c.text_domains.count(name)) bad("manpage_domains." + name, "is also a text_domains name");
    }
    for (const auto& name : c.translated_only)
      if (!c.manpage_domains.count(name)) bad("translated_only", "'" + name + "' is not a manpage_domains name");
    require_range("max_pages", c.max_pages, 0, int64_t{1} << 30);
    require_range("render_jobs", c.render_jobs, 1, 64);
    if (!c.manpage_domains.empty() && c.groff.empty()) bad("groff", "is empty");
  }
  if (c.tokenizer != "bytes" && c.tokenizer != "sentencepiece")
    bad("tokenizer", "'" + c.tokenizer + "' is not one of bytes, sentencepiece");
  if (c.tokenizer == "sentencepiece" && !text)
    bad("tokenizer", "sentencepiece needs text_domains or manpage_domains (synthetic domains have their own ids)");
  {
    // Byte fallback needs the 256 byte pieces plus the unknown piece and some characters.
    require_range("subword_vocab_size", c.subword_vocab_size, 300, c.token_dtype == "u16" ? 65534 : 1 << 20);
    if (c.subword_model_type != "unigram" && c.subword_model_type != "bpe")
      bad("subword_model_type", "'" + c.subword_model_type + "' is not one of unigram, bpe");
    if (!(c.subword_character_coverage > 0.0 && c.subword_character_coverage <= 1.0))
      bad("subword_character_coverage", "must be in (0, 1]");
  }
}

}  // namespace moetb
