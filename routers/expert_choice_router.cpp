// Expert-choice router (Zhou et al., "Mixture-of-Experts with Expert Choice Routing",
// arXiv 2202.09368): G = softmax(logits) over experts; each expert takes the C tokens of
// the micro-batch with the highest G[:, e], C = min(n_tokens, ceil(c * n_tokens / E)),
// c = capacity_factor or, when that is 0, top_k (the compute of token-choice top-k). A
// token gets 0..E experts, so the decision has E slots, sorted by weight, -1 padded.
// It looks across the whole micro-batch (not causal), also at evaluation. Aux: z-loss only.
// Causal rule (route_per_token, eval.routing "dropless"; docs/routers.md): each token takes
// its own k' = round(c) highest-G experts, the mean experts per token expert choice gives,
// as BASE layers (arXiv 2103.16716) route greedily per token at test time.
#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/topk.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <tuple>

#include "routers/router.h"
#include "routers/router_internal.h"

namespace moetb {

int64_t expert_choice_capacity(int64_t n_tokens, const RouterConfig& cfg) {
  const double c = cfg.capacity_factor > 0.0 ? cfg.capacity_factor : static_cast<double>(cfg.top_k);
  const auto cap = static_cast<int64_t>(std::ceil(c * static_cast<double>(n_tokens) / static_cast<double>(cfg.n_experts) - 1e-9));
  return std::min(n_tokens, std::max<int64_t>(cap, 0));
}

int64_t expert_choice_causal_k(const RouterConfig& cfg) {
  const double c = cfg.capacity_factor > 0.0 ? cfg.capacity_factor : static_cast<double>(cfg.top_k);
  return std::clamp<int64_t>(std::llround(c), 1, cfg.n_experts);
}

namespace {

class ExpertChoiceRouter final : public Router {
 public:
  explicit ExpertChoiceRouter(const RouterConfig& cfg) : Router(cfg) {}
  std::string name() const override { return "expert_choice"; }
  int64_t n_slots() const override { return cfg_.n_experts; }
  bool bounds_capacity() const override { return true; }

 protected:
  RoutingDecision do_route(const at::Tensor& logits, const RouteContext& /*ctx*/) override {
    const int64_t n_tokens = logits.size(0), n_experts = cfg_.n_experts;
    const at::Tensor probs = at::softmax(logits, 1);  // [n_tokens, E]: G of the paper
    const int64_t cap = expert_choice_capacity(n_tokens, cfg_);
    at::Tensor chosen = at::zeros({n_tokens, n_experts}, logits.options().dtype(at::kBool));  // [n_tokens, E]
    if (cap > 0) {
      const at::Tensor picks = std::get<1>(at::topk(probs.detach(), cap, 0, /*largest=*/true, /*sorted=*/false));  // [C, E]
      chosen = chosen.scatter(0, picks, true);
    }
    // Each token's slots: its chosen experts by weight, then -1.
    const at::Tensor key = probs.detach().masked_fill(chosen.logical_not(), -1.0);  // [n_tokens, E]
    const at::Tensor order = std::get<1>(key.sort(1, /*descending=*/true));         // [n_tokens, E]
    const at::Tensor taken = chosen.gather(1, order);                               // [n_tokens, E]
    RoutingDecision d;
    d.experts = order.masked_fill(taken.logical_not(), -1);
    d.weights = probs.gather(1, order).masked_fill(taken.logical_not(), 0.0);
    d.probs = probs;
    set_z_loss_aux(d, logits, cfg_);
    return d;
  }

  // Each token's own k' best experts by G: depends on that token's logits alone.
  RoutingDecision do_route_per_token(const at::Tensor& logits, const RouteContext& /*ctx*/) override {
    const int64_t n_tokens = logits.size(0), n_experts = cfg_.n_experts;
    const at::Tensor probs = at::softmax(logits, 1);  // [n_tokens, E]
    const int64_t k = expert_choice_causal_k(cfg_);
    const at::Tensor order = std::get<1>(probs.detach().sort(1, /*descending=*/true));                     // [n_tokens, E]
    const at::Tensor taken = at::arange(n_experts, order.options()).lt(k).unsqueeze(0).expand({n_tokens, n_experts});  // [n_tokens, E]
    RoutingDecision d;
    d.experts = order.masked_fill(taken.logical_not(), -1);
    d.weights = probs.gather(1, order).masked_fill(taken.logical_not(), 0.0);  // G, as in training
    d.probs = probs;
    set_z_loss_aux(d, logits, cfg_);
    return d;
  }
};

}  // namespace

std::unique_ptr<Router> make_expert_choice_router(const RouterConfig& cfg) {
  return std::make_unique<ExpertChoiceRouter>(cfg);
}

}  // namespace moetb
