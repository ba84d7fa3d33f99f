// Token-choice top-k router (Switch Transformer arXiv 2101.03961 for k=1 and its
// load-balancing loss; ST-MoE arXiv 2202.08906 for the router z-loss). Scores are softmax
// or sigmoid of the logits; each token takes its top_k experts, weighted by their scores,
// optionally renormalised to sum to 1. Simplifications: no capacity factor, no token
// dropping, no jitter noise; P_e of the balance loss always uses the softmax probabilities
// (also under sigmoid scores), which are also what `probs` reports.
#include <ATen/core/Tensor.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/topk.h>

#include <memory>
#include <string>
#include <tuple>

#include "routers/router.h"
#include "routers/router_internal.h"

namespace moetb {

namespace {

class TopkRouter final : public Router {
 public:
  explicit TopkRouter(const RouterConfig& cfg) : Router(cfg) {}
  std::string name() const override { return "topk"; }

 protected:
  RoutingDecision do_route(const at::Tensor& logits, const RouteContext& /*ctx*/) override {
    const at::Tensor probs = at::softmax(logits, 1);                                      // [n_tokens, E]
    const at::Tensor scores = cfg_.score == "sigmoid" ? at::sigmoid(logits) : probs;     // [n_tokens, E]
    at::Tensor top_scores, top_ids;                                                       // [n_tokens, k]
    std::tie(top_scores, top_ids) = at::topk(scores, cfg_.top_k, 1, /*largest=*/true, /*sorted=*/true);
    RoutingDecision d;
    d.experts = top_ids;
    d.weights = cfg_.renormalize ? top_scores.div(top_scores.sum(1, /*keepdim=*/true)) : top_scores;
    d.probs = probs;
    set_learned_aux(d, logits, probs, cfg_);
    return d;
  }
};

}  // namespace

std::unique_ptr<Router> make_topk_router(const RouterConfig& cfg) { return std::make_unique<TopkRouter>(cfg); }

}  // namespace moetb
