// Defining properties of the newer routers and topk options: group-limited routing
// (DeepSeek-V2 arXiv 2405.04434) never leaves the token's best groups; expert choice
// (arXiv 2202.09368) gives every expert exactly C tokens, its top-C by probability;
// Sinkhorn (S-BASE, arXiv 2202.01169) is near-balanced on skewed logits in training and
// plain top-k at evaluation; jitter (Switch, arXiv 2101.03961) is training-only and
// seeded; top-k before softmax equals renormalised softmax top-k.
#include <ATen/ops/arange.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/topk.h>
#include "tests/torch/torch_catch.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "routers/router.h"
#include "tests/torch/torch_test_util.h"

using namespace moetb;

namespace {

RouterConfig cfg_of(const std::string& name, int64_t n_experts, int64_t top_k) {
  RouterConfig cfg;
  cfg.name = name;
  cfg.n_experts = n_experts;
  cfg.top_k = top_k;
  return cfg;
}

// Assignments per expert over a decision's non-empty slots: [E].
std::vector<int64_t> loads(const at::Tensor& experts, int64_t n_experts) {
  const at::Tensor ids = experts.reshape({-1});
  return moetb_test::to_longs(at::bincount(ids.masked_select(ids.ge(0)), {}, n_experts));
}

double violation(const std::vector<int64_t>& load) {
  double total = 0;
  for (int64_t c : load) total += static_cast<double>(c);
  return static_cast<double>(*std::max_element(load.begin(), load.end())) / total * static_cast<double>(load.size()) - 1.0;
}

}  // namespace

TEST_CASE("group-limited routing never selects outside the token's best groups", "[routers]") {
  const int64_t E = 12, n = 200;
  RouterConfig cfg = cfg_of("topk", E, 3);
  cfg.n_groups = 4;  // groups of 3
  cfg.topk_groups = 2;
  auto router = make_router(cfg);
  const at::Tensor logits = moetb_test::seeded_randn({n, E}, 8);
  const auto experts = moetb_test::to_longs(router->route(logits, RouteContext{}).experts);
  const auto probs = moetb_test::to_doubles(at::softmax(logits, 1));
  int64_t spans_two = 0;
  for (int64_t t = 0; t < n; ++t) {
    std::vector<std::pair<double, int64_t>> group_score;  // (best expert's prob, group)
    for (int64_t g = 0; g < 4; ++g) {
      double best = 0;
      for (int64_t j = 0; j < 3; ++j) best = std::max(best, probs[static_cast<std::size_t>(t * E + g * 3 + j)]);
      group_score.push_back({best, g});
    }
    std::sort(group_score.rbegin(), group_score.rend());
    const std::set<int64_t> allowed = {group_score[0].second, group_score[1].second};
    std::set<int64_t> used;
    for (int64_t j = 0; j < 3; ++j) {
      const int64_t e = experts[static_cast<std::size_t>(t * 3 + j)];
      INFO("token " << t << " expert " << e);
      REQUIRE(allowed.count(e / 3) == 1);
      used.insert(e / 3);
    }
    spans_two += used.size() == 2;
  }
  CHECK(spans_two > 0);  // the limit binds: plain top-3 of 12 would often use 3 groups
  cfg.topk_groups = 1;
  cfg.top_k = 4;  // one group of 3 cannot hold 4 experts
  CHECK_THROWS_WITH(make_router(cfg), Catch::Contains("topk_groups"));
}

TEST_CASE("expert choice: every expert receives exactly C tokens, its top-C", "[routers]") {
  const int64_t E = 8, n = 64;
  for (double factor : {0.0, 1.0, 0.3}) {
    RouterConfig cfg = cfg_of("expert_choice", E, 2);
    cfg.capacity_factor = factor;
    auto router = make_router(cfg);
    REQUIRE(router->n_slots() == E);
    // C = ceil(c * n / E): c = top_k (factor 0) -> 16; 1 -> 8; 0.3 -> ceil(2.4) = 3.
    const int64_t want = factor == 0.0 ? 16 : factor == 1.0 ? 8 : 3;
    for (uint64_t batch = 0; batch < 3; ++batch) {
      INFO("factor " << factor << " micro-batch " << batch);
      const at::Tensor logits = moetb_test::seeded_randn({n, E}, 40 + batch).add(at::arange(E, at::kFloat).mul(0.5));
      const RoutingDecision d = router->route(logits, RouteContext{});
      for (int64_t c : loads(d.experts, E)) CHECK(c == want);
      // Expert e's tokens are the top-C of probs[:, e]; weights are those probabilities.
      const at::Tensor probs = at::softmax(logits, 1);
      const auto top = moetb_test::to_longs(std::get<1>(at::topk(probs, want, 0)).t().contiguous());  // [E, C]
      const auto experts = moetb_test::to_longs(d.experts);
      const auto weights = moetb_test::to_doubles(d.weights);
      const auto p = moetb_test::to_doubles(probs);
      for (int64_t e = 0; e < E; ++e)
        for (int64_t i = 0; i < want; ++i) {
          const int64_t t = top[static_cast<std::size_t>(e * want + i)];
          bool found = false;
          for (int64_t s = 0; s < E; ++s)
            if (experts[static_cast<std::size_t>(t * E + s)] == e) {
              found = true;
              CHECK(weights[static_cast<std::size_t>(t * E + s)] == Approx(p[static_cast<std::size_t>(t * E + e)]));
            }
          CHECK(found);
        }
    }
  }
}

TEST_CASE("sinkhorn is near-balanced on skewed logits in training and plain top-k at evaluation", "[routers]") {
  // Tolerance: 4096 tokens on 8 experts, top-1: a balanced count is 512 +- 21 (binomial
  // sd), so 5 sd is a violation of 0.21; we allow 0.25. Plain top-k is far off.
  const int64_t E = 8, n = 4096;
  const at::Tensor skew = at::arange(E, at::kFloat).mul(-0.6);  // [E]: expert 0 favoured
  const at::Tensor logits = moetb_test::seeded_randn({n, E}, 77).add(skew);
  auto sinkhorn = make_router(cfg_of("sinkhorn", E, 1));
  auto topk = make_router(cfg_of("topk", E, 1));
  const RoutingDecision d = sinkhorn->route(logits, RouteContext{});
  const double v_sinkhorn = violation(loads(d.experts, E));
  const double v_topk = violation(loads(topk->route(logits, RouteContext{}).experts, E));
  INFO("violation sinkhorn " << v_sinkhorn << ", topk " << v_topk);
  CHECK(v_sinkhorn < 0.25);
  CHECK(v_topk > 1.0);
  // top-2 as well.
  CHECK(violation(loads(make_router(cfg_of("sinkhorn", E, 2))->route(logits, RouteContext{}).experts, E)) < 0.25);
  // Evaluation: plain top-k.
  RouteContext eval;
  eval.training = false;
  CHECK(sinkhorn->route(logits, eval).experts.equal(topk->route(logits, eval).experts));
}

TEST_CASE("jitter is seeded and training-only; top-k before softmax equals renormalised top-k", "[routers]") {
  const at::Tensor logits = moetb_test::seeded_randn({128, 8}, 3);
  RouterConfig cfg = cfg_of("topk", 8, 2);
  cfg.jitter = 0.3;
  cfg.seed = 5;
  auto a = make_router(cfg), b = make_router(cfg), plain = make_router(cfg_of("topk", 8, 2));
  const RoutingDecision da = a->route(logits, RouteContext{}), db = b->route(logits, RouteContext{});
  const RoutingDecision dp = plain->route(logits, RouteContext{});
  CHECK(da.experts.equal(db.experts));
  CHECK(moetb_test::max_abs_diff(da.weights, db.weights) == 0.0);
  CHECK(moetb_test::max_abs_diff(da.weights, dp.weights) > 1e-3);
  RouteContext eval;
  eval.training = false;
  CHECK(moetb_test::max_abs_diff(a->route(logits, eval).weights, dp.weights) == 0.0);

  RouterConfig before = cfg_of("topk", 8, 2);
  before.topk_before_softmax = true;
  before.renormalize = false;  // ignored: softmax over the selected logits sums to 1
  const RoutingDecision d1 = make_router(before)->route(logits, RouteContext{});
  CHECK(d1.experts.equal(dp.experts));
  CHECK(moetb_test::max_abs_diff(d1.weights, dp.weights) < 1e-6);
  RouterConfig raw = cfg_of("topk", 8, 2);
  raw.renormalize = false;
  CHECK(moetb_test::max_abs_diff(make_router(raw)->route(logits, RouteContext{}).weights, d1.weights) > 1e-2);
  before.score = Score::kSigmoid;
  CHECK_THROWS_WITH(make_router(before), Catch::Contains("topk_before_softmax"));
}
