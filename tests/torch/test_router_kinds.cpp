// Router-specific properties. Oracle (MoE Routing Testbed, arXiv 2604.07030): experts stay
// inside the token's domain group, top-k by logit within it, -1 padding past the group
// size, errors on bad domain ids. Hash (arXiv 2106.04426): a fixed function of the token
// id, independent of call order and balanced. Random: reproducible from the seed, uniform.
// Balance tolerances are derived (exact block bounds, or 5 binomial standard deviations).
#include <ATen/ops/arange.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include "tests/torch/torch_catch.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "oracle/reference_groups.h"
#include "routers/router.h"
#include "tests/torch/torch_test_util.h"

using namespace moetb;
using Catch::Matchers::Contains;

namespace {

RouterConfig make_cfg(const std::string& name, int64_t n_experts, int64_t top_k, uint64_t seed = 0) {
  RouterConfig cfg;
  cfg.name = name;
  cfg.n_experts = n_experts;
  cfg.top_k = top_k;
  cfg.seed = seed;
  return cfg;
}

RouteContext token_context(const at::Tensor& token_ids) {
  RouteContext ctx;
  ctx.token_ids = token_ids;
  return ctx;
}

// counts[slot][expert] over a decision's experts ([n_tokens, k]).
std::vector<std::vector<int64_t>> slot_counts(const at::Tensor& experts, int64_t n_experts) {
  const int64_t k = experts.size(1);
  std::vector<std::vector<int64_t>> counts(static_cast<std::size_t>(k),
                                           std::vector<int64_t>(static_cast<std::size_t>(n_experts)));
  const auto ids = moetb_test::to_longs(experts);
  for (std::size_t i = 0; i < ids.size(); ++i)
    ++counts[i % static_cast<std::size_t>(k)][static_cast<std::size_t>(ids[i])];
  return counts;
}

// 5 standard deviations of a Binomial(n, p) count.
double five_sigma(int64_t n, double p) { return 5.0 * std::sqrt(static_cast<double>(n) * p * (1 - p)); }

}  // namespace

TEST_CASE("oracle router picks the top logits inside the token's domain group", "[routers]") {
  RouterConfig cfg = make_cfg("oracle", 12, 2);
  cfg.domain_groups = make_reference_groups(12, 4, 1);  // 4 experts per domain, neighbours share one
  const int64_t n_tokens = 40;
  const at::Tensor logits = moetb_test::seeded_randn({n_tokens, 12}, 3, at::kDouble).requires_grad_();
  RouteContext ctx;
  ctx.domain_ids = moetb_test::seeded_randint(4, {n_tokens}, 4);
  const RoutingDecision d = make_router(cfg)->route(logits, ctx);
  const auto experts = moetb_test::to_longs(d.experts);
  const auto domains = moetb_test::to_longs(ctx.domain_ids);
  const auto x = moetb_test::to_doubles(logits);
  for (int64_t t = 0; t < n_tokens; ++t) {
    std::vector<int> group = cfg.domain_groups[static_cast<std::size_t>(domains[static_cast<std::size_t>(t)])];
    std::sort(group.begin(), group.end(), [&](int a, int b) {
      return x[static_cast<std::size_t>(t * 12 + a)] > x[static_cast<std::size_t>(t * 12 + b)];
    });
    INFO("token " << t);
    CHECK(experts[static_cast<std::size_t>(t * 2)] == group[0]);
    CHECK(experts[static_cast<std::size_t>(t * 2 + 1)] == group[1]);
  }
  // Gradients reach only the in-group logits.
  const at::Tensor c = moetb_test::seeded_randn({n_tokens, 2}, 5, at::kDouble);
  d.weights.mul(c).sum().backward();
  const auto grad = moetb_test::to_doubles(logits.grad());
  for (int64_t t = 0; t < n_tokens; ++t) {
    const auto& group = cfg.domain_groups[static_cast<std::size_t>(domains[static_cast<std::size_t>(t)])];
    for (int e = 0; e < 12; ++e)
      if (std::find(group.begin(), group.end(), e) == group.end())
        CHECK(grad[static_cast<std::size_t>(t * 12 + e)] == 0.0);
  }
  CHECK(logits.grad().abs().sum().item<double>() > 0);
}

TEST_CASE("oracle router pads past the group size with -1 and weight 0", "[routers]") {
  RouterConfig cfg = make_cfg("oracle", 6, 4);
  cfg.domain_groups = {{0, 1}, {2, 3, 4}, {5}};
  cfg.balance_coef = 0;
  cfg.z_loss_coef = 0;
  const int64_t n_tokens = 9;
  RouteContext ctx;
  ctx.domain_ids = at::arange(n_tokens, at::kLong).remainder(3);
  const RoutingDecision d = make_router(cfg)->route(moetb_test::seeded_randn({n_tokens, 6}, 8), ctx);
  const auto experts = moetb_test::to_longs(d.experts);
  const auto weights = moetb_test::to_doubles(d.weights);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const auto& group = cfg.domain_groups[static_cast<std::size_t>(t % 3)];
    const auto size = static_cast<int64_t>(group.size());
    std::set<int64_t> chosen;
    for (int64_t j = 0; j < 4; ++j) {
      const auto i = static_cast<std::size_t>(t * 4 + j);
      if (j < size) {
        chosen.insert(experts[i]);
        CHECK(weights[i] > 0);
      } else {
        CHECK(experts[i] == -1);
        CHECK(weights[i] == 0.0);
      }
    }
    CHECK(chosen == std::set<int64_t>(group.begin(), group.end()));
  }
  CHECK(d.aux_loss.item<double>() == 0.0);  // balance_coef = 0, z_loss_coef = 0
  CHECK(d.aux_terms.count("balance") == 1);
}

TEST_CASE("oracle router rejects bad domain ids and groups", "[routers]") {
  RouterConfig cfg = make_cfg("oracle", 8, 2);
  cfg.domain_groups = make_reference_groups(8, 2, 0);
  auto router = make_router(cfg);
  RouteContext ctx;
  ctx.domain_ids = at::arange(4, at::kLong);  // 2 and 3 are not domains
  CHECK_THROWS_WITH(router->route(at::zeros({4, 8}), ctx),
                    "oracle router: domain id 3 outside [0, 2) of domain_groups");
  ctx.domain_ids = at::arange(4, at::kLong).sub(1);  // -1
  CHECK_THROWS_WITH(router->route(at::zeros({4, 8}), ctx), Contains("domain id -1 outside"));

  cfg.domain_groups.clear();
  CHECK_THROWS_WITH(make_router(cfg), "oracle router needs domain_groups (one expert list per domain id)");
  cfg.domain_groups = {{0, 1}, {}};
  CHECK_THROWS_WITH(make_router(cfg), "oracle router: domain_groups[1] is empty");
  cfg.domain_groups = {{0, 8}};
  CHECK_THROWS_WITH(make_router(cfg), "oracle router: domain_groups[0] holds expert 8, outside [0, 8)");
  cfg.domain_groups = {{0, 1, 0}};
  CHECK_THROWS_WITH(make_router(cfg), "oracle router: domain_groups[0] lists expert 0 twice");
  cfg.domain_groups = {{0, 1}};
  cfg.score = Score::kSigmoid;
  CHECK_THROWS_WITH(make_router(cfg), Contains("router.score: the oracle router supports softmax only"));
}

TEST_CASE("hash router is a fixed function of the token id", "[routers]") {
  const int64_t n_experts = 8, k = 2;
  const at::Tensor ids = moetb_test::seeded_randint(300, {200}, 9);  // [200] with repeats
  const at::Tensor logits = at::zeros({200, n_experts});
  auto a = make_router(make_cfg("hash", n_experts, k, 5));
  auto b = make_router(make_cfg("hash", n_experts, k, 5));
  // b first builds its table for large ids: the table must not depend on growth order.
  b->route(at::zeros({1, n_experts}), token_context(at::full({1}, 100000, at::kLong)));
  const at::Tensor ea = a->route(logits, token_context(ids)).experts;
  CHECK(ea.equal(b->route(logits, token_context(ids)).experts));
  CHECK(ea.equal(a->route(logits, token_context(ids)).experts));  // no state between calls
  // Same token, same experts, wherever it sits.
  const auto id = moetb_test::to_longs(ids);
  const auto e = moetb_test::to_longs(ea);
  for (std::size_t s = 0; s < id.size(); ++s)
    for (std::size_t t = s + 1; t < id.size(); ++t)
      if (id[s] == id[t]) REQUIRE((e[2 * s] == e[2 * t] && e[2 * s + 1] == e[2 * t + 1]));
  // Another seed gives another table.
  CHECK_FALSE(ea.equal(make_router(make_cfg("hash", n_experts, k, 6))->route(logits, token_context(ids)).experts));
  CHECK_THROWS_WITH(a->route(at::zeros({1, n_experts}), token_context(ids.narrow(0, 0, 1).sub(1000))),
                    Contains("hash router: token id -"));
}

TEST_CASE("hash router balances a uniform token set", "[routers]") {
  const int64_t n_experts = 6, k = 3;
  auto router = make_router(make_cfg("hash", n_experts, k, 1));
  // Contiguous ids: every full block of E ids uses each expert once per slot, so each
  // expert's count per slot lies in [floor(V/E), ceil(V/E)].
  const int64_t vocab = 20 * n_experts + 4;
  const RoutingDecision d = router->route(at::zeros({vocab, n_experts}), token_context(at::arange(vocab, at::kLong)));
  for (const auto& slot : slot_counts(d.experts, n_experts))
    for (int64_t c : slot) {
      CHECK(c >= vocab / n_experts);
      CHECK(c <= (vocab + n_experts - 1) / n_experts);
    }
  // i.i.d. uniform ids over a vocab that is a multiple of E: each slot's expert is uniform,
  // so a count is Binomial(n, 1/E).
  const int64_t n = 6000;
  const at::Tensor ids = moetb_test::seeded_randint(600, {n}, 2);
  const RoutingDecision s = router->route(at::zeros({n, n_experts}), token_context(ids));
  const double mean = static_cast<double>(n) / static_cast<double>(n_experts);
  for (const auto& slot : slot_counts(s.experts, n_experts))
    for (int64_t c : slot)
      CHECK(std::abs(static_cast<double>(c) - mean) < five_sigma(n, 1.0 / static_cast<double>(n_experts)));
  CHECK(s.weights.eq(1.0 / 3.0).all().item<bool>());
}

TEST_CASE("random router is reproducible from its seed and near-uniform", "[routers]") {
  const int64_t n_experts = 8, k = 2, n = 8000;
  const at::Tensor logits = at::zeros({n, n_experts});
  auto a = make_router(make_cfg("random", n_experts, k, 3));
  auto b = make_router(make_cfg("random", n_experts, k, 3));
  const at::Tensor first = a->route(logits, RouteContext{}).experts;
  CHECK(first.equal(b->route(logits, RouteContext{}).experts));
  const at::Tensor second = a->route(logits, RouteContext{}).experts;
  CHECK_FALSE(second.equal(first));  // the stream advances
  CHECK(second.equal(b->route(logits, RouteContext{}).experts));
  CHECK_FALSE(first.equal(make_router(make_cfg("random", n_experts, k, 4))->route(logits, RouteContext{}).experts));
  // Each slot's expert is uniform: Binomial(n, 1/E) per (slot, expert); a token holds a
  // given expert with probability k/E: Binomial(n, k/E) per expert over both slots.
  const auto counts = slot_counts(first, n_experts);
  const double p = 1.0 / static_cast<double>(n_experts);
  for (int64_t e = 0; e < n_experts; ++e) {
    int64_t total = 0;
    for (const auto& slot : counts) {
      total += slot[static_cast<std::size_t>(e)];
      CHECK(std::abs(static_cast<double>(slot[static_cast<std::size_t>(e)]) - static_cast<double>(n) * p) <
            five_sigma(n, p));
    }
    CHECK(std::abs(static_cast<double>(total) - static_cast<double>(n * k) * p) <
          five_sigma(n, static_cast<double>(k) * p));
  }
}
