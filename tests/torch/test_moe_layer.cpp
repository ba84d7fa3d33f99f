// The MoE feed-forward layer (models/moe_layer.h): sort-based dispatch must equal the dense
// reference (every expert on every token, masked and weighted) in the forward output and
// in the gradients of x, every expert weight and the router weight; float64 and float32;
// top_k 1 and 2, shared experts, an oracle router with -1 slots and idle experts, a hash
// router, capacity dropping (both policies), expert choice (E slots) and Sinkhorn. Also
// parameter shapes, an empty batch and the input errors.
#include <ATen/Context.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/zeros.h>
#include "tests/torch/torch_catch.h"

#include <map>
#include <string>

#include "models/moe_layer.h"
#include "oracle/reference_groups.h"
#include "tests/torch/torch_test_util.h"

using namespace moetb;
using Catch::Matchers::Contains;

namespace {

constexpr int64_t kTokens = 40;

MoEConfig small_config(const std::string& router, int64_t top_k, int64_t n_shared = 0) {
  MoEConfig cfg;
  cfg.d_model = 16;
  cfg.d_ff = 24;
  cfg.n_experts = 6;
  cfg.top_k = top_k;
  cfg.n_shared_experts = n_shared;
  cfg.router.name = router;
  cfg.router.z_loss_coef = 1e-3;
  cfg.router.domain_groups = make_reference_groups(6, 3, 0);  // 2 experts per domain
  return cfg;
}

struct Pass {
  at::Tensor y;                              // [n_tokens, d_model]
  at::Tensor experts;                        // [n_tokens, k]
  std::map<std::string, at::Tensor> grads;   // "x" and every parameter; undefined if none
};

// loss = sum(y * c) + aux_loss, backward, and collect (then clear) the gradients.
Pass run_pass(bool sorted, MoEFeedForward& layer, const at::Tensor& x, const at::Tensor& c, const RouteContext& ctx) {
  const MoEOutput out = sorted ? layer->forward(x, ctx) : moe_forward_dense_reference(*layer, x, ctx);
  out.y.mul(c).sum().add(out.decision.aux_loss).backward();
  Pass p{out.y.detach(), out.decision.experts, {}};
  p.grads["x"] = x.grad().defined() ? x.grad().clone() : at::Tensor();
  x.mutable_grad().reset();
  for (auto& item : layer->named_parameters()) {
    p.grads[item.key()] = item.value().grad().defined() ? item.value().grad().clone() : at::Tensor();
    item.value().mutable_grad().reset();
  }
  return p;
}

// Builds a layer, runs the sorted dispatch and the dense reference, compares everything.
void check_against_dense(const MoEConfig& cfg, at::ScalarType dtype, const RouteContext& ctx,
                         bool router_learns = true) {
  at::manual_seed(17);
  MoEFeedForward layer(cfg);
  layer->to(dtype);
  const at::Tensor x = moetb_test::seeded_randn({kTokens, cfg.d_model}, 1, dtype).requires_grad_();
  const at::Tensor c = moetb_test::seeded_randn({kTokens, cfg.d_model}, 2, dtype);
  const Pass fast = run_pass(true, layer, x, c, ctx);
  const Pass dense = run_pass(false, layer, x, c, ctx);
  const double tol = dtype == at::kDouble ? 1e-10 : 2e-5;

  REQUIRE(fast.experts.equal(dense.experts));
  CHECK(moetb_test::max_abs_diff(fast.y, dense.y) < tol);
  CHECK(fast.y.abs().max().item<double>() > 0.01);  // not trivially zero
  for (const auto& [name, g] : dense.grads) {
    INFO("gradient of " << name);
    const at::Tensor& f = fast.grads.at(name);
    const bool expect = name != "router_weight" || router_learns;
    REQUIRE(g.defined() == expect);
    REQUIRE(f.defined() == expect);
    if (!expect) continue;
    CHECK(moetb_test::max_abs_diff(f, g) < tol);
    CHECK(g.abs().max().item<double>() > 1e-4);
  }
}

RouteContext domain_context(int64_t n_domains_used) {
  RouteContext ctx;
  ctx.domain_ids = moetb_test::seeded_randint(n_domains_used, {kTokens}, 3);
  ctx.token_ids = moetb_test::seeded_randint(100, {kTokens}, 4);
  return ctx;
}

}  // namespace

TEST_CASE("sorted dispatch equals the dense reference, forward and backward", "[models]") {
  for (at::ScalarType dtype : {at::kDouble, at::kFloat}) {
    const std::string type = c10::toString(dtype);
    SECTION("topk k=1 " + type) { check_against_dense(small_config("topk", 1), dtype, RouteContext{}); }
    SECTION("topk k=2 " + type) { check_against_dense(small_config("topk", 2), dtype, RouteContext{}); }
    SECTION("topk k=2 sigmoid " + type) {
      MoEConfig cfg = small_config("topk", 2);
      cfg.router.score = Score::kSigmoid;
      check_against_dense(cfg, dtype, RouteContext{});
    }
    SECTION("topk k=2 + 2 shared experts " + type) {
      check_against_dense(small_config("topk", 2, 2), dtype, RouteContext{});
    }
    SECTION("oracle k=3 over groups of 2: -1 slots " + type) {
      check_against_dense(small_config("oracle", 3), dtype, domain_context(3));
    }
    SECTION("oracle, two domains only: idle experts " + type) {
      check_against_dense(small_config("oracle", 2), dtype, domain_context(2));
    }
    SECTION("hash k=2: no router gradient " + type) {
      check_against_dense(small_config("hash", 2), dtype, domain_context(3), /*router_learns=*/false);
    }
    for (const DropPolicy policy : {DropPolicy::kProbability, DropPolicy::kPosition}) {
      SECTION("topk k=2, capacity factor 0.5, drop by " + enum_name(policy) + " " + type) {
        MoEConfig cfg = small_config("topk", 2);
        cfg.router.capacity_factor = 0.5;  // C = ceil(0.5 * 40 * 2 / 6) = 7: about half is dropped
        cfg.router.drop_policy = policy;
        check_against_dense(cfg, dtype, RouteContext{});
      }
    }
    SECTION("expert_choice: E slots with -1 padding " + type) {
      check_against_dense(small_config("expert_choice", 2), dtype, RouteContext{});
    }
    SECTION("sinkhorn k=2 " + type) { check_against_dense(small_config("sinkhorn", 2), dtype, RouteContext{}); }
  }
}

TEST_CASE("idle experts get zero gradient", "[models]") {
  at::manual_seed(3);
  MoEFeedForward layer(small_config("oracle", 2));
  const at::Tensor x = moetb_test::seeded_randn({kTokens, 16}, 1);
  layer->forward(x, domain_context(2)).y.sum().backward();  // domains 0, 1: experts 0-3
  const at::Tensor g = layer->w_gate.grad();               // [E, d_model, d_ff]
  CHECK(g.narrow(0, 4, 2).abs().max().item<double>() == 0.0);
  CHECK(g.narrow(0, 0, 4).abs().amax({1, 2}).min().item<double>() > 0.0);
}

TEST_CASE("MoE layer registers stacked parameters", "[models]") {
  MoEFeedForward layer(small_config("topk", 2, 2));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& item : layer->named_parameters()) shapes[item.key()] = item.value().sizes().vec();
  const std::map<std::string, std::vector<int64_t>> want = {
      {"router_weight", {6, 16}}, {"w_gate", {6, 16, 24}},   {"w_up", {6, 16, 24}},    {"w_down", {6, 24, 16}},
      {"shared_gate", {16, 48}},  {"shared_up", {16, 48}}, {"shared_down", {48, 16}}};
  CHECK(shapes == want);
  CHECK(MoEFeedForward(small_config("topk", 2))->named_parameters().size() == 4);
  // The layer's n_experts and top_k win over the router config's.
  CHECK(layer->router().config().n_experts == 6);
  CHECK(layer->router().config().top_k == 2);
}

TEST_CASE("MoE layer handles an empty batch", "[models]") {
  MoEFeedForward layer(small_config("topk", 2, 1));
  const MoEOutput out = layer->forward(at::zeros({0, 16}), RouteContext{});
  CHECK(out.y.sizes() == at::IntArrayRef({0, 16}));
}

TEST_CASE("MoE layer rejects bad inputs and configs", "[models]") {
  MoEFeedForward layer(small_config("topk", 2));
  CHECK_THROWS_WITH(layer->forward(at::zeros({4, 8}), RouteContext{}), "MoE input must be [n_tokens, 16], got [4, 8]");
  CHECK_THROWS_WITH(layer->forward(at::zeros({4}), RouteContext{}), "MoE input must be [n_tokens, 16], got [4]");
  CHECK_THROWS_WITH(layer->forward(at::zeros({4, 16}, at::kDouble), RouteContext{}),
                    "MoE input dtype Double differs from the parameters' Float");
  MoEConfig cfg = small_config("topk", 2);
  cfg.d_model = 0;
  CHECK_THROWS_WITH(MoEFeedForward(cfg), "MoE d_model must be >= 1, got 0");
  cfg = small_config("topk", 7);
  CHECK_THROWS_WITH(MoEFeedForward(cfg), "moe.top_k: must be in [1, n_experts=6], got 7");
  cfg = small_config("nope", 2);
  CHECK_THROWS_WITH(MoEFeedForward(cfg), Contains("unknown router 'nope'"));
  cfg = small_config("topk", 2, -1);
  CHECK_THROWS_WITH(MoEFeedForward(cfg), "MoE n_shared_experts must be >= 0, got -1");
  // The oracle needs domain ids; the layer passes the router's error through.
  MoEFeedForward oracle(small_config("oracle", 2));
  CHECK_THROWS_WITH(oracle->forward(at::zeros({4, 16}), RouteContext{}), Contains("needs ctx.domain_ids"));
}
