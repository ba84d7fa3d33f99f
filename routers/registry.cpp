// The explicit router registry: every router is listed here by name, in the order
// router_names() reports, with the one-line description and reference that `moetb
// routers` prints (and the topk options). No self-registering statics (a static
// library's linker drops them). Routers follow the MoE Routing Testbed (arXiv
// 2604.07030); see routers/README.md and docs/routers.md.
#include <cstddef>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "routers/router.h"
#include "routers/router_internal.h"

namespace moetb {

namespace {

struct RouterEntry {
  const char* name;
  std::unique_ptr<Router> (*make)(const RouterConfig&);
  const char* description;
  const char* reference;
};

constexpr RouterEntry kRouters[] = {
    {"topk", make_topk_router, "token choice: softmax/sigmoid scores, top-k experts, Switch balance loss + z-loss",
     "arXiv 2101.03961"},
    {"oracle", make_oracle_router, "reference router: top-k restricted to the token's domain group (upper bound)",
     "arXiv 2604.07030"},
    {"hash", make_hash_router, "fixed balanced hash of the token id, weights 1/k (not learned)", "arXiv 2106.04426"},
    {"random", make_random_router, "k distinct uniform experts per token, seeded (the floor)", ""},
    {"expert_choice", make_expert_choice_router,
     "each expert takes its top-C tokens of the micro-batch, C = ceil(c*n/E) (not causal)", "arXiv 2202.09368"},
    {"sinkhorn", make_sinkhorn_router,
     "S-BASE: top-k of a Sinkhorn-balanced assignment (to router.sinkhorn_tol) in training, plain top-k at evaluation", "arXiv 2202.01169"},
    {"balanced", make_balanced_router,
     "BASE: in training every expert gets exactly its share n*k/E (exact max-logit assignment); plain top-k at evaluation",
     "arXiv 2103.16716"},
};

// The options of the token-choice router (and the layer's capacity), for the listing.
const RouterInfo kTopkOptions[] = {
    {"router.score", "softmax or sigmoid scores (probs and the balance loss use the softmax)", "arXiv 2412.19437"},
    {"router.renormalize", "selected weights rescaled to sum 1 per token if k > 1 (k = 1: the probability, as Switch)",
     "arXiv 2101.03961"},
    {"router.topk_before_softmax", "select on the logits, softmax over the k selected (= renormalized softmax)",
     "arXiv 2401.04088"},
    {"router.balance_coef", "Switch load-balancing loss c * E * sum_e f_e P_e", "arXiv 2101.03961"},
    {"router.balance_scope", "micro_batch | sequence (DeepSeek-V3) | global_batch (Qwen: f over the step so far)",
     "arXiv 2501.11873"},
    {"router.seq_aux_coef", "extra sequence-wise balance loss (DeepSeek-V3)", "arXiv 2412.19437"},
    {"router.z_loss_coef", "router z-loss mean(logsumexp(logits)^2)", "arXiv 2202.08906"},
    {"router.bias_update_rate", "aux-loss-free balancing: selection bias b_e += u*sign(mean load - load_e) per step",
     "arXiv 2412.19437"},
    {"router.bias_scope", "aux-loss-free bias updated from sequence | micro_batch | global_batch counts (default)",
     "arXiv 2604.07030"},
    {"router.assign_scope", "sinkhorn/balanced: solve over each sequence | the micro_batch (default) | global_batch",
     "arXiv 2604.07030"},
    {"router.sinkhorn_tol", "sinkhorn: iterate until every column sum is within this relative distance of n/E",
     "arXiv 2202.01169"},
    {"router.sinkhorn_max_iters", "sinkhorn: iteration cap (residual logged as aux_terms.sinkhorn_residual)", ""},
    {"router.n_groups", "group-limited routing: experts in n_groups groups, tokens use their best topk_groups",
     "arXiv 2405.04434"},
    {"router.topk_groups", "group-limited routing: groups each token may use", "arXiv 2405.04434"},
    {"router.group_score", "group score: max (best expert, DeepSeek-V2) | top2_sum (two best, DeepSeek-V3); auto = top2_sum for sigmoid",
     "arXiv 2412.19437"},
    {"router.jitter", "training: logits * U(1-eps, 1+eps)", "arXiv 2101.03961"},
    {"router.capacity_factor", "token choice: C = ceil(cf*n*k/E) per expert, rest dropped (0 = dropless); expert_choice: C",
     "arXiv 2101.03961"},
    {"router.drop_policy", "over capacity keep the highest weights (probability) or the earliest tokens (position)",
     "arXiv 2101.03961"},
};

constexpr bool same_text(const char* a, const char* b) {
  while (*a != '\0' && *a == *b) ++a, ++b;
  return *a == *b;
}

// The factories and router_config.h's kRouterNames (the torch-free list router_names() returns) agree.
constexpr bool table_matches_names() {
  if (std::size(kRouters) != std::size(kRouterNames)) return false;
  for (std::size_t i = 0; i < std::size(kRouters); ++i)
    if (!same_text(kRouters[i].name, kRouterNames[i])) return false;
  return true;
}
static_assert(table_matches_names(), "kRouters and kRouterNames (routers/router_config.h) must list the same names in the same order");

}  // namespace

std::unique_ptr<Router> make_router(const RouterConfig& cfg) {
  for (const auto& entry : kRouters)
    if (cfg.name == entry.name) return entry.make(cfg);
  std::string known;
  for (const auto& entry : kRouters) known += (known.empty() ? "" : ", ") + std::string(entry.name);
  throw std::invalid_argument("unknown router '" + cfg.name + "' (known: " + known + ")");
}

std::vector<ScopeInfo> balancing_scopes() {
  const std::vector<std::string> all = {"sequence", "micro_batch", "global_batch"};
  return {
      {"LBL (topk, router.balance_coef > 0)", "router.balance_scope", all,
       "f and P of the Switch loss per sequence, per micro-batch, or f over the step's micro-batches so far"},
      {"EB (topk, router.bias_update_rate > 0)", "router.bias_scope", all,
       "bias step from each sequence's, each micro-batch's or the whole step's counts (default global_batch)"},
      {"SH (sinkhorn)", "router.assign_scope", all,
       "Sinkhorn over each sequence or the micro-batch; global_batch = the step, only at train.accum_steps = 1"},
      {"BA (balanced)", "router.assign_scope", all,
       "exact shares per sequence or per micro-batch; global_batch = the step, only at train.accum_steps = 1"},
      {"expert_choice", "(fixed)", {"micro_batch"}, "each expert picks its top-C tokens of the micro-batch"},
  };
}

std::vector<RouterInfo> router_catalog() {
  std::vector<RouterInfo> out;
  for (const auto& entry : kRouters) out.push_back({entry.name, entry.description, entry.reference});
  for (const auto& option : kTopkOptions) out.push_back(option);
  return out;
}

}  // namespace moetb
