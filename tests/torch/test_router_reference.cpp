// Differential tests of the topk router against the plain-loop references of
// oracle/reference_routing.h: selection, weights, probs, the Switch balance loss (arXiv
// 2101.03961) and the ST-MoE z-loss (arXiv 2202.08906), for softmax and sigmoid scores
// with and without renormalisation; and the autograd gradient of weights + aux loss
// against central finite differences of the reference (float64).
#include "tests/torch/torch_catch.h"

#include <cmath>
#include <string>
#include <vector>

#include "oracle/reference_routing.h"
#include "routers/router.h"
#include "tests/torch/torch_test_util.h"

using namespace moetb;

namespace {

RouterConfig topk_config(int64_t n_experts, int64_t top_k, const std::string& score, bool renormalize) {
  RouterConfig cfg;
  cfg.name = "topk";
  cfg.n_experts = n_experts;
  cfg.top_k = top_k;
  cfg.score = parse_enum<Score>(score);
  cfg.renormalize = renormalize;
  cfg.balance_coef = 0.01;
  cfg.z_loss_coef = 0.003;
  return cfg;
}

// The scalar the gradient test differentiates: sum_tj c_tj w_tj + aux, from the reference.
double reference_objective(const std::vector<double>& logits, const std::vector<double>& c, const RouterConfig& cfg,
                           int64_t n_tokens) {
  const ReferenceRouting r =
      topk_select_reference(logits.data(), n_tokens, cfg.n_experts, cfg.top_k, enum_name(cfg.score), cfg.renormalize);
  double value = 0;
  for (std::size_t i = 0; i < c.size(); ++i) value += c[i] * r.weights[i];
  value += cfg.balance_coef * switch_balance_loss_reference(r.experts, r.probs, n_tokens, cfg.n_experts, cfg.top_k);
  value += cfg.z_loss_coef * router_z_loss_reference(logits.data(), n_tokens, cfg.n_experts);
  return value;
}

}  // namespace

TEST_CASE("topk router matches the plain-loop reference", "[routers]") {
  const int64_t n_tokens = 50, n_experts = 7;
  for (const std::string score : {"softmax", "sigmoid"}) {
    for (bool renormalize : {true, false}) {
      for (int64_t top_k : {int64_t{1}, int64_t{3}}) {
        for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
          const RouterConfig cfg = topk_config(n_experts, top_k, score, renormalize);
          INFO(score << " renormalize " << renormalize << " top_k " << top_k << " " << c10::toString(dtype));
          const at::Tensor logits = moetb_test::seeded_randn({n_tokens, n_experts}, 21, dtype).mul(2.0);
          const RoutingDecision d = make_router(cfg)->route(logits, RouteContext{});
          const std::vector<double> flat = moetb_test::to_doubles(logits);
          const ReferenceRouting ref =
              topk_select_reference(flat.data(), n_tokens, n_experts, top_k, score, renormalize);
          const double tol = dtype == at::kFloat ? 2e-6 : 1e-12;

          CHECK(moetb_test::to_longs(d.experts) == ref.experts);
          const auto weights = moetb_test::to_doubles(d.weights);
          const auto probs = moetb_test::to_doubles(d.probs);
          double worst_w = 0, worst_p = 0;
          for (std::size_t i = 0; i < weights.size(); ++i)
            worst_w = std::max(worst_w, std::abs(weights[i] - ref.weights[i]));
          for (std::size_t i = 0; i < probs.size(); ++i) worst_p = std::max(worst_p, std::abs(probs[i] - ref.probs[i]));
          CHECK(worst_w < tol);
          CHECK(worst_p < tol);

          const double balance = switch_balance_loss_reference(ref.experts, ref.probs, n_tokens, n_experts, top_k);
          const double z = router_z_loss_reference(flat.data(), n_tokens, n_experts);
          CHECK(d.aux_terms.at("balance") == Approx(balance).epsilon(10 * tol));
          CHECK(d.aux_terms.at("z_loss") == Approx(z).epsilon(10 * tol));
          CHECK(d.aux_loss.item<double>() ==
                Approx(cfg.balance_coef * balance + cfg.z_loss_coef * z).epsilon(10 * tol));
        }
      }
    }
  }
}

TEST_CASE("switch balance loss is 1 when perfectly balanced and E when collapsed", "[routers]") {
  // Uniform probs and a round-robin assignment: f_e = P_e = 1/E, loss = E * E * (1/E^2) = 1.
  const int64_t n_experts = 4, n_tokens = 8;
  std::vector<double> probs(static_cast<std::size_t>(n_tokens * n_experts), 0.25);
  std::vector<int64_t> experts;
  for (int64_t t = 0; t < n_tokens; ++t) experts.push_back(t % n_experts);
  CHECK(switch_balance_loss_reference(experts, probs, n_tokens, n_experts, 1) == Approx(1.0));
  // Everything on expert 0 with certainty: f_0 = P_0 = 1, loss = E.
  std::vector<double> one_hot(static_cast<std::size_t>(n_tokens * n_experts), 0.0);
  for (int64_t t = 0; t < n_tokens; ++t) one_hot[static_cast<std::size_t>(t * n_experts)] = 1.0;
  CHECK(switch_balance_loss_reference(std::vector<int64_t>(8, 0), one_hot, n_tokens, n_experts, 1) ==
        Approx(static_cast<double>(n_experts)));
  // Empty slots do not count in f.
  std::vector<int64_t> padded = {0, -1, 1, -1, 2, -1, 3, -1, 0, -1, 1, -1, 2, -1, 3, -1};
  CHECK(switch_balance_loss_reference(padded, probs, n_tokens, n_experts, 2) == Approx(1.0));
}

TEST_CASE("topk router gradients match finite differences of the reference", "[routers]") {
  const int64_t n_tokens = 12, n_experts = 6;
  for (const std::string score : {"softmax", "sigmoid"}) {
    for (bool renormalize : {true, false}) {
      const RouterConfig cfg = topk_config(n_experts, 2, score, renormalize);
      INFO(score << " renormalize " << renormalize);
      const at::Tensor logits = moetb_test::seeded_randn({n_tokens, n_experts}, 5, at::kDouble).requires_grad_();
      const at::Tensor c = moetb_test::seeded_randn({n_tokens, 2}, 6, at::kDouble);
      const RoutingDecision d = make_router(cfg)->route(logits, RouteContext{});
      REQUIRE(d.weights.requires_grad());
      d.weights.mul(c).sum().add(d.aux_loss).backward();
      const auto grad = moetb_test::to_doubles(logits.grad());

      std::vector<double> x = moetb_test::to_doubles(logits);
      const std::vector<double> cv = moetb_test::to_doubles(c);
      const double h = 1e-6;  // far below the gaps between random logits: the selection stays put
      double worst = 0;
      for (std::size_t i = 0; i < x.size(); ++i) {
        const double saved = x[i];
        x[i] = saved + h;
        const double up = reference_objective(x, cv, cfg, n_tokens);
        x[i] = saved - h;
        const double down = reference_objective(x, cv, cfg, n_tokens);
        x[i] = saved;
        worst = std::max(worst, std::abs((up - down) / (2 * h) - grad[i]));
      }
      CHECK(worst < 1e-7);  // central differences: O(h^2) truncation + O(eps/h) rounding
    }
  }
}
