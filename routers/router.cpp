// The Router base: config validation, the checking entry points route() and route_per_token()
// (evaluation routing that depends on each token alone), and the auxiliary
// losses shared by the learned routers: Switch load balancing (arXiv 2101.03961,
// E * sum_e f_e * P_e) over the micro-batch and the ST-MoE router z-loss (arXiv
// 2202.08906). The sequence and global-batch scopes live in routers/balance.cpp.
#include <ATen/core/Tensor.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/zeros.h>

#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

#include "routers/balance.h"
#include "routers/router.h"
#include "routers/router_internal.h"
#include "routers/router_kernels.h"

namespace moetb {

namespace {

// A context tensor, when present, must be [n_tokens] int64 on the logits' device.
void check_ctx_tensor(const at::Tensor& t, const char* field, const at::Tensor& logits,
                      const std::string& router) {
  if (!t.defined()) return;
  const int64_t n_tokens = logits.size(0);
  if (t.dim() != 1 || t.size(0) != n_tokens || t.scalar_type() != at::kLong)
    throw std::invalid_argument("router '" + router + "': ctx." + field + " must be [" +
                                std::to_string(n_tokens) + "] int64, got " + shape_string(t) + " " +
                                std::string(c10::toString(t.scalar_type())));
  if (t.device() != logits.device())
    throw std::invalid_argument("router '" + router + "': ctx." + field + " is on " + t.device().str() +
                                " but the logits are on " + logits.device().str());
}

void check_output(const at::Tensor& t, const char* field, std::vector<int64_t> shape, at::ScalarType dtype,
                  const std::string& router) {
  if (!t.defined() || t.sizes() != at::IntArrayRef(shape) || t.scalar_type() != dtype) {
    std::ostringstream want;
    want << at::IntArrayRef(shape) << " " << c10::toString(dtype);
    throw std::runtime_error("router '" + router + "' returned " + field + " " +
                             (t.defined() ? shape_string(t) + " " + c10::toString(t.scalar_type()) : "undefined") +
                             ", want " + want.str());
  }
}

}  // namespace

std::string shape_string(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

Router::Router(RouterConfig cfg) : cfg_(std::move(cfg)) { validate_router_config(cfg_); }

Router::~Router() = default;

RoutingDecision Router::route(const at::Tensor& logits, const RouteContext& ctx) { return checked_route(logits, ctx, false); }

RoutingDecision Router::route_per_token(const at::Tensor& logits, const RouteContext& ctx) {
  return checked_route(logits, ctx, true);
}

RoutingDecision Router::checked_route(const at::Tensor& logits, const RouteContext& ctx, bool per_token) {
  const std::string who = name();
  const int64_t n_experts = cfg_.n_experts;
  if (!logits.defined()) throw std::invalid_argument("router '" + who + "': logits are undefined");
  if (logits.dim() != 2 || logits.size(1) != n_experts)
    throw std::invalid_argument("router '" + who + "': logits must be [n_tokens, " + std::to_string(n_experts) +
                                "], got " + shape_string(logits));
  if (logits.scalar_type() != at::kFloat && logits.scalar_type() != at::kDouble)
    throw std::invalid_argument("router '" + who + "': logits must be float32 or float64, got " +
                                std::string(c10::toString(logits.scalar_type())));
  check_ctx_tensor(ctx.token_ids, "token_ids", logits, who);
  check_ctx_tensor(ctx.domain_ids, "domain_ids", logits, who);
  check_ctx_tensor(ctx.sequence_ids, "sequence_ids", logits, who);
  if (needs_domain_ids() && !ctx.domain_ids.defined())
    throw std::invalid_argument("router '" + who + "' needs ctx.domain_ids ([n_tokens] int64)");
  if (needs_token_ids() && !ctx.token_ids.defined())
    throw std::invalid_argument("router '" + who + "' needs ctx.token_ids ([n_tokens] int64)");
  if (needs_sequence_ids() && !ctx.sequence_ids.defined())
    throw std::invalid_argument("router '" + who + "' needs ctx.sequence_ids ([n_tokens] int64) for sequence-wise balancing");

  RoutingDecision d = per_token ? do_route_per_token(logits, ctx) : do_route(logits, ctx);

  const int64_t n_tokens = logits.size(0), slots = n_slots();
  check_output(d.experts, "experts", {n_tokens, slots}, at::kLong, who);
  check_output(d.weights, "weights", {n_tokens, slots}, logits.scalar_type(), who);
  check_output(d.probs, "probs", {n_tokens, n_experts}, logits.scalar_type(), who);
  check_output(d.aux_loss, "aux_loss", {}, logits.scalar_type(), who);
#ifndef NDEBUG
  // Ids in [-1, E) and no expert twice in a row: sort each row, compare neighbours.
  if (n_tokens > 0) {
    if (d.experts.min().item<int64_t>() < -1 || d.experts.max().item<int64_t>() >= n_experts)
      throw std::runtime_error("router '" + who + "' returned an expert id outside [-1, E)");
    const at::Tensor sorted = std::get<0>(d.experts.sort(1));  // [n_tokens, slots]
    if (slots > 1) {
      const at::Tensor lo = sorted.narrow(1, 0, slots - 1), hi = sorted.narrow(1, 1, slots - 1);
      if (lo.eq(hi).logical_and(hi.ge(0)).any().item<bool>())
        throw std::runtime_error("router '" + who + "' returned an expert twice for one token");
    }
  }
#endif
  return d;
}

at::Tensor switch_balance_loss(const at::Tensor& probs, const at::Tensor& experts) {
  const int64_t n_experts = probs.size(1);
  if (experts.device().is_cpu())  // the counts by one loop (router_kernels.h), shares as for the global batch
    return counts_balance_loss(probs, expert_counts(experts, n_experts));
  const at::Tensor ids = experts.reshape({-1}).masked_select(experts.reshape({-1}).ge(0));  // [n_assigned]
  if (probs.size(0) == 0 || ids.numel() == 0) return at::zeros({}, probs.options());
  const at::Tensor f =
      at::bincount(ids, {}, n_experts).to(probs.scalar_type()).div(static_cast<double>(ids.numel()));  // [n_experts]
  const at::Tensor p = probs.mean(0);                     // [n_experts]
  return f.mul(p).sum().mul(static_cast<double>(n_experts));  // []
}

void set_learned_aux(RoutingDecision& decision, const at::Tensor& logits, const at::Tensor& probs,
                     const RouterConfig& cfg) {
  const at::Tensor balance = switch_balance_loss(probs, decision.experts);  // []
  const at::Tensor z = router_z_loss(logits);                               // []
  decision.aux_loss = balance.mul(cfg.balance_coef).add(z.mul(cfg.z_loss_coef));
  decision.aux_terms["balance"] = balance.item<double>();
  decision.aux_terms["z_loss"] = z.item<double>();
}

void set_z_loss_aux(RoutingDecision& decision, const at::Tensor& logits, const RouterConfig& cfg) {
  const at::Tensor z = router_z_loss(logits);  // []
  decision.aux_loss = z.mul(cfg.z_loss_coef);
  decision.aux_terms["z_loss"] = z.item<double>();
}

RoutingDecision assigned_decision(const at::Tensor& top_ids, const at::Tensor& probs, const at::Tensor& logits,
                                  const RouterConfig& cfg, RoutingDecision d) {
  d.experts = top_ids;
  d.weights = combine_weights(probs.gather(1, top_ids), cfg);  // at top-1: the probability itself (Switch)
  d.probs = probs;
  set_z_loss_aux(d, logits, cfg);
  return d;
}

at::Tensor combine_weights(const at::Tensor& top, const RouterConfig& cfg) {
  if (!cfg.renormalize || top.size(1) < 2) return top;
  return top.div(top.sum(1, /*keepdim=*/true));  // [n_tokens, k]
}

at::Tensor zero_aux(const at::Tensor& logits) { return at::zeros({}, logits.options()); }

}  // namespace moetb
