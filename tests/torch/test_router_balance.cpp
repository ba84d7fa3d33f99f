// Balancing of the token-choice router (routers/balance.h): the Switch loss c*E*sum f P
// (arXiv 2101.03961) is c at perfect balance and c*E when every token takes one expert;
// the sequence scope (DeepSeek-V3, arXiv 2412.19437) equals the micro-batch scope for one
// sequence; the global-batch scope (Qwen, arXiv 2501.11873) equals it with one micro-batch
// per step and uses the step's running counts under accumulation. Aux-loss-free bias
// (DeepSeek-V3): the load violation falls over steps on skewed logits; state round-trips.
#include <ATen/ops/arange.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include "tests/torch/torch_catch.h"

#include <cmath>
#include <string>
#include <vector>

#include "routers/router.h"
#include "tests/torch/torch_test_util.h"

using namespace moetb;

namespace {

constexpr int64_t kE = 8;

RouterConfig topk_cfg(const std::string& scope, int64_t k = 1, double coef = 0.05) {
  RouterConfig cfg;
  cfg.n_experts = kE;
  cfg.top_k = k;
  cfg.balance_coef = coef;
  cfg.z_loss_coef = 0.0;
  cfg.balance_scope = parse_enum<BalanceScope>(scope);
  return cfg;
}

RouteContext seq_context(int64_t n_tokens, int64_t seq_len) {
  RouteContext ctx;
  ctx.sequence_ids = at::arange(n_tokens, at::kLong).div(seq_len, "floor");  // [n_tokens]
  return ctx;
}

// max over experts of share * E - 1 of one decision's non-empty slots.
double max_violation(const at::Tensor& experts) {
  const at::Tensor ids = experts.reshape({-1});
  const at::Tensor c = at::bincount(ids.masked_select(ids.ge(0)), {}, kE).to(at::kDouble);
  return c.max().item<double>() / c.sum().item<double>() * static_cast<double>(kE) - 1.0;
}

}  // namespace

TEST_CASE("the balance loss is c at perfect balance and c*E on one expert, in every scope", "[routers]") {
  const int64_t n = 64;  // 4 sequences of 16
  const double c = 0.05;
  // Token t prefers expert t % E: f = P = 1/E per expert. Then every token on expert 3.
  const at::Tensor cyclic = at::zeros({n, kE}, at::kDouble).scatter(1, at::arange(n, at::kLong).remainder(kE).unsqueeze(1), 3.0);
  const at::Tensor one = at::zeros({n, kE}, at::kDouble).index_fill(1, at::tensor({int64_t{3}}), 60.0);
  for (const char* scope : {"micro_batch", "sequence", "global_batch"}) {
    INFO(scope);
    auto router = make_router(topk_cfg(scope));
    const RoutingDecision balanced = router->route(cyclic, seq_context(n, 16));
    CHECK(balanced.aux_loss.item<double>() == Approx(c).epsilon(1e-12));
    router->end_step();
    const RoutingDecision skewed = router->route(one, seq_context(n, 16));
    CHECK(skewed.aux_loss.item<double>() == Approx(c * kE).epsilon(1e-12));
    CHECK(skewed.aux_terms.at("balance") == Approx(kE).epsilon(1e-12));
  }
}

TEST_CASE("sequence scope equals micro-batch scope when the micro-batch is one sequence", "[routers]") {
  const at::Tensor logits = moetb_test::seeded_randn({48, kE}, 5, at::kDouble).requires_grad_();
  auto micro = make_router(topk_cfg("micro_batch", 2));
  auto seq = make_router(topk_cfg("sequence", 2));
  const RoutingDecision a = micro->route(logits, seq_context(48, 48));
  const RoutingDecision b = seq->route(logits, seq_context(48, 48));
  CHECK(a.aux_loss.item<double>() == Approx(b.aux_loss.item<double>()).epsilon(1e-12));
  // With 3 sequences of 16 the scopes differ.
  const RoutingDecision c3 = seq->route(logits, seq_context(48, 16));
  CHECK(std::abs(c3.aux_loss.item<double>() - a.aux_loss.item<double>()) > 1e-6);
  // It needs sequence ids.
  CHECK_THROWS_WITH(seq->route(logits, RouteContext{}), Catch::Contains("needs ctx.sequence_ids"));
}

TEST_CASE("global-batch scope: one micro-batch per step equals micro-batch; accumulation uses the step's counts", "[routers]") {
  auto micro = make_router(topk_cfg("micro_batch", 2));
  auto global = make_router(topk_cfg("global_batch", 2));
  for (uint64_t step = 0; step < 3; ++step) {
    const at::Tensor logits = moetb_test::seeded_randn({32, kE}, 20 + step, at::kDouble);
    const double a = micro->route(logits, RouteContext{}).aux_loss.item<double>();
    const double b = global->route(logits, RouteContext{}).aux_loss.item<double>();
    CHECK(a == Approx(b).epsilon(1e-12));
    micro->end_step();
    global->end_step();
  }
  // Two micro-batches in one step: the second one's f counts both.
  const at::Tensor first = moetb_test::seeded_randn({32, kE}, 30, at::kDouble);
  const at::Tensor second = moetb_test::seeded_randn({32, kE}, 31, at::kDouble).requires_grad_();
  const RoutingDecision d1 = global->route(first, RouteContext{});
  const RoutingDecision d2 = global->route(second, RouteContext{});
  const at::Tensor both = at::cat({d1.experts, d2.experts}, 0).reshape({-1});
  const at::Tensor f = at::bincount(both, {}, kE).to(at::kDouble).div(static_cast<double>(both.numel()));  // [E]
  const double want = 0.05 * kE * f.mul(at::softmax(second.detach(), 1).mean(0)).sum().item<double>();
  CHECK(d2.aux_loss.item<double>() == Approx(want).epsilon(1e-12));
  CHECK(std::abs(d2.aux_loss.item<double>() - micro->route(second, RouteContext{}).aux_loss.item<double>()) > 1e-6);
  d2.aux_loss.backward();  // P stays differentiable
  CHECK(second.grad().abs().sum().item<double>() > 0.0);
  // Evaluation routes do not count: after end_step, an eval route leaves the next step fresh.
  global->end_step();
  micro->end_step();
  RouteContext eval;
  eval.training = false;
  global->route(first, eval);
  CHECK(global->route(second, RouteContext{}).aux_loss.item<double>() ==
        Approx(micro->route(second, RouteContext{}).aux_loss.item<double>()).epsilon(1e-12));
}

TEST_CASE("aux-loss-free bias: the load violation falls over steps on skewed logits", "[routers]") {
  // Scores skewed towards the low experts; no balance loss at all (balance_coef 0).
  const at::Tensor skew = at::arange(kE, at::kFloat).mul(-0.4).unsqueeze(0);  // [1, E]
  auto run = [&](double rate, std::vector<double>* trace) {
    RouterConfig cfg = topk_cfg("micro_batch", 2, 0.0);
    cfg.bias_update_rate = rate;
    auto router = make_router(cfg);
    for (uint64_t step = 0; step < 60; ++step) {
      const at::Tensor logits = moetb_test::seeded_randn({256, kE}, 100 + step).add(skew);
      trace->push_back(max_violation(router->route(logits, RouteContext{}).experts));
      router->end_step();
    }
    return router;
  };
  std::vector<double> off, on;
  run(0.0, &off);
  auto router = run(0.01, &on);
  auto mean_last = [](const std::vector<double>& v) {
    double s = 0;
    for (std::size_t i = v.size() - 10; i < v.size(); ++i) s += v[i];
    return s / 10.0;
  };
  INFO("violation without bias " << mean_last(off) << ", with: first " << on.front() << ", last 10 " << mean_last(on));
  CHECK(on.front() > 0.8);              // the skew is strong
  CHECK(mean_last(off) > 0.8);          // and stays without the bias
  CHECK(mean_last(on) < 0.3 * on.front());
  // The bias is router state: a copy loaded from save_state routes identically.
  const std::vector<uint64_t> state = router->save_state();
  CHECK(state.size() == 2 * kE + 4);
  RouterConfig cfg = topk_cfg("micro_batch", 2, 0.0);
  cfg.bias_update_rate = 0.01;
  auto copy = make_router(cfg);
  const at::Tensor logits = moetb_test::seeded_randn({256, kE}, 999).add(skew);
  CHECK_FALSE(copy->route(logits, RouteContext{}).experts.equal(router->route(logits, RouteContext{}).experts));
  copy->load_state(state);
  CHECK(copy->route(logits, RouteContext{}).experts.equal(router->route(logits, RouteContext{}).experts));
  CHECK_THROWS_WITH(copy->load_state({1, 2, 3}), Catch::Contains("saved state"));
}
