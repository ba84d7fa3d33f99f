// The domain oracle (reference) router of the MoE Routing Testbed (arXiv 2604.07030): a
// token of domain d may only use the experts of domain_groups[d] (the caller builds them
// with oracle/reference_groups.h make_reference_groups). Logits outside the group are
// masked to -inf, then softmax + top-k inside the group (k = min(top_k, group size); the
// remaining slots are -1 with weight 0) and optional renormalisation. Simplifications:
// softmax scores only; the Switch balance loss (arXiv 2101.03961) and z-loss (arXiv
// 2202.08906) are computed as for topk and weigh in only through their coefficients.
#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/zeros.h>

#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "routers/router.h"
#include "routers/router_internal.h"

namespace moetb {

namespace {

class OracleRouter final : public Router {
 public:
  explicit OracleRouter(const RouterConfig& cfg) : Router(cfg) {
    const int64_t n_experts = cfg_.n_experts;
    const auto n_domains = static_cast<int64_t>(cfg_.domain_groups.size());
    if (n_domains == 0)
      throw std::invalid_argument("oracle router needs domain_groups (one expert list per domain id)");
    allowed_ = at::zeros({n_domains, n_experts}, at::kBool);  // [n_domains, E]
    group_size_ = at::zeros({n_domains}, at::kLong);          // [n_domains]
    auto allowed = allowed_.accessor<bool, 2>();
    auto group_size = group_size_.accessor<int64_t, 1>();
    for (int64_t d = 0; d < n_domains; ++d) {
      const auto& group = cfg_.domain_groups[static_cast<std::size_t>(d)];
      if (group.empty())
        throw std::invalid_argument("oracle router: domain_groups[" + std::to_string(d) + "] is empty");
      for (int e : group) {
        if (e < 0 || e >= n_experts)
          throw std::invalid_argument("oracle router: domain_groups[" + std::to_string(d) + "] holds expert " +
                                      std::to_string(e) + ", outside [0, " + std::to_string(n_experts) + ")");
        if (allowed[d][e])
          throw std::invalid_argument("oracle router: domain_groups[" + std::to_string(d) + "] lists expert " +
                                      std::to_string(e) + " twice");
        allowed[d][e] = true;
      }
      group_size[d] = static_cast<int64_t>(group.size());
    }
  }
  std::string name() const override { return "oracle"; }
  bool needs_domain_ids() const override { return true; }

 protected:
  RoutingDecision do_route(const at::Tensor& logits, const RouteContext& ctx) override {
    const at::Tensor& domain_ids = ctx.domain_ids;  // [n_tokens] int64
    const int64_t n_domains = allowed_.size(0);
    if (domain_ids.numel() > 0) {
      const int64_t lo = domain_ids.min().item<int64_t>(), hi = domain_ids.max().item<int64_t>();
      if (lo < 0 || hi >= n_domains)
        throw std::invalid_argument("oracle router: domain id " + std::to_string(lo < 0 ? lo : hi) +
                                    " outside [0, " + std::to_string(n_domains) + ") of domain_groups");
    }
    const at::Tensor allowed = allowed_.to(logits.device()).index_select(0, domain_ids);  // [n_tokens, E]
    const at::Tensor masked =
        logits.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());  // [n_tokens, E]
    const at::Tensor probs = at::softmax(masked, 1);  // [n_tokens, E], 0 outside the group
    // Rank on the masked logits, not the probs: an in-group expert whose prob underflows
    // to 0 must still rank above every masked one.
    at::Tensor top_ids = topk_indices(masked, cfg_.top_k);  // [n_tokens, k], as at::topk's (router_kernels.h)
    const at::Tensor k_eff =
        group_size_.to(logits.device()).index_select(0, domain_ids).clamp_max(cfg_.top_k);  // [n_tokens]
    const at::Tensor slot = at::arange(cfg_.top_k, domain_ids.options());                // [k]
    const at::Tensor empty = slot.unsqueeze(0).ge(k_eff.unsqueeze(1));                   // [n_tokens, k]
    RoutingDecision d;
    d.experts = top_ids.masked_fill(empty, -1);                            // [n_tokens, k]
    at::Tensor w = probs.gather(1, top_ids).masked_fill(empty, 0.0);       // [n_tokens, k]
    d.weights = combine_weights(w, cfg_);  // at top-1: the probability itself (Switch)
    d.probs = probs;
    set_learned_aux(d, logits, probs, cfg_);
    return d;
  }

 private:
  at::Tensor allowed_;     // [n_domains, E] bool, CPU
  at::Tensor group_size_;  // [n_domains] int64, CPU
};

}  // namespace

std::unique_ptr<Router> make_oracle_router(const RouterConfig& cfg) { return std::make_unique<OracleRouter>(cfg); }

}  // namespace moetb
