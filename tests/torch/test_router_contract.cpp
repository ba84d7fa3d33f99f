// The Router contract, checked for every name in router_names() (routers/router.h): shapes
// ([n_tokens, n_slots()]) and dtypes, ids in [0, E) or -1, distinct per token, weights >= 0
// summing to 1 where a token has experts (token choice; expert choice's are the token's
// probabilities, so at most 1), probs rows summing to 1, a finite scalar aux loss; and the
// one-line errors for bad logits, contexts and configs. MoE Routing Testbed, arXiv 2604.07030.
#include <ATen/ops/arange.h>
#include <ATen/ops/zeros.h>
#include "tests/torch/torch_catch.h"

#include <cmath>
#include <set>
#include <stdexcept>
#include <string>

#include "oracle/reference_groups.h"
#include "routers/router.h"
#include "tests/torch/torch_test_util.h"

using namespace moetb;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;

namespace {

constexpr int64_t kExperts = 8;
constexpr int kDomains = 3;

RouterConfig contract_config(const std::string& name, int64_t top_k) {
  RouterConfig cfg;
  cfg.name = name;
  cfg.n_experts = kExperts;
  cfg.top_k = top_k;
  cfg.z_loss_coef = 1e-3;
  cfg.seed = 7;
  cfg.domain_groups = make_reference_groups(kExperts, kDomains, 1);  // 3 experts per domain
  return cfg;
}

RouteContext full_context(int64_t n_tokens, uint64_t seed) {
  RouteContext ctx;
  ctx.token_ids = moetb_test::seeded_randint(500, {n_tokens}, seed);
  ctx.domain_ids = moetb_test::seeded_randint(kDomains, {n_tokens}, seed + 1);
  ctx.sequence_ids = at::arange(n_tokens, at::kLong).div(16, "floor");
  return ctx;
}

// The message of the std::invalid_argument thrown by f, which must be one line.
template <class F>
std::string invalid_argument_message(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<no std::invalid_argument thrown>";
}

}  // namespace

TEST_CASE("every registered router keeps the routing contract", "[routers]") {
  REQUIRE(router_names() ==
          std::vector<std::string>{"topk", "oracle", "hash", "random", "expert_choice", "sinkhorn", "balanced"});
  for (const std::string& name : router_names()) {
    for (int64_t top_k : {int64_t{1}, int64_t{2}, int64_t{4}}) {  // 4 > group size 3: oracle pads
      for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
        SECTION(name + " top_k " + std::to_string(top_k) + " " + c10::toString(dtype)) {
          const int64_t n_tokens = 64;
          auto router = make_router(contract_config(name, top_k));
          REQUIRE(router->name() == name);
          const bool expert_choice = name == "expert_choice";  // 0..E experts per token
          const int64_t slots = router->n_slots();
          REQUIRE(slots == (expert_choice ? kExperts : top_k));
          const at::Tensor logits = moetb_test::seeded_randn({n_tokens, kExperts}, 11, dtype).requires_grad_();
          const RoutingDecision d = router->route(logits, full_context(n_tokens, 3));

          REQUIRE(d.experts.sizes() == at::IntArrayRef({n_tokens, slots}));
          REQUIRE(d.experts.scalar_type() == at::kLong);
          REQUIRE(d.weights.sizes() == at::IntArrayRef({n_tokens, slots}));
          REQUIRE(d.weights.scalar_type() == dtype);
          REQUIRE(d.probs.sizes() == at::IntArrayRef({n_tokens, kExperts}));
          REQUIRE(d.aux_loss.dim() == 0);
          REQUIRE(std::isfinite(d.aux_loss.item<double>()));
          const bool learns = name == "topk" || name == "oracle" || name == "expert_choice" || name == "sinkhorn" || name == "balanced";
          CHECK(d.weights.requires_grad() == learns);

          const auto experts = moetb_test::to_longs(d.experts);
          const auto weights = moetb_test::to_doubles(d.weights);
          const auto probs = moetb_test::to_doubles(d.probs);
          const double tol = dtype == at::kFloat ? 1e-5 : 1e-12;
          for (int64_t t = 0; t < n_tokens; ++t) {
            std::set<int64_t> seen;
            double weight_sum = 0;
            for (int64_t j = 0; j < slots; ++j) {
              const int64_t e = experts[static_cast<std::size_t>(t * slots + j)];
              const double w = weights[static_cast<std::size_t>(t * slots + j)];
              INFO(name << " token " << t << " slot " << j << " expert " << e << " weight " << w);
              REQUIRE(e >= -1);
              REQUIRE(e < kExperts);
              REQUIRE(w >= 0.0);
              if (e < 0) {
                REQUIRE(w == 0.0);
                continue;
              }
              REQUIRE(seen.insert(e).second);  // distinct
              weight_sum += w;
            }
            if (expert_choice) {
              CHECK(weight_sum <= 1.0 + tol);
            } else if (learns && top_k == 1) {  // Switch: the weight is the probability itself
              REQUIRE(seen.size() == 1);
              CHECK(std::abs(weight_sum - probs[static_cast<std::size_t>(t * kExperts + *seen.begin())]) < tol);
            } else {
              REQUIRE_FALSE(seen.empty());
              CHECK(std::abs(weight_sum - 1.0) < tol);
            }
            double prob_sum = 0;
            for (int64_t e = 0; e < kExperts; ++e) {
              REQUIRE(probs[static_cast<std::size_t>(t * kExperts + e)] >= 0.0);
              prob_sum += probs[static_cast<std::size_t>(t * kExperts + e)];
            }
            CHECK(std::abs(prob_sum - 1.0) < tol);
          }
          if (learns) {  // the aux loss and the weights reach the logits
            d.weights.sum().add(d.aux_loss).backward();
            REQUIRE(logits.grad().defined());
            CHECK(std::isfinite(logits.grad().abs().sum().item<double>()));
          } else {
            CHECK(d.aux_loss.item<double>() == 0.0);
            CHECK(d.aux_terms.empty());
          }
        }
      }
    }
  }
}

TEST_CASE("every learned router gets a task gradient at top-1 (the weight is not the constant 1)", "[routers]") {
  // Renormalising one weight gives exactly 1: d(loss)/d(logits) would be 0 apart from the aux
  // losses (issue 18). Switch Transformer keeps the probability as the weight at top-1.
  std::vector<std::string> learned;
  for (const std::string& name : router_names()) {
    for (Score score : {Score::kSoftmax, Score::kSigmoid}) {
      RouterConfig cfg = contract_config(name, 1);
      cfg.score = score;
      cfg.balance_coef = 0;  // only the task path counts
      cfg.z_loss_coef = 0;
      if (score == Score::kSigmoid && name != "topk") continue;  // sigmoid is a topk option
      INFO(name << " " << enum_name(score));
      auto router = make_router(cfg);
      const int64_t n_tokens = 64;
      const at::Tensor logits = moetb_test::seeded_randn({n_tokens, kExperts}, 5, at::kDouble).requires_grad_();
      const RoutingDecision d = router->route(logits, full_context(n_tokens, 9));
      if (!d.weights.requires_grad()) continue;  // hash, random: nothing to learn
      learned.push_back(name + "/" + enum_name(score));
      // A stand-in task loss: each token's expert output times a random coefficient.
      const at::Tensor c = moetb_test::seeded_randn({n_tokens, router->n_slots()}, 6, at::kDouble);
      d.weights.mul(c).sum().backward();
      REQUIRE(logits.grad().defined());
      const double norm = logits.grad().norm().item<double>();
      CHECK(norm > 0.1);  // 7.5e-16 with renormalised top-1 weights
    }
  }
  CHECK(learned == std::vector<std::string>{"topk/softmax", "topk/sigmoid", "oracle/softmax", "expert_choice/softmax",
                                            "sinkhorn/softmax", "balanced/softmax"});
  RouterConfig cfg = contract_config("topk", 1);
  cfg.topk_before_softmax = true;  // the softmax over one logit is 1: refused
  CHECK_THAT(invalid_argument_message([&] { make_router(cfg); }), Contains("router.topk_before_softmax: at moe.top_k = 1"));
}

TEST_CASE("every router accepts an empty micro-batch", "[routers]") {
  for (const std::string& name : router_names()) {
    auto router = make_router(contract_config(name, 2));
    const RoutingDecision d = router->route(at::zeros({0, kExperts}), full_context(0, 1));
    CHECK(d.experts.sizes() == at::IntArrayRef({0, router->n_slots()}));
    CHECK(d.probs.sizes() == at::IntArrayRef({0, kExperts}));
    CHECK(d.aux_loss.item<double>() == 0.0);
  }
}

TEST_CASE("routers reject bad logits with one clear line", "[routers]") {
  for (const std::string& name : router_names()) {
    auto router = make_router(contract_config(name, 2));
    const RouteContext ctx = full_context(4, 1);
    const std::string shape_msg = "router '" + name + "': logits must be [n_tokens, 8], got ";
    CHECK_THAT(invalid_argument_message([&] { router->route(at::zeros({4}), ctx); }), Equals(shape_msg + "[4]"));
    CHECK_THAT(invalid_argument_message([&] { router->route(at::zeros({4, 9}), ctx); }), Equals(shape_msg + "[4, 9]"));
    CHECK_THAT(invalid_argument_message([&] { router->route(at::zeros({1, 4, 8}), ctx); }),
               Equals(shape_msg + "[1, 4, 8]"));
    CHECK_THAT(invalid_argument_message([&] { router->route(at::zeros({4, 8}, at::kLong), ctx); }),
               Equals("router '" + name + "': logits must be float32 or float64, got Long"));
    CHECK_THAT(invalid_argument_message([&] { router->route(at::Tensor(), ctx); }), Contains("undefined"));
    // A defined context field must match the logits, whether or not this router reads it.
    RouteContext short_ids = ctx;
    short_ids.token_ids = at::zeros({3}, at::kLong);
    CHECK_THAT(invalid_argument_message([&] { router->route(at::zeros({4, 8}), short_ids); }),
               Contains("ctx.token_ids must be [4] int64, got [3]"));
    RouteContext float_domains = ctx;
    float_domains.domain_ids = at::zeros({4});
    CHECK_THAT(invalid_argument_message([&] { router->route(at::zeros({4, 8}), float_domains); }),
               Contains("ctx.domain_ids must be [4] int64, got [4] Float"));
  }
}

TEST_CASE("routers name the missing context field", "[routers]") {
  const at::Tensor logits = at::zeros({4, kExperts});
  auto hash = make_router(contract_config("hash", 2));
  CHECK_THAT(invalid_argument_message([&] { hash->route(logits, RouteContext{}); }),
             Equals("router 'hash' needs ctx.token_ids ([n_tokens] int64)"));
  auto oracle = make_router(contract_config("oracle", 2));
  CHECK_THAT(invalid_argument_message([&] { oracle->route(logits, RouteContext{}); }),
             Equals("router 'oracle' needs ctx.domain_ids ([n_tokens] int64)"));
  // The learned and random routers need nothing.
  CHECK_NOTHROW(make_router(contract_config("topk", 2))->route(logits, RouteContext{}));
  CHECK_NOTHROW(make_router(contract_config("random", 2))->route(logits, RouteContext{}));
}

TEST_CASE("make_router rejects unknown names and bad configs", "[routers]") {
  RouterConfig cfg = contract_config("nope", 2);
  CHECK_THAT(invalid_argument_message([&] { make_router(cfg); }),
             Equals("unknown router 'nope' (known: topk, oracle, hash, random, expert_choice, sinkhorn, balanced)"));
  cfg = contract_config("topk", 0);
  CHECK_THAT(invalid_argument_message([&] { make_router(cfg); }),
             Equals("moe.top_k: must be in [1, n_experts=8], got 0"));
  cfg = contract_config("topk", 9);
  CHECK_THAT(invalid_argument_message([&] { make_router(cfg); }), Contains("got 9"));
  cfg = contract_config("topk", 2);
  cfg.n_experts = 0;
  CHECK_THAT(invalid_argument_message([&] { make_router(cfg); }), Equals("moe.n_experts: must be >= 1, got 0"));
  cfg = contract_config("topk", 2);
  CHECK_THAT(invalid_argument_message([&] { parse_enum<Score>("relu"); }), Equals("'relu' is not one of: softmax, sigmoid"));
  CHECK(parse_enum<Score>("sigmoid") == Score::kSigmoid);
  CHECK(enum_name(DropPolicy::kPosition) == "position");
  cfg = contract_config("topk", 2);
  cfg.balance_coef = -1;
  CHECK_THAT(invalid_argument_message([&] { make_router(cfg); }), Equals("router.balance_coef: must be finite and >= 0, got -1"));
  cfg = contract_config("topk", 2);
  cfg.z_loss_coef = std::nan("");
  CHECK_THAT(invalid_argument_message([&] { make_router(cfg); }), Contains("router.z_loss_coef: must be finite and >= 0"));
  cfg = contract_config("topk", 2);
  CHECK_THAT(invalid_argument_message([&] { parse_enum<BalanceScope>("batch"); }),
             Equals("'batch' is not one of: sequence, micro_batch, global_batch"));
  cfg = contract_config("topk", 2);
  cfg.n_groups = 3;
  CHECK_THAT(invalid_argument_message([&] { make_router(cfg); }), Contains("router.n_groups: must be >= 1 and divide n_experts=8"));
  cfg = contract_config("topk", 2);
  cfg.capacity_factor = -0.5;
  CHECK_THAT(invalid_argument_message([&] { make_router(cfg); }), Contains("router.capacity_factor: must be finite and >= 0"));
  cfg = contract_config("topk", 2);
  cfg.jitter = 1.0;
  CHECK_THAT(invalid_argument_message([&] { make_router(cfg); }), Equals("router.jitter: must be in [0, 1), got 1"));
}
