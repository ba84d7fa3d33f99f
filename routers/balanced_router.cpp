// Balanced assignment router (BASE layers, Lewis et al., arXiv 2103.16716). Training: every
// expert receives exactly its share of the micro-batch's n*k assignments (balanced_capacities)
// and the assignment maximises the total router logit, solved exactly by
// routers/balanced_assignment.h (maximising logits = maximising log-softmax, since each token
// gets exactly k experts). The selection has no gradient; the weights are the softmax
// probabilities of the assigned experts (combine_weights). Evaluation (ctx.training false):
// plain top-k of the softmax, as BASE does. Aux: z-loss only.
// Difference from BASE: BASE gates an expert with sigmoid(logit) and uses k = 1.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/softmax.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "routers/balance.h"
#include "routers/balanced_assignment.h"
#include "routers/router.h"
#include "routers/router_internal.h"

namespace moetb {

at::Tensor balanced_selection(const at::Tensor& logits, int64_t k) {
  const int64_t n = logits.size(0), n_experts = logits.size(1);
  const at::Tensor scores = logits.detach().to(at::kCPU, at::kDouble).contiguous();  // [n, E]
  BalancedAssignment a =
      solve_balanced_assignment(scores.data_ptr<double>(), n, n_experts, k, balanced_capacities(n, k, n_experts));
  return at::from_blob(a.experts.data(), {n, k}, at::kLong).to(logits.device(), false, /*copy=*/true);  // [n, k]
}

namespace {

class BalancedRouter final : public Router {
 public:
  explicit BalancedRouter(const RouterConfig& cfg) : Router(cfg) {}
  std::string name() const override { return "balanced"; }
  bool needs_sequence_ids() const override { return cfg_.assign_scope == BalanceScope::kSequence; }

 protected:
  RoutingDecision do_route(const at::Tensor& logits, const RouteContext& ctx) override {
    const at::Tensor probs = at::softmax(logits, 1);  // [n_tokens, E]
    at::Tensor top_ids;  // [n_tokens, k]
    if (!ctx.training) {
      top_ids = topk_indices(probs.detach(), cfg_.top_k);  // at::topk's indices (router_kernels.h)
    } else if (cfg_.assign_scope == BalanceScope::kSequence) {  // each sequence balanced on its own
      top_ids = at::empty({logits.size(0), cfg_.top_k}, logits.options().dtype(at::kLong));
      for (const at::Tensor& rows : sequence_rows(ctx.sequence_ids))
        top_ids.index_copy_(0, rows, balanced_selection(logits.index_select(0, rows), cfg_.top_k));
    } else {  // the micro-batch (global_batch: the step, at accum_steps 1)
      top_ids = balanced_selection(logits, cfg_.top_k);
    }
    return assigned_decision(top_ids, probs, logits, cfg_);
  }
};

}  // namespace

std::unique_ptr<Router> make_balanced_router(const RouterConfig& cfg) { return std::make_unique<BalancedRouter>(cfg); }

}  // namespace moetb
