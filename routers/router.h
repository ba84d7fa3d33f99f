// The router interface: router logits in, a routing decision (experts, weights, aux loss)
// out. Follows the MoE Routing Testbed (arXiv 2604.07030): learned token-choice top-k with
// its options (balancing scope, DeepSeek-V3's aux-loss-free bias arXiv 2412.19437, group-
// limited routing, jitter), expert choice (arXiv 2202.09368), Sinkhorn (arXiv 2202.01169),
// a domain oracle (the upper bound), hash (arXiv 2106.04426) and random (the floor).
// Every token gets n_slots() slots (top_k, or E for expert choice); -1 marks an empty
// slot. Capacity and dropping are applied by the MoE layer (routers/capacity.h).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "routers/router_config.h"  // RouterConfig, its enums and validate_router_config

namespace moetb {

// What some routers need and others ignore. Every defined tensor must be [n_tokens] int64.
struct RouteContext {
  at::Tensor token_ids;     // [n_tokens] int64 or undefined (hash router)
  at::Tensor domain_ids;    // [n_tokens] int64 or undefined (oracle router)
  at::Tensor sequence_ids;  // [n_tokens] int64 or undefined (sequence-scope balancing)
  bool training = true;     // false at evaluation: no jitter, no step counts, sinkhorn -> top-k
};

struct RoutingDecision {
  at::Tensor experts;   // [n_tokens, n_slots] int64, expert id or -1 for an empty slot
  at::Tensor weights;   // [n_tokens, n_slots] logits' dtype, 0 on empty slots; differentiable
                        // w.r.t. the logits where the router learns (topk, oracle, ...)
  at::Tensor probs;     // [n_tokens, n_experts] logits' dtype: the router's full score
                        // distribution, rows sum to 1 (for traces)
  at::Tensor aux_loss;  // [] logits' dtype: balance_coef*balance + z_loss_coef*z_loss
  std::map<std::string, double> aux_terms;  // unweighted terms for logging ("balance", "z_loss",
                                            // "seq_balance"; the MoE layer adds "dropped_fraction")
  at::Tensor experts_before_capacity;  // [n_tokens, n_slots] int64: the router's choices before the
                                       // MoE layer's capacity limit; undefined when no limit applied
};

// Example:
//   RouterConfig cfg;  cfg.n_experts = 8;  cfg.top_k = 2;
//   std::unique_ptr<Router> router = make_router(cfg);
//   RoutingDecision d = router->route(logits /* [n_tokens, 8] */, RouteContext{});
//   loss = task_loss + d.aux_loss;  ...  router->end_step();   // after the optimizer step
class Router {
 public:
  explicit Router(RouterConfig cfg);  // validate_router_config: std::invalid_argument on a bad config
  virtual ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Checks logits ([n_tokens, n_experts], float32 or float64) and the context fields this
  // router needs, routes, then checks the decision's shapes (and in debug builds its ids).
  RoutingDecision route(const at::Tensor& logits, const RouteContext& ctx);
  // Evaluation routing in which each token's experts depend on that token alone (eval.routing
  // "dropless", docs/routers.md): the same checks as route(), then do_route_per_token. Every
  // router routes each token on its own at evaluation except expert choice, whose causal rule
  // is token-choice top-k' on its own scores.
  RoutingDecision route_per_token(const at::Tensor& logits, const RouteContext& ctx);

  virtual void end_step() {}  // optimizer-step hook: bias updates, global-batch buffers
  // Internal state that is not a parameter (RNG streams, bias terms), for checkpoints:
  // load_state(save_state()) must make later decisions identical. Empty by default.
  virtual std::vector<uint64_t> save_state() const { return {}; }
  virtual void load_state(const std::vector<uint64_t>& state) { (void)state; }
  virtual std::string name() const = 0;
  virtual int64_t n_slots() const { return cfg_.top_k; }  // columns of experts/weights
  virtual bool bounds_capacity() const { return false; }  // true: the MoE layer applies no capacity
  virtual bool needs_domain_ids() const { return false; }
  virtual bool needs_token_ids() const { return false; }
  virtual bool needs_sequence_ids() const { return false; }
  const RouterConfig& config() const { return cfg_; }

 protected:
  // logits: [n_tokens, n_experts], already checked; ctx fields checked as above.
  virtual RoutingDecision do_route(const at::Tensor& logits, const RouteContext& ctx) = 0;
  // Default: do_route (already per token when ctx.training is false).
  virtual RoutingDecision do_route_per_token(const at::Tensor& logits, const RouteContext& ctx) { return do_route(logits, ctx); }
  RouterConfig cfg_;

 private:
  RoutingDecision checked_route(const at::Tensor& logits, const RouteContext& ctx, bool per_token);
};

// Expert choice's causal rule at evaluation (route_per_token): k' = round(c) experts per token,
// clamped to [1, E], c = capacity_factor or top_k when that is 0: the mean experts per token
// that expert choice gives (expert_choice_router.cpp, docs/routers.md).
int64_t expert_choice_causal_k(const RouterConfig& cfg);

// Explicit registry (routers/registry.cpp). Throws std::invalid_argument:
// "unknown router 'x' (known: topk, oracle, ...)".
std::unique_ptr<Router> make_router(const RouterConfig& cfg);

// For `moetb routers`: every router (and the topk options) with a one-line description
// and its reference.
struct RouterInfo {
  std::string name;         // registry name, or "topk.<option>" for an option
  std::string description;  // one line
  std::string reference;    // "arXiv 2101.03961" or "" (moetb's own)
};
std::vector<RouterInfo> router_catalog();

// For `moetb routers`: the balancing methods of the MoE Routing Testbed (arXiv 2604.07030)
// and the scopes each supports (docs/routers.md explains each, and why global_batch is the
// step only at train.accum_steps = 1 for sinkhorn and balanced).
struct ScopeInfo {
  std::string method;               // "LBL (topk, router.balance_coef > 0)"
  std::string key;                  // "router.balance_scope"
  std::vector<std::string> scopes;  // supported values, e.g. {"sequence", "micro_batch", "global_batch"}
  std::string note;                 // one line: what the scope means for this method
};
std::vector<ScopeInfo> balancing_scopes();

}  // namespace moetb
