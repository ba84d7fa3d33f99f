// Slow, obvious reference routing for differential tests of routers/ (torch-free, plain
// loops in double): token-choice top-k selection with softmax or sigmoid scores (Switch
// Transformer arXiv 2101.03961), its load-balancing loss E * sum_e f_e * P_e, and the
// ST-MoE router z-loss (arXiv 2202.08906). Ties rank the lower expert id first.
// Simplification: one micro-batch, no capacity limit; nothing here is fast.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace moetb {

struct ReferenceRouting {
  std::vector<int64_t> experts;  // [n_tokens, k] row-major, by descending score
  std::vector<double> weights;   // [n_tokens, k] the selected scores (renormalised if asked)
  std::vector<double> probs;     // [n_tokens, n_experts] softmax of the logits (P_e's source)
};

// logits: [n_tokens, n_experts] row-major. score: "softmax" or "sigmoid".
// Throws std::invalid_argument on a bad size, k or score.
ReferenceRouting topk_select_reference(const double* logits, int64_t n_tokens, int64_t n_experts, int64_t k,
                                       const std::string& score, bool renormalize);
ReferenceRouting topk_select_reference(const float* logits, int64_t n_tokens, int64_t n_experts, int64_t k,
                                       const std::string& score, bool renormalize);

// Group-limited top-k (DeepSeek-V2 arXiv 2405.04434, DeepSeek-V3 arXiv 2412.19437): the E
// experts form n_groups consecutive groups; a group scores its best expert's score
// (group_rule "max") or the sum of its two best ("top2_sum"); each token keeps its
// topk_groups best groups and takes its top-k scores inside them. Same score, weights and
// probs as topk_select_reference. Throws std::invalid_argument on a bad shape or rule.
ReferenceRouting group_topk_reference(const double* logits, int64_t n_tokens, int64_t n_experts, int64_t k,
                                      const std::string& score, bool renormalize, int64_t n_groups, int64_t topk_groups,
                                      const std::string& group_rule);

// E * sum_e f_e * P_e with f_e = (slots that chose e) / (non-empty slots) and
// P_e = mean over tokens of probs[t][e]. experts: [n_tokens, k], -1 = empty slot;
// probs: [n_tokens, n_experts]. 0 when there are no tokens or no non-empty slots.
double switch_balance_loss_reference(const std::vector<int64_t>& experts, const std::vector<double>& probs,
                                     int64_t n_tokens, int64_t n_experts, int64_t k);

// mean over tokens of (log sum_e exp logits[t][e])^2; 0 for no tokens.
double router_z_loss_reference(const double* logits, int64_t n_tokens, int64_t n_experts);

}  // namespace moetb
