// Hash router (Hash layers, arXiv 2106.04426): a token's experts are a fixed, balanced
// function of its token id, not learned. Ids are cut into blocks of E; block b maps its E
// ids onto the E experts by a seeded permutation perm_b (slot 0), and slot j adds j times a
// seeded stride s_b co-prime with E, so every slot of every full block uses each expert
// exactly once and a token's k experts are distinct. Uniform weights 1/k, no aux loss.
// Simplifications: k > 1 (the paper mostly uses k = 1); ids above kMaxTokenId are refused.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>

#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/rng.h"
#include "routers/router.h"
#include "routers/router_internal.h"

namespace moetb {

namespace {

constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;  // 16.7M ids: the table stays <= 128 MiB per slot
constexpr uint64_t kHashSalt = 0x4841534852545231ull;     // separates this stream from other seed users

class HashRouter final : public Router {
 public:
  explicit HashRouter(const RouterConfig& cfg) : Router(cfg) {
    for (int64_t s = 1; s < cfg_.n_experts; ++s)
      if (std::gcd(s, cfg_.n_experts) == 1) strides_.push_back(s);
    if (strides_.empty()) strides_.push_back(1);  // E = 1: one slot, the stride is unused
  }
  std::string name() const override { return "hash"; }
  bool needs_token_ids() const override { return true; }

 protected:
  RoutingDecision do_route(const at::Tensor& logits, const RouteContext& ctx) override {
    const int64_t n_tokens = logits.size(0), k = cfg_.top_k;
    const at::Tensor ids = ctx.token_ids.cpu().contiguous();  // [n_tokens] int64
    const int64_t* id = ids.data_ptr<int64_t>();
    at::Tensor experts = at::empty({n_tokens, k}, at::kLong);  // [n_tokens, k], CPU
    int64_t* out = experts.data_ptr<int64_t>();
    for (int64_t t = 0; t < n_tokens; ++t) {
      if (id[t] < 0 || id[t] > kMaxTokenId)
        throw std::invalid_argument("hash router: token id " + std::to_string(id[t]) + " outside [0, " +
                                    std::to_string(kMaxTokenId) + "]");
      grow_to(id[t]);
      for (int64_t j = 0; j < k; ++j) out[t * k + j] = table_[static_cast<std::size_t>(id[t] * k + j)];
    }
    RoutingDecision d;
    d.experts = experts.to(logits.device());
    d.weights = at::full({n_tokens, k}, 1.0 / static_cast<double>(k), logits.options());  // [n_tokens, k]
    d.probs = at::zeros({n_tokens, cfg_.n_experts}, logits.options()).scatter(1, d.experts, d.weights);
    d.aux_loss = zero_aux(logits);
    return d;
  }

 private:
  // Extends table_ (row-major [n_ids, k]) by whole blocks until it covers token_id. Each
  // block depends only on (seed, block), so the table is the same whatever the call order.
  void grow_to(int64_t token_id) {
    const int64_t n_experts = cfg_.n_experts, k = cfg_.top_k;
    while (static_cast<int64_t>(table_.size()) <= token_id * k) {
      const auto block = static_cast<uint64_t>(static_cast<int64_t>(table_.size()) / (n_experts * k));
      Rng rng(mix_seed({cfg_.seed, kHashSalt, block}));
      std::vector<int64_t> perm(static_cast<std::size_t>(n_experts));  // [E]
      std::iota(perm.begin(), perm.end(), int64_t{0});
      for (int64_t i = n_experts - 1; i > 0; --i)  // Fisher-Yates
        std::swap(perm[static_cast<std::size_t>(i)], perm[rng.below(static_cast<uint64_t>(i + 1))]);
      const int64_t stride = strides_[rng.below(strides_.size())];
      for (int64_t r = 0; r < n_experts; ++r)
        for (int64_t j = 0; j < k; ++j) table_.push_back((perm[static_cast<std::size_t>(r)] + j * stride) % n_experts);
    }
  }

  std::vector<int64_t> strides_;  // the units of Z_E: j * stride mod E is distinct for j < E
  std::vector<int64_t> table_;    // [n_ids, k] row-major, grown by blocks of E ids
};

}  // namespace

std::unique_ptr<Router> make_hash_router(const RouterConfig& cfg) { return std::make_unique<HashRouter>(cfg); }

}  // namespace moetb
