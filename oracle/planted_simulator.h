// Planted-routing simulator: traces whose specialization is known by construction, to
// prove the metrics right before they are trusted on real checkpoints. Per layer, each
// slot lands in the token's own domain group with probability alpha, else on a global
// load profile (uniform or Zipf); a token id may keep a fixed expert set (stiffness
// beta) or reuse the previous token's set (span coherence gamma). See docs/validation.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/rng.h"
#include "metrics/trace.h"

namespace moetb {

struct SimConfig {
  int64_t n_experts = 64;                 // E
  int top_k = 4;                          // slots per token
  int n_domains = 4;                      // D
  std::vector<double> domain_shares;      // [D] relative shares; empty = equal
  std::vector<std::string> domain_names;  // [D]; empty = "domain0", ...
  int n_layers = 4;                       // L
  std::vector<double> alpha = {0.8};      // per-layer specialization, one value or L values
  std::string load_profile = "uniform";   // global profile: "uniform" or "zipf"
  double zipf_s = 1.0;                    // Zipf exponent of the global profile
  double beta = 0.0;                      // stiffness: P(token id reuses its fixed set)
  double gamma = 0.0;                     // span coherence: P(token reuses the previous token's set)
  int overlap = 0;                        // experts shared with the next domain's group
  int vocab_per_domain = 1024;            // disjoint vocabularies: domain d owns [d*V, (d+1)*V)
  double unlabeled = 0.0;                 // fraction of tokens written with domain id -1
  int seq_len = 256;                      // tokens per sequence (one domain per sequence)
  int64_t n_tokens = 65536;               // T
  uint64_t seed = 1;
};

class PlantedSimulator {
 public:
  explicit PlantedSimulator(SimConfig cfg);  // throws std::invalid_argument naming the bad field
  const SimConfig& config() const { return cfg_; }
  const TraceMeta& meta() const { return meta_; }
  const std::vector<int32_t>& token_ids() const { return token_ids_; }    // [T]
  const std::vector<int32_t>& positions() const { return positions_; }    // [T]
  const std::vector<int32_t>& domain_ids() const { return domain_ids_; }  // [T], -1 = unlabeled
  double alpha(int layer) const { return cfg_.alpha.size() == 1 ? cfg_.alpha[0] : cfg_.alpha[layer]; }
  // Global load profile over experts (sums to 1).
  const std::vector<double>& load_profile() const { return profile_; }

  // Expert ids of layer l for tokens [begin, begin + n) into out [n, top_k]; each layer's
  // stream continues where it stopped, so begin must be the layer's next token.
  void generate_layer(int layer, int64_t begin, int64_t n, int32_t* out);
  // Provenance: the config as a JSON string (written into the trace metadata).
  std::string config_json() const;

 private:
  struct LayerState {
    Rng rng;
    int64_t next_token = 0;
    std::vector<int32_t> prev_set;  // [top_k] the previous token's set
  };
  void draw_set(Rng& rng, int layer, int domain, int32_t* out) const;
  int32_t draw_global(Rng& rng) const;

  SimConfig cfg_;
  TraceMeta meta_;
  std::vector<std::vector<int>> groups_;
  std::vector<double> profile_, profile_cdf_;
  std::vector<int32_t> token_ids_, positions_, domain_ids_, true_domain_;
  std::vector<LayerState> layers_;
};

// The whole planted trace in memory.
TraceData simulate_trace(const SimConfig& cfg);

struct SimOutput {
  std::string path;        // a file, or a directory of shards when shard_tokens > 0
  int64_t shard_tokens = 0;  // 0 = one file
  DType experts_dtype = DType::kI16;
  DType weights_dtype = DType::kOther;  // kOther = no weights tensors
  DType probs_dtype = DType::kOther;    // kOther = no probs tensors
  bool force = false;                   // replace an existing path
};
// Streams the planted trace to disk, one layer of one shard in memory at a time.
// Nothing appears at out.path until every shard is complete.
void simulate_to_disk(const SimConfig& cfg, const SimOutput& out);

}  // namespace moetb
