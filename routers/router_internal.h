// Internal to moetb_routers: the factory of each router (one per file, listed by the
// explicit registry in registry.cpp) and the auxiliary losses they share: the Switch
// load-balancing loss (arXiv 2101.03961) and the ST-MoE router z-loss (arXiv 2202.08906),
// over the micro-batch (other balance scopes: routers/balance.h). Not part of the public interface (include routers/router.h).
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "routers/router.h"
#include "routers/router_kernels.h"

namespace moetb {

std::unique_ptr<Router> make_topk_router(const RouterConfig& cfg);
std::unique_ptr<Router> make_oracle_router(const RouterConfig& cfg);
std::unique_ptr<Router> make_hash_router(const RouterConfig& cfg);
std::unique_ptr<Router> make_random_router(const RouterConfig& cfg);
std::unique_ptr<Router> make_expert_choice_router(const RouterConfig& cfg);
std::unique_ptr<Router> make_sinkhorn_router(const RouterConfig& cfg);
std::unique_ptr<Router> make_balanced_router(const RouterConfig& cfg);

// The exact balanced assignment of logits ([n, E]) with k experts per token and every expert
// at its share (balanced_capacities): [n, k] int64 on the logits' device, each row by
// descending logit (balanced_router.cpp).
at::Tensor balanced_selection(const at::Tensor& logits, int64_t k);

// Expert choice's per-expert capacity C = min(n_tokens, ceil(c * n_tokens / E)),
// c = cfg.capacity_factor, or cfg.top_k when that is 0 (expert_choice_router.cpp).
int64_t expert_choice_capacity(int64_t n_tokens, const RouterConfig& cfg);

// E * sum_e f_e * P_e. f_e: share of the non-empty slots that picked e (not
// differentiable); P_e: mean of probs[:, e] over tokens (differentiable). 0 for 0 tokens.
// probs: [n_tokens, n_experts]; experts: [n_tokens, k] int64, -1 = empty. Returns [].
at::Tensor switch_balance_loss(const at::Tensor& probs, const at::Tensor& experts);

// router_z_loss (mean over tokens of logsumexp(logits)^2), topk_indices and expert_counts:
// routers/router_kernels.h.

// Sets decision.aux_loss = balance_coef*balance + z_loss_coef*z and the unweighted
// aux_terms "balance" and "z_loss". probs: [n_tokens, n_experts] (P_e of the balance loss).
void set_learned_aux(RoutingDecision& decision, const at::Tensor& logits, const at::Tensor& probs,
                     const RouterConfig& cfg);

// For routers whose balance comes from the assignment itself (expert choice, Sinkhorn,
// balanced assignment): decision.aux_loss = z_loss_coef * z and aux_terms "z_loss".
void set_z_loss_aux(RoutingDecision& decision, const at::Tensor& logits, const RouterConfig& cfg);

// The decision of a router that picked top_ids ([n_tokens, k] int64) by its assignment
// (Sinkhorn, balanced): weights from probs ([n_tokens, E]) by combine_weights, z-loss only.
RoutingDecision assigned_decision(const at::Tensor& top_ids, const at::Tensor& probs, const at::Tensor& logits,
                                  const RouterConfig& cfg, RoutingDecision d = {});

// The combine weights of the selected scores top ([n_tokens, k]): divided by their row sum
// when cfg.renormalize and k > 1. At k = 1 the weight stays the score (Switch Transformer):
// a renormalised single weight is the constant 1 and the router would get no task gradient.
at::Tensor combine_weights(const at::Tensor& top, const RouterConfig& cfg);

// Sinkhorn in the log domain, float64, on one block of m tokens: scales exp(log_scores)
// ([m, E]) so that every row sums to 1 and every column to m/E; rows are exact, columns
// within `tol` (relative) or after `max_iters` iterations. Returns the balanced log matrix
// ([m, E] double), the residual max_e |col_e * E / m - 1| and the iterations run.
struct SinkhornResult {
  at::Tensor log_plan;   // [m, E] double
  double residual = 0.0;
  int64_t iterations = 0;
};
SinkhornResult sinkhorn_balance(const at::Tensor& log_scores, double tol, int64_t max_iters);

// For routers without aux losses: aux_loss = 0 in the logits' dtype and device.
at::Tensor zero_aux(const at::Tensor& logits);

// "[4, 8]" for messages.
std::string shape_string(const at::Tensor& t);

}  // namespace moetb
