// The datagen config: every knob of the synthetic domains and the real-text domains,
// as a plain aggregate with defaults (docs/datagen.md explains each). Bound to TOML keys
// and --set overrides through ConfigBinder; validate() names the first bad key.
// Follows the MoE Routing Testbed's separated-domain mix (arXiv 2604.07030).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace moetb {
class ConfigBinder;

struct DatagenConfig {
  int64_t seed = 1;               // one seed for structure and sampling
  // Synthetic domains (ignored when text_domains or manpage_domains is set).
  int64_t domains = 4;            // D, 1..64
  int64_t vocab_per_domain = 64;  // V: free tokens each domain uses
  double shared_vocab = 0.25;     // fraction of V shared by all domains (0 disjoint, 1 one vocabulary)
  double common_mix = 0.0;        // lambda: weight of a transition structure common to all domains
  int64_t order = 1;              // Markov order of the free process: 1 or 2
  int64_t branching = 4;          // successors per context
  double transition_zipf = 1.0;   // successor probabilities ~ rank^-s (0 = uniform over successors)
  int64_t motifs_per_domain = 8;  // planted n-grams per domain (0 = none)
  int64_t motif_len_min = 3;      // motif length in tokens, marker included (>= 3)
  int64_t motif_len_max = 8;      // <= 10
  double motif_rate = 0.03;       // P(a motif starts) at each free step
  std::vector<double> shares;     // relative domain shares (default equal)
  std::vector<std::string> domain_names;  // default d0, d1, ...
  // Documents and packing (both kinds).
  std::string doc_len_dist = "geometric";  // geometric (min + geometric tail, capped at max) or fixed (= mean)
  int64_t doc_len_mean = 256;     // tokens per document including the BOS token
  int64_t doc_len_min = 16;
  int64_t doc_len_max = 2048;
  std::string packing = "packed"; // packed (domain may change at a document boundary) or domain (one domain per sequence)
  int64_t seq_len = 128;          // tokens per training sequence
  int64_t train_tokens = 2000000; // rounded up to whole sequences
  int64_t val_tokens = 131072;
  bool bos = true;                // a BOS token opens every document
  std::string token_dtype = "u16";   // u16 or u32
  int64_t shard_sequences = 8192; // sequences per shard file
  // Real text domains: name -> folder; byte-level tokens, one document per file.
  std::map<std::string, std::string> text_domains;
  double val_fraction = 0.1;      // share of files (by a seeded hash of the path) in the validation split
  int64_t max_file_bytes = 1000000;  // longer files (rendered pages) are cut to this many bytes
  // Manual-page domains: name -> man tree (DIR/man*/PAGE[.gz]), one document per rendered page.
  std::map<std::string, std::string> manpage_domains;
  std::vector<std::string> translated_only;  // these domains keep only pages another manpage domain also has
  int64_t max_pages = 0;          // at most this many pages per domain and split (0 = no cap)
  int64_t render_jobs = 2;        // formatter processes run at once
  std::string groff = "groff";    // the formatter (PATH lookup)
  // Tokenizer of text datasets: bytes, or a SentencePiece model trained on the train split.
  std::string tokenizer = "bytes";
  int64_t subword_vocab_size = 8000;        // pieces (the dataset adds a newline and a BOS token)
  std::string subword_model_type = "unigram";  // unigram or bpe
  double subword_character_coverage = 0.9995;
};

void bind_datagen_config(ConfigBinder& binder, DatagenConfig& cfg);
// Throws std::invalid_argument("key: problem") for the first invalid value.
void validate_datagen_config(const DatagenConfig& cfg);
bool is_text_dataset(const DatagenConfig& cfg);

}  // namespace moetb
