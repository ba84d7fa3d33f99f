// Sinkhorn router (S-BASE of "Unified Scaling Laws for Routed Language Models", arXiv
// 2202.01169; the balanced assignment of BASE layers, arXiv 2103.16716). Training: a few
// Sinkhorn iterations turn exp(logits) into a matrix whose rows sum to 1 and whose columns
// sum to n_tokens / E; each token takes the top-k of that balanced matrix (not
// differentiable), weighted by the plain softmax (renormalised if `renormalize`).
// Evaluation (ctx.training false): plain top-k of the softmax. Aux: z-loss only.
#include <ATen/core/Tensor.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/topk.h>

#include <cmath>
#include <memory>
#include <string>
#include <tuple>

#include "routers/router.h"
#include "routers/router_internal.h"

namespace moetb {

namespace {

constexpr int kSinkhornIterations = 8;

class SinkhornRouter final : public Router {
 public:
  explicit SinkhornRouter(const RouterConfig& cfg) : Router(cfg) {}
  std::string name() const override { return "sinkhorn"; }

 protected:
  RoutingDecision do_route(const at::Tensor& logits, const RouteContext& ctx) override {
    const int64_t n_tokens = logits.size(0);
    const at::Tensor probs = at::softmax(logits, 1);  // [n_tokens, E]
    at::Tensor select = probs.detach();              // [n_tokens, E]
    if (ctx.training && n_tokens > 0) {
      // Log domain, float64: columns to log(n/E), then rows to log(1); rows last.
      const double log_col = std::log(static_cast<double>(n_tokens) / static_cast<double>(cfg_.n_experts));
      at::Tensor lp = logits.detach().to(at::kDouble);  // [n_tokens, E]
      for (int it = 0; it < kSinkhornIterations; ++it) {
        lp = lp.sub(at::logsumexp(lp, {0}, /*keepdim=*/true)).add(log_col);
        lp = lp.sub(at::logsumexp(lp, {1}, /*keepdim=*/true));
      }
      select = lp;
    }
    const at::Tensor top_ids = std::get<1>(at::topk(select, cfg_.top_k, 1, /*largest=*/true, /*sorted=*/true));  // [n, k]
    const at::Tensor top = probs.gather(1, top_ids);  // [n_tokens, k]
    RoutingDecision d;
    d.experts = top_ids;
    d.weights = combine_weights(top, cfg_);  // at top-1: the probability itself (Switch)
    d.probs = probs;
    const at::Tensor z = router_z_loss(logits);  // []
    d.aux_loss = z.mul(cfg_.z_loss_coef);
    d.aux_terms["z_loss"] = z.item<double>();
    return d;
  }
};

}  // namespace

std::unique_ptr<Router> make_sinkhorn_router(const RouterConfig& cfg) { return std::make_unique<SinkhornRouter>(cfg); }

}  // namespace moetb
