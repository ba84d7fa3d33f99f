// Random router: the floor of the MoE Routing Testbed (arXiv 2604.07030) comparisons.
// Each token gets top_k distinct experts drawn uniformly (partial Fisher-Yates) from the
// project's portable RNG (common/rng.h), so a seed and the sequence of route() calls fix
// every decision on every platform. Uniform weights 1/k, no aux loss; probs reports the
// sampling distribution (1/E everywhere). Simplification: the logits are ignored.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>

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

constexpr uint64_t kRandomSalt = 0x52414e444f4d5254ull;  // separates this stream from other seed users

class RandomRouter final : public Router {
 public:
  explicit RandomRouter(const RouterConfig& cfg) : Router(cfg), rng_(mix_seed({cfg.seed, kRandomSalt})) {}
  std::string name() const override { return "random"; }
  std::vector<uint64_t> save_state() const override {
    const auto s = rng_.state();
    return {s[0], s[1], s[2], s[3]};
  }
  void load_state(const std::vector<uint64_t>& s) override {
    if (s.size() != 4) throw std::invalid_argument("random router: a saved state has 4 words, got " + std::to_string(s.size()));
    rng_.set_state({s[0], s[1], s[2], s[3]});
  }

 protected:
  RoutingDecision do_route(const at::Tensor& logits, const RouteContext& /*ctx*/) override {
    const int64_t n_tokens = logits.size(0), n_experts = cfg_.n_experts, k = cfg_.top_k;
    at::Tensor experts = at::empty({n_tokens, k}, at::kLong);  // [n_tokens, k], CPU
    int64_t* out = experts.data_ptr<int64_t>();
    std::vector<int64_t> pool(static_cast<std::size_t>(n_experts));  // [E]
    for (int64_t t = 0; t < n_tokens; ++t) {
      std::iota(pool.begin(), pool.end(), int64_t{0});
      for (int64_t j = 0; j < k; ++j) {  // slot j takes a uniform pick of the n_experts - j left
        const auto pick = static_cast<int64_t>(rng_.below(static_cast<uint64_t>(n_experts - j))) + j;
        std::swap(pool[static_cast<std::size_t>(j)], pool[static_cast<std::size_t>(pick)]);
        out[t * k + j] = pool[static_cast<std::size_t>(j)];
      }
    }
    RoutingDecision d;
    d.experts = experts.to(logits.device());
    d.weights = at::full({n_tokens, k}, 1.0 / static_cast<double>(k), logits.options());  // [n_tokens, k]
    d.probs = at::full({n_tokens, n_experts}, 1.0 / static_cast<double>(n_experts),
                       logits.options());  // [n_tokens, E]
    d.aux_loss = zero_aux(logits);
    return d;
  }

 private:
  Rng rng_;
};

}  // namespace

std::unique_ptr<Router> make_random_router(const RouterConfig& cfg) { return std::make_unique<RandomRouter>(cfg); }

}  // namespace moetb
