// MoE feed-forward with sort-based dispatch (see moe_layer.h). The (token, slot) pairs that
// hold an expert are grouped by expert id, stably (one counting sort on the CPU), so each
// expert's tokens form one contiguous slice; fused_experts.h then gathers the rows, runs
// each expert's SwiGLU on its slice (gate and up into one packed buffer, the activation,
// the down product), scales by the routing weight and adds back in row order. Switch
// Transformer (arXiv 2101.03961) dispatch; assignments over capacity were emptied by
// route() before it. The dense reference below checks it in tests.
#include "models/moe_layer.h"

#include <ATen/ops/bincount.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "models/fused_experts.h"
#include "models/fused_linear.h"
#include "models/fused_ops.h"
#include "models/expert_mask.h"
#include "routers/capacity.h"

namespace moetb {

namespace {

// nn.Linear's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from the global generator.
at::Tensor uniform_init(at::IntArrayRef shape, int64_t fan_in) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return at::empty(shape, at::kFloat).uniform_(-bound, bound);
}

// SwiGLU: (silu(x W_gate) * (x W_up)) W_down. x: [n, d_model], W_gate/W_up: [d_model, f],
// W_down: [f, d_model] (or batched with a leading [E] and x: [1, n, d_model]).
at::Tensor swiglu(const at::Tensor& x, const at::Tensor& w_gate, const at::Tensor& w_up, const at::Tensor& w_down) {
  return at::matmul(at::silu(at::matmul(x, w_gate)).mul(at::matmul(x, w_up)), w_down);
}

std::string shape_string(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

void check_positive(int64_t v, const char* field) {
  if (v < 1) throw std::invalid_argument(std::string("MoE ") + field + " must be >= 1, got " + std::to_string(v));
}

// The (token, slot) pairs of experts [n_tokens, slots] that hold an expert, stably grouped
// by expert id: {flat slot indices [m], their tokens [m], rows per expert [E] on the CPU}.
// On the CPU one counting sort; elsewhere the same by a stable sort (one sync for counts).
std::tuple<at::Tensor, at::Tensor, at::Tensor> group_by_expert(const at::Tensor& experts, int64_t n_experts) {
  const int64_t n_slots = experts.size(1);
  const at::Tensor flat = experts.reshape({-1});  // [n_tokens * slots]
  if (!flat.device().is_cpu() || flat.scalar_type() != at::kLong) {
    const at::Tensor slots = flat.ge(0).nonzero().squeeze(1);  // [m]
    at::Tensor sorted_experts, order;                          // [m]
    std::tie(sorted_experts, order) = at::sort(flat.index_select(0, slots), /*stable=*/true, 0, false);
    const at::Tensor sorted_slots = slots.index_select(0, order);
    return {sorted_slots, sorted_slots.div(n_slots, "trunc"), at::bincount(sorted_experts, {}, n_experts).cpu()};
  }
  const at::Tensor f = flat.contiguous();
  const int64_t* e = f.data_ptr<int64_t>();
  const int64_t n = f.numel();
  at::Tensor counts = at::zeros({n_experts}, at::kLong);  // [E]
  int64_t* c = counts.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    if (e[i] >= 0) {
      if (e[i] >= n_experts) throw std::invalid_argument("MoE dispatch: expert id " + std::to_string(e[i]) + " >= n_experts");
      ++c[e[i]];
    }
  std::vector<int64_t> next(static_cast<std::size_t>(n_experts), 0);  // each expert's next row
  for (int64_t x = 1; x < n_experts; ++x) next[static_cast<std::size_t>(x)] = next[static_cast<std::size_t>(x - 1)] + c[x - 1];
  const int64_t m = n_experts > 0 ? next.back() + c[n_experts - 1] : 0;
  at::Tensor slots = at::empty({m}, at::kLong), tokens = at::empty({m}, at::kLong);  // [m]
  int64_t *s = slots.data_ptr<int64_t>(), *t = tokens.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    if (e[i] >= 0) {
      const int64_t r = next[static_cast<std::size_t>(e[i])]++;
      s[r] = i;
      t[r] = i / n_slots;
    }
  return {slots, tokens, counts};
}

}  // namespace

MoEFeedForwardImpl::MoEFeedForwardImpl(const MoEConfig& cfg) : cfg_(cfg) {
  check_positive(cfg_.d_model, "d_model");
  check_positive(cfg_.d_ff, "d_ff");
  check_positive(cfg_.n_experts, "n_experts");
  if (cfg_.n_shared_experts < 0)
    throw std::invalid_argument("MoE n_shared_experts must be >= 0, got " + std::to_string(cfg_.n_shared_experts));
  cfg_.router.n_experts = cfg_.n_experts;  // the layer's fields are the single source of truth
  cfg_.router.top_k = cfg_.top_k;
  router_ = make_router(cfg_.router);  // validates top_k and the router options

  const int64_t n_experts = cfg_.n_experts, d_model = cfg_.d_model, d_ff = cfg_.d_ff;
  router_weight = register_parameter("router_weight", uniform_init({n_experts, d_model}, d_model));
  w_gate = register_parameter("w_gate", uniform_init({n_experts, d_model, d_ff}, d_model));
  w_up = register_parameter("w_up", uniform_init({n_experts, d_model, d_ff}, d_model));
  w_down = register_parameter("w_down", uniform_init({n_experts, d_ff, d_model}, d_ff));
  if (cfg_.n_shared_experts > 0) {
    const int64_t d_shared = cfg_.n_shared_experts * d_ff;
    shared_gate = register_parameter("shared_gate", uniform_init({d_model, d_shared}, d_model));
    shared_up = register_parameter("shared_up", uniform_init({d_model, d_shared}, d_model));
    shared_down = register_parameter("shared_down", uniform_init({d_shared, d_model}, d_shared));
  }
}

MoEOutput MoEFeedForwardImpl::forward(const at::Tensor& x, const RouteContext& ctx, const at::Tensor& residual) {
  if (!x.defined() || x.dim() != 2 || x.size(1) != cfg_.d_model)
    throw std::invalid_argument("MoE input must be [n_tokens, " + std::to_string(cfg_.d_model) + "], got " +
                                shape_string(x));
  if (x.scalar_type() != router_weight.scalar_type())
    throw std::invalid_argument("MoE input dtype " + std::string(c10::toString(x.scalar_type())) +
                                " differs from the parameters' " + c10::toString(router_weight.scalar_type()));
  if (residual.defined() && (residual.sizes() != x.sizes() || residual.scalar_type() != x.scalar_type()))
    throw std::invalid_argument("MoE residual must be " + shape_string(x) + " in the input's dtype, got " + shape_string(residual));
  MoEOutput out;
  out.decision = route(x, ctx);

  // (token, slot) pairs with an expert, grouped by expert; stable, so the order inside an
  // expert's slice (and the index_add_ order) is the token order: deterministic sums.
  at::Tensor sorted_slots, tokens, counts;  // [m], [m], [E] (on the CPU)
  std::tie(sorted_slots, tokens, counts) = group_by_expert(out.decision.experts, cfg_.n_experts);
  const at::Tensor w = out.decision.weights.reshape({-1}).index_select(0, sorted_slots);  // [m]

  // Gather, each expert's SwiGLU on its slice (gate and up packed), weight and add back: one autograd function (fused_experts.h).
  at::Tensor y = tokens.size(0) > 0 ? fused_routed_swiglu(x, tokens, w, w_gate, w_up, w_down, counts, residual)
                                    : (residual.defined() ? residual : at::zeros_like(x));  // [n_tokens, d_model]
  if (cfg_.n_shared_experts > 0) y = y.add(swiglu(x, shared_gate, shared_up, shared_down));
  out.y = y;
  return out;
}

RoutingDecision MoEFeedForwardImpl::route(const at::Tensor& x, const RouteContext& ctx) {
  const at::Tensor logits = fused_linear_t(x, router_weight);  // [n_tokens, E] (fused_linear.h)
  const bool dropless = dropless_eval && !ctx.training;
  RoutingDecision d = dropless ? router_->route_per_token(logits, ctx) : router_->route(logits, ctx);
  double dropped = 0.0;
  if (!dropless && !router_->bounds_capacity() && cfg_.router.capacity_factor > 0.0) {
    const int64_t cap = expert_capacity(x.size(0), cfg_.top_k, cfg_.n_experts, cfg_.router.capacity_factor);
    d.experts_before_capacity = d.experts;  // apply_capacity replaces d.experts, it does not write into it
    dropped = apply_capacity(d, cfg_.n_experts, cap, cfg_.router.drop_policy);
  }
  d.aux_terms["dropped_fraction"] = dropped;
  if (removed_experts.defined()) remove_experts(d, removed_experts);
  return d;
}

MoEOutput moe_forward_dense_reference(MoEFeedForwardImpl& layer, const at::Tensor& x, const RouteContext& ctx) {
  const int64_t n_experts = layer.config().n_experts;
  MoEOutput out;
  out.decision = layer.route(x, ctx);
  const at::Tensor& experts = out.decision.experts;                                  // [n_tokens, slots]
  const at::Tensor empty = experts.lt(0);                                             // [n_tokens, slots]
  const at::Tensor gate = at::zeros({x.size(0), n_experts}, x.options())              // [n_tokens, E]
                              .scatter_add(1, experts.clamp_min(0), out.decision.weights.masked_fill(empty, 0.0));
  const at::Tensor all = swiglu(x.unsqueeze(0), layer.w_gate, layer.w_up, layer.w_down);  // [E, n_tokens, d_model]
  at::Tensor y = gate.t().unsqueeze(2).mul(all).sum(0);                                   // [n_tokens, d_model]
  if (layer.config().n_shared_experts > 0)
    y = y.add(swiglu(x, layer.shared_gate, layer.shared_up, layer.shared_down));
  out.y = y;
  return out;
}

}  // namespace moetb
