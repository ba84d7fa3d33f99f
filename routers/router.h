// The router interface: router logits in, a routing decision (experts, weights, aux loss)
// out. Follows the MoE Routing Testbed (arXiv 2604.07030): learned token-choice top-k next
// to a domain oracle (the upper bound), a hash router (Hash layers, arXiv 2106.04426) and
// a random router (the floor). Simplifications: every router returns the same number of
// slots per token (top_k, -1 marks an empty slot); no capacity limit or token dropping;
// balancing is over the micro-batch only (sequence or global scope comes later).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moetb {

// Plain aggregate; make_router validates it. Fields a router does not use are ignored.
struct RouterConfig {
  std::string name = "topk";      // registry name: topk, oracle, hash, random
  int64_t n_experts = 8;          // E, the width of the logits
  int64_t top_k = 2;              // slots per token, 1 <= top_k <= E
  std::string score = "softmax";  // topk/oracle selection score: "softmax" or "sigmoid" (topk only)
  bool renormalize = true;        // selected weights rescaled to sum to 1 per token
  double balance_coef = 0.01;     // Switch load-balancing loss weight (arXiv 2101.03961)
  double z_loss_coef = 0.0;       // ST-MoE router z-loss weight (arXiv 2202.08906)
  uint64_t seed = 0;              // hash table and random-router stream
  std::vector<std::vector<int>> domain_groups;  // oracle: experts allowed per domain id
};

// What some routers need and others ignore. Every defined tensor must be [n_tokens] int64.
struct RouteContext {
  at::Tensor token_ids;     // [n_tokens] int64 or undefined (hash router)
  at::Tensor domain_ids;    // [n_tokens] int64 or undefined (oracle router)
  at::Tensor sequence_ids;  // [n_tokens] int64 or undefined (sequence-scope balancing, later)
  bool training = true;     // reserved for routers that differ between train and eval
};

struct RoutingDecision {
  at::Tensor experts;   // [n_tokens, top_k] int64, expert id or -1 for an empty slot
  at::Tensor weights;   // [n_tokens, top_k] logits' dtype, 0 on empty slots; differentiable
                        // w.r.t. the logits where the router learns (topk, oracle)
  at::Tensor probs;     // [n_tokens, n_experts] logits' dtype: the router's full score
                        // distribution, rows sum to 1 (for traces)
  at::Tensor aux_loss;  // [] logits' dtype: balance_coef*balance + z_loss_coef*z_loss
  std::map<std::string, double> aux_terms;  // unweighted terms for logging ("balance", "z_loss")
};

// Example:
//   RouterConfig cfg;  cfg.n_experts = 8;  cfg.top_k = 2;
//   std::unique_ptr<Router> router = make_router(cfg);
//   RoutingDecision d = router->route(logits /* [n_tokens, 8] */, RouteContext{});
//   loss = task_loss + d.aux_loss;  ...  router->end_step();   // after the optimizer step
class Router {
 public:
  explicit Router(RouterConfig cfg);  // throws std::invalid_argument on a bad config
  virtual ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Checks logits ([n_tokens, n_experts], float32 or float64) and the context fields this
  // router needs, routes, then checks the decision's shapes (and in debug builds its ids).
  RoutingDecision route(const at::Tensor& logits, const RouteContext& ctx);

  virtual void end_step() {}  // optimizer-step hook: bias updates, global-batch buffers
  // Internal state that is not a parameter (RNG streams, bias terms), for checkpoints:
  // load_state(save_state()) must make later decisions identical. Empty by default.
  virtual std::vector<uint64_t> save_state() const { return {}; }
  virtual void load_state(const std::vector<uint64_t>& state) { (void)state; }
  virtual std::string name() const = 0;
  virtual bool needs_domain_ids() const { return false; }
  virtual bool needs_token_ids() const { return false; }
  const RouterConfig& config() const { return cfg_; }

 protected:
  // logits: [n_tokens, n_experts], already checked; ctx fields checked as above.
  virtual RoutingDecision do_route(const at::Tensor& logits, const RouteContext& ctx) = 0;
  RouterConfig cfg_;
};

// Explicit registry (routers/registry.cpp). Throws std::invalid_argument:
// "unknown router 'x' (known: topk, oracle, hash, random)".
std::unique_ptr<Router> make_router(const RouterConfig& cfg);
std::vector<std::string> router_names();

}  // namespace moetb
