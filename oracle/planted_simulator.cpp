// Planted-routing simulator (see planted_simulator.h). Every random stream is derived
// from (seed, purpose, layer[, token id]) so layers and shards can be produced in any
// chunking with byte-identical results.
#include "oracle/planted_simulator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <stdexcept>

#include "oracle/reference_groups.h"

namespace moetb {
namespace {

constexpr uint64_t kStreamTokens = 1, kStreamLayer = 2, kStreamStiff = 3, kStreamProfile = 4;

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

bool in_unit(double x) { return x >= 0.0 && x <= 1.0; }

// True with probability p; draws nothing when p == 0, so unused knobs leave streams alone.
bool rng_draw_below(Rng& rng, double p) { return p > 0.0 && rng.uniform() < p; }

}  // namespace

PlantedSimulator::PlantedSimulator(SimConfig cfg) : cfg_(std::move(cfg)) {
  const SimConfig& c = cfg_;
  require(c.n_experts >= 1 && c.n_experts <= kMaxExperts,
          "experts must lie in [1, " + std::to_string(kMaxExperts) + "] (what the trace reader accepts)");
  require(c.top_k >= 1 && c.top_k <= c.n_experts, "top-k must lie in [1, experts]");
  require(c.n_domains >= 1 && c.n_domains <= kMaxDomainId + 1,
          "domains must lie in [1, " + std::to_string(kMaxDomainId + 1) + "] (what the trace reader accepts)");
  require(c.n_layers >= 1, "layers must be at least 1");
  require(c.n_tokens >= 1, "tokens must be at least 1");
  require(c.seq_len >= 1, "seq-len must be at least 1");
  require(c.vocab_per_domain >= 1 &&
              static_cast<int64_t>(c.vocab_per_domain) * c.n_domains <= std::numeric_limits<int32_t>::max(),
          "vocab-per-domain x domains must fit an I32 token id");
  require(c.domain_shares.empty() || static_cast<int>(c.domain_shares.size()) == c.n_domains,
          "shares: " + std::to_string(c.domain_shares.size()) + " values given for " + std::to_string(c.n_domains) +
              " domains");
  for (double s : c.domain_shares) require(s >= 0 && std::isfinite(s), "shares must be non-negative numbers");
  require(c.domain_shares.empty() || std::accumulate(c.domain_shares.begin(), c.domain_shares.end(), 0.0) > 0,
          "shares must sum to a positive number");
  require(c.domain_names.empty() || static_cast<int>(c.domain_names.size()) == c.n_domains,
          "domain-names: " + std::to_string(c.domain_names.size()) + " names given for " +
              std::to_string(c.n_domains) + " domains");
  for (std::size_t i = 0; i < c.domain_names.size(); ++i)  // names key per_domain in the metrics JSON
    for (std::size_t j = 0; j < i; ++j)
      require(c.domain_names[i] != c.domain_names[j], "domain-names: '" + c.domain_names[i] + "' is given twice");
  require(c.alpha.size() == 1 || static_cast<int>(c.alpha.size()) == c.n_layers,
          "alpha needs one value or one per layer (" + std::to_string(c.n_layers) + "), got " +
              std::to_string(c.alpha.size()));
  for (double a : c.alpha) require(in_unit(a), "alpha values must lie in [0, 1]");
  require(in_unit(c.beta), "beta must lie in [0, 1]");
  require(in_unit(c.gamma), "gamma must lie in [0, 1]");
  require(in_unit(c.unlabeled), "unlabeled must lie in [0, 1]");
  require(c.load_profile == "uniform" || c.load_profile == "zipf",
          "load-profile '" + c.load_profile + "' is not 'uniform' or 'zipf'");
  require(c.zipf_s >= 0 && std::isfinite(c.zipf_s), "zipf-s must be a non-negative number");
  groups_ = make_reference_groups(c.n_experts, c.n_domains, c.overlap);

  // Global load profile: Zipf weights over a seeded permutation of the experts.
  const auto n_e = static_cast<std::size_t>(c.n_experts);
  profile_.assign(n_e, 1.0 / static_cast<double>(n_e));
  if (c.load_profile == "zipf") {
    std::vector<int> order(n_e);
    std::iota(order.begin(), order.end(), 0);
    Rng rng(mix_seed({c.seed, kStreamProfile}));
    for (std::size_t i = n_e; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
    double z = 0;
    for (std::size_t r = 0; r < n_e; ++r) z += std::pow(static_cast<double>(r + 1), -c.zipf_s);
    for (std::size_t r = 0; r < n_e; ++r) profile_[order[r]] = std::pow(static_cast<double>(r + 1), -c.zipf_s) / z;
  }
  profile_cdf_.resize(n_e);
  std::partial_sum(profile_.begin(), profile_.end(), profile_cdf_.begin());

  // Token stream: one domain per sequence, uniform ids from the domain's vocabulary.
  std::vector<double> share_cdf(c.n_domains);
  for (int d = 0; d < c.n_domains; ++d)
    share_cdf[d] = (d ? share_cdf[d - 1] : 0.0) + (c.domain_shares.empty() ? 1.0 : c.domain_shares[d]);
  const auto n_t = static_cast<std::size_t>(c.n_tokens);
  token_ids_.resize(n_t);
  positions_.resize(n_t);
  domain_ids_.resize(n_t);
  true_domain_.resize(n_t);
  Rng rng(mix_seed({c.seed, kStreamTokens}));
  int domain = 0;
  for (std::size_t t = 0; t < n_t; ++t) {
    const auto pos = static_cast<int32_t>(t % static_cast<std::size_t>(c.seq_len));
    if (pos == 0) {
      const double u = rng.uniform() * share_cdf.back();
      domain = static_cast<int>(std::upper_bound(share_cdf.begin(), share_cdf.end(), u) - share_cdf.begin());
      domain = std::min(domain, c.n_domains - 1);
    }
    positions_[t] = pos;
    true_domain_[t] = domain;
    token_ids_[t] = static_cast<int32_t>(domain * c.vocab_per_domain + static_cast<int>(rng.below(c.vocab_per_domain)));
    domain_ids_[t] = rng.uniform() < c.unlabeled ? -1 : domain;
  }

  for (int l = 0; l < c.n_layers; ++l)
    layers_.push_back({Rng(mix_seed({c.seed, kStreamLayer, static_cast<uint64_t>(l)})), 0,
                       std::vector<int32_t>(static_cast<std::size_t>(c.top_k), -1)});

  meta_.num_experts = c.n_experts;
  meta_.top_k = c.top_k;
  for (int d = 0; d < c.n_domains; ++d)
    meta_.domain_names.push_back(c.domain_names.empty() ? "domain" + std::to_string(d) : c.domain_names[d]);
  meta_.reference_groups = groups_;
  meta_.model = "planted";
  meta_.source = "planted";
}

int32_t PlantedSimulator::draw_global(Rng& rng) const {
  if (cfg_.load_profile == "uniform") return static_cast<int32_t>(rng.below(static_cast<uint64_t>(cfg_.n_experts)));
  const double u = rng.uniform();
  auto it = std::upper_bound(profile_cdf_.begin(), profile_cdf_.end(), u);
  return static_cast<int32_t>(std::min<std::ptrdiff_t>(it - profile_cdf_.begin(), cfg_.n_experts - 1));
}

void PlantedSimulator::draw_set(Rng& rng, int layer, int domain, int32_t* out) const {
  const std::vector<int>& group = groups_[domain];
  const double a = alpha(layer);
  auto taken = [&](int32_t e, int j) { return std::find(out, out + j, e) != out + j; };
  for (int j = 0; j < cfg_.top_k; ++j) {
    int32_t e = -1;
    // In-group draw; a group smaller than k runs out and the rest go to the global profile.
    if (rng.uniform() < a) {
      for (int tries = 0; tries < 64 && e < 0; ++tries) {
        const auto cand = static_cast<int32_t>(group[rng.below(group.size())]);
        if (!taken(cand, j)) e = cand;
      }
    }
    for (int tries = 0; tries < 1024 && e < 0; ++tries) {
      const int32_t cand = draw_global(rng);
      if (!taken(cand, j)) e = cand;
    }
    for (int32_t cand = 0; e < 0; ++cand)  // deterministic last resort for extreme profiles
      if (!taken(cand, j)) e = cand;
    out[j] = e;
  }
}

void PlantedSimulator::generate_layer(int layer, int64_t begin, int64_t n, int32_t* out) {
  LayerState& st = layers_.at(layer);
  if (begin != st.next_token) throw std::logic_error("generate_layer: layers are generated in token order");
  const int k = cfg_.top_k;
  for (int64_t i = 0; i < n; ++i) {
    const auto t = static_cast<std::size_t>(begin + i);
    int32_t* set = out + i * k;
    const bool has_prev = positions_[t] != 0;
    if (has_prev && rng_draw_below(st.rng, cfg_.gamma)) {
      std::copy(st.prev_set.begin(), st.prev_set.end(), set);
    } else if (rng_draw_below(st.rng, cfg_.beta)) {
      Rng fixed(mix_seed({cfg_.seed, kStreamStiff, static_cast<uint64_t>(layer), static_cast<uint32_t>(token_ids_[t])}));
      draw_set(fixed, layer, true_domain_[t], set);
    } else {
      draw_set(st.rng, layer, true_domain_[t], set);
    }
    std::copy(set, set + k, st.prev_set.begin());
  }
  st.next_token = begin + n;
}

std::string PlantedSimulator::config_json() const {
  const SimConfig& c = cfg_;
  nlohmann::json j = {{"experts", c.n_experts}, {"top_k", c.top_k}, {"domains", c.n_domains},
                      {"shares", c.domain_shares}, {"layers", c.n_layers}, {"alpha", c.alpha},
                      {"load_profile", c.load_profile}, {"zipf_s", c.zipf_s}, {"beta", c.beta},
                      {"gamma", c.gamma}, {"overlap", c.overlap}, {"vocab_per_domain", c.vocab_per_domain},
                      {"unlabeled", c.unlabeled}, {"seq_len", c.seq_len}, {"tokens", c.n_tokens},
                      {"seed", c.seed}};
  return j.dump();
}

TraceData simulate_trace(const SimConfig& cfg) {
  PlantedSimulator sim(cfg);
  TraceData trace;
  trace.meta_data = sim.meta();
  trace.token_ids = sim.token_ids();
  trace.positions = sim.positions();
  trace.domain_ids = sim.domain_ids();
  for (int l = 0; l < cfg.n_layers; ++l) {
    std::vector<int32_t> experts(static_cast<std::size_t>(cfg.n_tokens * cfg.top_k));
    sim.generate_layer(l, 0, cfg.n_tokens, experts.data());
    trace.k.push_back(cfg.top_k);
    trace.experts.push_back(std::move(experts));
  }
  return trace;
}

}  // namespace moetb
