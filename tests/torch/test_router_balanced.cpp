// Balanced assignment (BASE layers, arXiv 2103.16716): the exact solver of
// routers/balanced_assignment.h against brute force on small cases (optimal total, exact
// capacities, the price certificate), its balance at realistic sizes, and the `balanced`
// router: exact shares in training, plain top-k at evaluation.
#include <ATen/ops/arange.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/topk.h>
#include "tests/torch/torch_catch.h"

#include <chrono>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "routers/balanced_assignment.h"
#include "routers/router.h"
#include "tests/torch/torch_test_util.h"

using namespace moetb;

namespace {

// Best total over every assignment of k distinct experts per token with exact capacities.
double brute_force(const std::vector<double>& a, int64_t n, int64_t E, int64_t k, const std::vector<int64_t>& cap) {
  std::vector<std::vector<int64_t>> subsets;  // k-subsets of E as bitmasks' members
  for (int64_t mask = 0; mask < (int64_t{1} << E); ++mask) {
    if (__builtin_popcountll(static_cast<unsigned long long>(mask)) != k) continue;
    std::vector<int64_t> s;
    for (int64_t e = 0; e < E; ++e)
      if (mask >> e & 1) s.push_back(e);
    subsets.push_back(s);
  }
  double best = -1e300;
  std::vector<int64_t> load(static_cast<std::size_t>(E), 0);
  std::function<void(int64_t, double)> go = [&](int64_t t, double total) {
    if (t == n) {
      if (load == cap) best = std::max(best, total);
      return;
    }
    for (const auto& s : subsets) {
      bool ok = true;
      for (int64_t e : s) ok = ok && load[static_cast<std::size_t>(e)] < cap[static_cast<std::size_t>(e)];
      if (!ok) continue;
      double add = 0;
      for (int64_t e : s) {
        ++load[static_cast<std::size_t>(e)];
        add += a[static_cast<std::size_t>(t * E + e)];
      }
      go(t + 1, total + add);
      for (int64_t e : s) --load[static_cast<std::size_t>(e)];
    }
  };
  go(0, 0.0);
  return best;
}

// Loads and the certificate: every token's experts are a top-k of score - price.
void check_solution(const BalancedAssignment& s, const std::vector<double>& a, int64_t n, int64_t E, int64_t k,
                    const std::vector<int64_t>& cap) {
  std::vector<int64_t> load(static_cast<std::size_t>(E), 0);
  for (int64_t t = 0; t < n; ++t) {
    std::vector<char> mine(static_cast<std::size_t>(E), 0);
    double worst_in = 1e300, best_out = -1e300;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = s.experts[static_cast<std::size_t>(t * k + j)];
      REQUIRE(e >= 0);
      REQUIRE(e < E);
      REQUIRE(mine[static_cast<std::size_t>(e)] == 0);  // distinct
      mine[static_cast<std::size_t>(e)] = 1;
      ++load[static_cast<std::size_t>(e)];
    }
    for (int64_t e = 0; e < E; ++e) {
      const double v = a[static_cast<std::size_t>(t * E + e)] - s.prices[static_cast<std::size_t>(e)];
      if (mine[static_cast<std::size_t>(e)]) worst_in = std::min(worst_in, v);
      else best_out = std::max(best_out, v);
    }
    CHECK(worst_in >= best_out - 1e-9);
  }
  CHECK(load == cap);  // exact shares
}

std::vector<double> random_scores(int64_t n, int64_t E, uint32_t seed, double scale = 1.0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<double> a(static_cast<std::size_t>(n * E));
  for (double& x : a) x = normal(gen);
  return a;
}

}  // namespace

TEST_CASE("balanced assignment is optimal against brute force on small cases", "[routers]") {
  struct Case {
    int64_t n, E, k;
  };
  int cases = 0;
  for (const Case& c : {Case{6, 3, 1}, Case{7, 3, 1}, Case{5, 4, 2}, Case{4, 4, 2}, Case{5, 3, 2}, Case{6, 4, 3}, Case{3, 5, 2}}) {
    for (uint32_t seed = 0; seed < 12; ++seed) {
      INFO("n " << c.n << " E " << c.E << " k " << c.k << " seed " << seed);
      // Integer scores on some seeds: ties everywhere.
      std::vector<double> a = random_scores(c.n, c.E, seed, 2.0);
      if (seed % 3 == 0)
        for (double& x : a) x = std::round(x);
      const std::vector<int64_t> cap = balanced_capacities(c.n, c.k, c.E);
      const BalancedAssignment s = solve_balanced_assignment(a.data(), c.n, c.E, c.k, cap);
      CHECK(s.total == Approx(brute_force(a, c.n, c.E, c.k, cap)).margin(1e-9));
      check_solution(s, a, c.n, c.E, c.k, cap);
      ++cases;
    }
  }
  CHECK(cases == 84);
  CHECK(balanced_capacities(10, 1, 4) == std::vector<int64_t>{3, 3, 2, 2});
  CHECK_THROWS_WITH(solve_balanced_assignment(nullptr, 2, 2, 1, {2, 1}), "balanced assignment: capacities sum to 3, want n*k=2");
}

TEST_CASE("balanced assignment: exact shares and the certificate at training sizes, skewed scores, in well under a second", "[routers]") {
  for (const auto& [n, E, k] : {std::tuple<int64_t, int64_t, int64_t>{2048, 8, 2}, {1024, 64, 8}, {1000, 16, 1}}) {
    INFO("n " << n << " E " << E << " k " << k);
    std::vector<double> a = random_scores(n, E, 5, 3.0);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t e = 0; e < E; ++e) a[static_cast<std::size_t>(t * E + e)] -= 0.5 * static_cast<double>(e);  // skew to expert 0
    const auto cap = balanced_capacities(n, k, E);
    const auto t0 = std::chrono::steady_clock::now();
    const BalancedAssignment s = solve_balanced_assignment(a.data(), n, E, k, cap);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO(seconds << " s");
    check_solution(s, a, n, E, k, cap);
    CHECK(seconds < 2.0);
  }
}

TEST_CASE("the balanced router: exact shares in training, plain top-k at evaluation", "[routers]") {
  RouterConfig cfg;
  cfg.name = "balanced";
  cfg.n_experts = 8;
  cfg.top_k = 2;
  auto router = make_router(cfg);
  const at::Tensor logits = moetb_test::seeded_randn({300, 8}, 12).add(at::arange(8, at::kFloat).mul(-0.5));
  const RoutingDecision d = router->route(logits, RouteContext{});
  const auto load = moetb_test::to_longs(at::bincount(d.experts.reshape({-1}), {}, 8));
  CHECK(load == std::vector<int64_t>{75, 75, 75, 75, 75, 75, 75, 75});  // 300 * 2 / 8
  // The same as the solver on the logits.
  const auto flat = moetb_test::to_doubles(logits.to(at::kDouble));
  const BalancedAssignment s = solve_balanced_assignment(flat.data(), 300, 8, 2, balanced_capacities(300, 2, 8));
  CHECK(moetb_test::to_longs(d.experts) == s.experts);
  RouteContext eval;
  eval.training = false;
  CHECK(router->route(logits, eval).experts.equal(std::get<1>(at::topk(at::softmax(logits, 1), 2, 1))));
}
