// The router's settings, held once: RouterConfig (used by make_router, the MoE layer and,
// embedded, by the training config's router.* keys), its enums with names, parse and
// one-line errors listing the allowed values, and validate_router_config, the one check.
// Torch-free. Options follow the MoE Routing Testbed (arXiv 2604.07030), Switch (arXiv
// 2101.03961), ST-MoE (arXiv 2202.08906), DeepSeek-V2/V3 (arXiv 2405.04434, 2412.19437),
// S-BASE (arXiv 2202.01169) and BASE layers (arXiv 2103.16716); docs/routers.md has them.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace moetb {

enum class Score { kSoftmax, kSigmoid };                          // router.score
enum class BalanceScope { kSequence, kMicroBatch, kGlobalBatch };  // router.*_scope
enum class DropPolicy { kProbability, kPosition };                // router.drop_policy
// router.group_score: a group's score is its best expert's (max, DeepSeek-V2) or the sum of
// its two best (top2_sum, DeepSeek-V3 / GLM-4.5 / Megatron-LM); auto = top2_sum for sigmoid
// scores, max for softmax.
enum class GroupScore { kAuto, kMax, kTop2Sum };

// The names of each enum's values, in order (the TOML spelling).
template <class E> struct EnumNames;
template <> struct EnumNames<Score> {
  static constexpr std::pair<Score, const char*> kValues[] = {{Score::kSoftmax, "softmax"}, {Score::kSigmoid, "sigmoid"}};
};
template <> struct EnumNames<BalanceScope> {
  static constexpr std::pair<BalanceScope, const char*> kValues[] = {
      {BalanceScope::kSequence, "sequence"}, {BalanceScope::kMicroBatch, "micro_batch"}, {BalanceScope::kGlobalBatch, "global_batch"}};
};
template <> struct EnumNames<DropPolicy> {
  static constexpr std::pair<DropPolicy, const char*> kValues[] = {{DropPolicy::kProbability, "probability"},
                                                                   {DropPolicy::kPosition, "position"}};
};

template <> struct EnumNames<GroupScore> {
  static constexpr std::pair<GroupScore, const char*> kValues[] = {
      {GroupScore::kAuto, "auto"}, {GroupScore::kMax, "max"}, {GroupScore::kTop2Sum, "top2_sum"}};
};

template <class E> std::string enum_name(E v) {
  for (const auto& [value, name] : EnumNames<E>::kValues)
    if (value == v) return name;
  return "?";
}
// "softmax, sigmoid"
template <class E> std::string enum_choices() {
  std::string out;
  for (const auto& entry : EnumNames<E>::kValues) out += (out.empty() ? "" : ", ") + std::string(entry.second);
  return out;
}
// Throws std::invalid_argument("'relu' is not one of: softmax, sigmoid").
template <class E> E parse_enum(const std::string& s) {
  for (const auto& [value, name] : EnumNames<E>::kValues)
    if (s == name) return value;
  throw std::invalid_argument("'" + s + "' is not one of: " + enum_choices<E>());
}

// Plain aggregate; validate_router_config checks it (make_router calls it). Fields a router
// does not use are ignored. The training config binds every field but n_experts, top_k,
// seed and domain_groups, which come from moe.*, train.seed and the dataset.
struct RouterConfig {
  std::string name = "topk";      // registry name: see router_names() / `moetb routers`
  int64_t n_experts = 8;          // E, the width of the logits (moe.n_experts)
  int64_t top_k = 2;              // slots per token, 1 <= top_k <= E (moe.top_k)
  Score score = Score::kSoftmax;  // topk selection score (the oracle and sinkhorn: softmax only)
  bool renormalize = true;        // selected weights rescaled to sum 1 per token when top_k > 1;
                                  // at top_k = 1 the weight stays the probability (Switch)
  double balance_coef = 0.01;     // Switch load-balancing loss weight (arXiv 2101.03961)
  double z_loss_coef = 0.001;     // ST-MoE router z-loss weight (arXiv 2202.08906)
  uint64_t seed = 0;              // hash table, random-router and jitter streams (train.seed)
  std::vector<std::vector<int>> domain_groups;  // oracle: experts allowed per domain id
  // Token-choice options (topk; docs/routers.md has the formulas).
  BalanceScope balance_scope = BalanceScope::kMicroBatch;  // Switch-loss scope (f and P)
  double seq_aux_coef = 0.0;       // extra sequence-wise balance loss (DeepSeek-V3), 0 = off
  double bias_update_rate = 0.0;   // u of the aux-loss-free bias (DeepSeek-V3), 0 = off
  BalanceScope bias_scope = BalanceScope::kGlobalBatch;  // counts the bias update reads
  int64_t n_groups = 1;            // group-limited routing: experts in n_groups groups (1 = off)
  int64_t topk_groups = 1;         // ... each token restricted to its best topk_groups groups
  GroupScore group_score = GroupScore::kAuto;  // how a group is scored (resolved_group_score)
  double jitter = 0.0;             // training: logits * U(1-jitter, 1+jitter) (Switch), 0 = off
  bool topk_before_softmax = false;  // select on logits, softmax over the selected k (softmax score)
  // Sinkhorn (S-BASE): iterate until every column sum is within sinkhorn_tol (relative) of
  // n/E, at most sinkhorn_max_iters times; the residual is logged (aux_terms).
  // sinkhorn and balanced solve over each sequence or the micro-batch (global_batch: the
  // whole step, which is the micro-batch when train.accum_steps = 1; docs/routers.md).
  BalanceScope assign_scope = BalanceScope::kMicroBatch;
  double sinkhorn_tol = 1e-3;
  int64_t sinkhorn_max_iters = 1000;
  // Capacity (MoE layer, routers/capacity.h) and expert choice's C.
  double capacity_factor = 0.0;    // 0 = dropless; expert_choice: 0 means top_k (compute parity)
  DropPolicy drop_policy = DropPolicy::kProbability;  // over capacity, keep by weight or by position
};

// group_score with auto resolved: top2_sum for sigmoid scores, max for softmax.
inline GroupScore resolved_group_score(const RouterConfig& c) {
  if (c.group_score != GroupScore::kAuto) return c.group_score;
  return c.score == Score::kSigmoid ? GroupScore::kTop2Sum : GroupScore::kMax;
}

// The registered router names, in registry order. Kept here, torch-free, so that the training
// config can be checked without LibTorch (moetb sweep plan); registry.cpp's factory table is
// checked against this list at compile time.
inline constexpr const char* kRouterNames[] = {"topk", "oracle", "hash", "random", "expert_choice", "sinkhorn", "balanced"};
std::vector<std::string> router_names();  // kRouterNames as strings

// One line "router.KEY: problem" (or "moe.top_k: ...") on the first bad field; the
// router name is checked against the registry (router_names()).
void validate_router_config(const RouterConfig& cfg);

}  // namespace moetb
