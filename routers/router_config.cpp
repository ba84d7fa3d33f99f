// validate_router_config (router_config.h): the one check of the router's settings, with
// messages named by the training config's keys ("router.jitter: must be in [0, 1), got 1").
// Called by the Router constructor and by validate_train_config; also router_names(). Torch-free
// (library moetb_router_config, which moetb sweep plan links without LibTorch). References as
// in router_config.h (Switch arXiv 2101.03961, DeepSeek-V3 arXiv 2412.19437, ...).
#include "routers/router_config.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace moetb {

namespace {

[[noreturn]] void bad(const std::string& key, const std::string& what) { throw std::invalid_argument(key + ": " + what); }

std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

void non_negative(double v, const char* key) {
  if (!std::isfinite(v) || v < 0) bad(key, "must be finite and >= 0, got " + num(v));
}

}  // namespace

std::vector<std::string> router_names() { return {std::begin(kRouterNames), std::end(kRouterNames)}; }

void validate_router_config(const RouterConfig& c) {
  const std::vector<std::string> names = router_names();
  if (std::find(names.begin(), names.end(), c.name) == names.end()) {
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    bad("router.name", "unknown router '" + c.name + "' (known: " + known + ")");
  }
  if (c.n_experts < 1) bad("moe.n_experts", "must be >= 1, got " + std::to_string(c.n_experts));
  if (c.top_k < 1 || c.top_k > c.n_experts)
    bad("moe.top_k", "must be in [1, n_experts=" + std::to_string(c.n_experts) + "], got " + std::to_string(c.top_k));
  non_negative(c.balance_coef, "router.balance_coef");
  non_negative(c.z_loss_coef, "router.z_loss_coef");
  non_negative(c.seq_aux_coef, "router.seq_aux_coef");
  non_negative(c.bias_update_rate, "router.bias_update_rate");
  non_negative(c.capacity_factor, "router.capacity_factor");
  if (!(c.sinkhorn_tol > 0.0 && c.sinkhorn_tol < 1.0))
    bad("router.sinkhorn_tol", "must be in (0, 1), got " + num(c.sinkhorn_tol));
  if (c.sinkhorn_max_iters < 1) bad("router.sinkhorn_max_iters", "must be >= 1, got " + std::to_string(c.sinkhorn_max_iters));
  if (!(c.jitter >= 0.0 && c.jitter < 1.0)) bad("router.jitter", "must be in [0, 1), got " + num(c.jitter));
  if (c.n_groups < 1 || c.n_experts % c.n_groups != 0)
    bad("router.n_groups", "must be >= 1 and divide n_experts=" + std::to_string(c.n_experts) + ", got " +
                               std::to_string(c.n_groups));
  if (c.topk_groups < 1 || c.topk_groups > c.n_groups)
    bad("router.topk_groups", "must be in [1, n_groups=" + std::to_string(c.n_groups) + "], got " + std::to_string(c.topk_groups));
  if (c.topk_groups * (c.n_experts / c.n_groups) < c.top_k)
    bad("router.topk_groups", std::to_string(c.topk_groups) + " groups of " + std::to_string(c.n_experts / c.n_groups) +
                                  " experts cannot hold top_k=" + std::to_string(c.top_k));
  if (c.topk_before_softmax && c.score != Score::kSoftmax)
    bad("router.topk_before_softmax", "needs router.score = softmax, got " + enum_name(c.score));
  if (c.topk_before_softmax && c.top_k == 1)
    bad("router.topk_before_softmax", "at moe.top_k = 1 the softmax over one logit is the constant 1: the router would get no "
                                      "gradient (use top_k >= 2, or leave it off: the weight is then the probability)");
  if (c.name == "oracle" && c.score != Score::kSoftmax)
    bad("router.score", "the oracle router supports softmax only, got " + enum_name(c.score));
}

}  // namespace moetb
