// Sinkhorn router (S-BASE of "Unified Scaling Laws for Routed Language Models", arXiv
// 2202.01169; the balanced assignment of BASE layers, arXiv 2103.16716). Training: Sinkhorn
// iterations turn exp(logits) into a matrix whose rows sum to 1 and whose columns sum to
// n_tokens / E, to a tolerance (router.sinkhorn_tol, capped at router.sinkhorn_max_iters;
// residual and iterations go to aux_terms); each token takes the top-k of that balanced
// matrix (not differentiable), weighted by the plain softmax (combine_weights). Evaluation
// (ctx.training false): plain top-k of the softmax. Aux: z-loss only.
#include <utility>
#include <ATen/core/Tensor.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <tuple>

#include "routers/balance.h"
#include "routers/router.h"
#include "routers/router_internal.h"

namespace moetb {

SinkhornResult sinkhorn_balance(const at::Tensor& log_scores, double tol, int64_t max_iters) {
  SinkhornResult r;
  const int64_t m = log_scores.size(0), n_experts = log_scores.size(1);
  at::Tensor lp = log_scores.detach().to(at::kDouble);  // [m, E]
  if (m == 0) {
    r.log_plan = lp;
    return r;
  }
  const double log_col = std::log(static_cast<double>(m) / static_cast<double>(n_experts));
  lp = lp.sub(at::logsumexp(lp, {1}, /*keepdim=*/true));  // rows to 1 first: the residual is then the columns'
  for (;;) {
    const at::Tensor col = at::logsumexp(lp, {0}, /*keepdim=*/true);  // [1, E] log column sums
    r.residual = col.sub(log_col).exp().sub(1.0).abs().max().item<double>();
    if (r.residual <= tol || r.iterations >= max_iters) break;
    lp = lp.sub(col).add(log_col);                           // columns to m/E
    lp = lp.sub(at::logsumexp(lp, {1}, /*keepdim=*/true));  // rows to 1 (exact after each iteration)
    ++r.iterations;
  }
  r.log_plan = lp;
  return r;
}

namespace {

class SinkhornRouter final : public Router {
 public:
  explicit SinkhornRouter(const RouterConfig& cfg) : Router(cfg) {}
  std::string name() const override { return "sinkhorn"; }
  bool needs_sequence_ids() const override { return cfg_.assign_scope == BalanceScope::kSequence; }

 protected:
  RoutingDecision do_route(const at::Tensor& logits, const RouteContext& ctx) override {
    const at::Tensor probs = at::softmax(logits, 1);  // [n_tokens, E]
    at::Tensor select = probs.detach();              // [n_tokens, E]
    RoutingDecision d;
    if (ctx.training && cfg_.assign_scope == BalanceScope::kSequence) {  // one problem per sequence
      select = at::zeros(logits.sizes(), logits.options().dtype(at::kDouble));  // [n_tokens, E]
      double residual = 0.0, iterations = 0.0;  // the worst sequence
      for (const at::Tensor& rows : sequence_rows(ctx.sequence_ids)) {
        const SinkhornResult s = sinkhorn_balance(logits.index_select(0, rows), cfg_.sinkhorn_tol, cfg_.sinkhorn_max_iters);
        select.index_copy_(0, rows, s.log_plan);
        residual = std::max(residual, s.residual);
        iterations = std::max(iterations, static_cast<double>(s.iterations));
      }
      d.aux_terms["sinkhorn_residual"] = residual;
      d.aux_terms["sinkhorn_iterations"] = iterations;
    } else if (ctx.training) {  // the micro-batch (global_batch: the step, at accum_steps 1)
      const SinkhornResult s = sinkhorn_balance(logits, cfg_.sinkhorn_tol, cfg_.sinkhorn_max_iters);
      select = s.log_plan;
      d.aux_terms["sinkhorn_residual"] = s.residual;
      d.aux_terms["sinkhorn_iterations"] = static_cast<double>(s.iterations);
    }
    const at::Tensor top_ids = topk_indices(select, cfg_.top_k);  // [n, k], as at::topk's (router_kernels.h)
    return assigned_decision(top_ids, probs, logits, cfg_, std::move(d));  // d holds the Sinkhorn terms
  }
};

}  // namespace

std::unique_ptr<Router> make_sinkhorn_router(const RouterConfig& cfg) { return std::make_unique<SinkhornRouter>(cfg); }

}  // namespace moetb
