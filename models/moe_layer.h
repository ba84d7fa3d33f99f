// The MoE feed-forward layer: a linear router (d_model -> E, no bias) feeding a pluggable
// Router (routers/router.h), E SwiGLU experts stored as stacked [E, ...] parameters, and
// optional always-on shared experts. Follows the MoE Routing Testbed (arXiv 2604.07030)
// and Switch Transformer (arXiv 2101.03961) dispatch, with an optional expert capacity and
// token dropping after routing (routers/capacity.h; router.capacity_factor 0 = dropless).
// Simplifications: 2-D input [n_tokens, d_model] (flatten batch and time first),
// CPU-minded sort-based dispatch with one matrix product per active expert.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>

#include "routers/router.h"

namespace moetb {

struct MoEConfig {
  int64_t d_model = 128;          // model width
  int64_t d_ff = 256;             // hidden width of each SwiGLU expert
  int64_t n_experts = 8;          // E; overrides router.n_experts
  int64_t top_k = 2;              // slots per token; overrides router.top_k
  int64_t n_shared_experts = 0;   // always-on experts: one SwiGLU of width n_shared * d_ff
  RouterConfig router;            // which router and its options (name, score, losses, groups)
};

struct MoEOutput {
  at::Tensor y;              // [n_tokens, d_model]
  RoutingDecision decision;  // the router's decision for these tokens (aux_loss to add to the loss)
};

class MoEFeedForwardImpl : public torch::nn::Module {
 public:
  explicit MoEFeedForwardImpl(const MoEConfig& cfg);  // throws std::invalid_argument on a bad config

  // x: [n_tokens, d_model] in the parameters' dtype. Sorted dispatch: (token, slot) pairs
  // grouped by expert, per expert that received tokens one packed gate+up product and one down.
  // With residual ([n_tokens, d_model], the block's residual stream) y = residual + the
  // layer's output, the addition folded into the routed combine.
  MoEOutput forward(const at::Tensor& x, const RouteContext& ctx, const at::Tensor& residual = at::Tensor());

  // The router's decision for x ([n_tokens, d_model]) after the capacity limit (unless the
  // router bounds capacity itself); aux_terms["dropped_fraction"] is always set. Where the
  // limit applied, decision.experts_before_capacity keeps the router's own choices.
  RoutingDecision route(const at::Tensor& x, const RouteContext& ctx);

  Router& router() { return *router_; }
  const Router& router() const { return *router_; }
  const MoEConfig& config() const { return cfg_; }

  at::Tensor router_weight;  // [E, d_model]
  at::Tensor w_gate;         // [E, d_model, d_ff]
  at::Tensor w_up;           // [E, d_model, d_ff]
  at::Tensor w_down;         // [E, d_ff, d_model]
  at::Tensor shared_gate;    // [d_model, n_shared * d_ff], undefined without shared experts
  at::Tensor shared_up;      // [d_model, n_shared * d_ff]
  at::Tensor shared_down;    // [n_shared * d_ff, d_model]
  // Knockout hook (models/expert_mask.h): [E] bool, true = the expert is removed: route()
  // empties its slots and rescales the token's other weights. Undefined (default) = none.
  at::Tensor removed_experts;
  // Evaluation hook (models/evaluation.h, eval.routing "dropless"): at evaluation
  // (ctx.training false) no capacity limit and the router's per-token rule
  // (Router::route_per_token: expert choice's causal top-k'). Training ignores it.
  bool dropless_eval = false;

 private:
  MoEConfig cfg_;
  std::unique_ptr<Router> router_;
};
TORCH_MODULE(MoEFeedForward);

// Slow reference for tests: routes exactly like forward (layer.route), then runs every
// expert on every token and combines with a dense [n_tokens, E] gate matrix.
MoEOutput moe_forward_dense_reference(MoEFeedForwardImpl& layer, const at::Tensor& x, const RouteContext& ctx);

}  // namespace moetb
