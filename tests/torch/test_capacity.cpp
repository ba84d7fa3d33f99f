// Expert capacity with token dropping in the MoE layer (routers/capacity.h; Switch
// Transformer arXiv 2101.03961): no expert exceeds C = ceil(cf * n * k / E); dropless
// (cf 0) drops nothing; "probability" keeps the highest weights and "position" the
// earliest tokens of each expert; the dropped fraction is reported. (That sorted dispatch
// equals the dense reference with drops is in test_moe_layer.cpp.)
#include <ATen/Context.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/mm.h>
#include "tests/torch/torch_catch.h"

#include <string>
#include <vector>

#include "models/moe_layer.h"
#include "routers/capacity.h"
#include "tests/torch/torch_test_util.h"

using namespace moetb;

namespace {

constexpr int64_t kTokens = 96, kE = 6, kK = 2;

MoEConfig capacity_config(double factor, DropPolicy policy) {
  MoEConfig cfg;
  cfg.d_model = 16;
  cfg.d_ff = 8;
  cfg.n_experts = kE;
  cfg.top_k = kK;
  cfg.router.capacity_factor = factor;
  cfg.router.drop_policy = policy;
  return cfg;
}

}  // namespace

TEST_CASE("capacity: no expert exceeds C, the policy decides who stays, dropless drops nothing", "[models]") {
  CHECK(expert_capacity(kTokens, kK, kE, 0.0) == -1);
  CHECK(expert_capacity(kTokens, kK, kE, 1.0) == 32);
  CHECK(expert_capacity(kTokens, kK, kE, 0.7) == 23);  // ceil(22.4)
  const at::Tensor x = moetb_test::seeded_randn({kTokens, 16}, 9);
  for (const DropPolicy policy : {DropPolicy::kProbability, DropPolicy::kPosition}) {
    for (double factor : {0.0, 0.5, 1.0}) {
      INFO(enum_name(policy) << " factor " << factor);
      at::manual_seed(4);
      MoEFeedForward layer(capacity_config(factor, policy));
      // The router's own decision, before the capacity limit (topk is stateless in what it picks).
      const RoutingDecision raw = layer->router().route(at::mm(x, layer->router_weight.t()), RouteContext{});
      const RoutingDecision d = layer->route(x, RouteContext{});
      const auto before = moetb_test::to_longs(raw.experts), after = moetb_test::to_longs(d.experts);
      const auto w = moetb_test::to_doubles(raw.weights), w_after = moetb_test::to_doubles(d.weights);
      const int64_t cap = factor == 0.0 ? kTokens : expert_capacity(kTokens, kK, kE, factor);
      std::vector<int64_t> load(kE, 0);
      int64_t dropped = 0;
      for (std::size_t i = 0; i < after.size(); ++i) {
        if (after[i] >= 0) {
          REQUIRE(after[i] == before[i]);  // kept slots are untouched
          CHECK(w_after[i] == w[i]);
          ++load[static_cast<std::size_t>(after[i])];
        } else {
          CHECK(w_after[i] == 0.0);
          ++dropped;
        }
      }
      for (int64_t c : load) CHECK(c <= cap);
      CHECK(d.aux_terms.at("dropped_fraction") == Approx(static_cast<double>(dropped) / static_cast<double>(after.size())));
      if (factor == 0.0) CHECK(dropped == 0);
      if (factor == 0.5) CHECK(dropped >= kTokens * kK / 2);  // C = 16: at most 96 of 192 kept
      // Who stays: for each expert, every kept slot beats every dropped one under the policy.
      for (int64_t e = 0; e < kE; ++e) {
        double min_kept_w = 2, max_dropped_w = -1;
        int64_t last_kept = -1, first_dropped = kTokens;
        for (std::size_t i = 0; i < before.size(); ++i) {
          if (before[i] != e) continue;
          const auto t = static_cast<int64_t>(i) / kK;
          if (after[i] == e) {
            min_kept_w = std::min(min_kept_w, w[i]);
            last_kept = std::max(last_kept, t);
          } else {
            max_dropped_w = std::max(max_dropped_w, w[i]);
            first_dropped = std::min(first_dropped, t);
          }
        }
        if (policy == DropPolicy::kProbability) CHECK(min_kept_w >= max_dropped_w);
        else CHECK(last_kept < first_dropped);
      }
    }
  }
  CHECK_THROWS_WITH(parse_enum<DropPolicy>("random"), "'random' is not one of: probability, position");
}

TEST_CASE("capacity at top-1: the probability policy keeps the most probable tokens, not the first ones", "[models]") {
  // With renormalised top-1 weights (all exactly 1) 'probability' silently became 'position'.
  const at::Tensor x = moetb_test::seeded_randn({kTokens, 16}, 10);
  std::vector<std::vector<int64_t>> kept;
  for (const DropPolicy policy : {DropPolicy::kProbability, DropPolicy::kPosition}) {
    MoEConfig cfg = capacity_config(0.5, policy);
    cfg.top_k = 1;
    at::manual_seed(4);
    MoEFeedForward layer(cfg);
    const RoutingDecision raw = layer->router().route(at::mm(x, layer->router_weight.t()), RouteContext{});
    const RoutingDecision d = layer->route(x, RouteContext{});
    const auto before = moetb_test::to_longs(raw.experts), after = moetb_test::to_longs(d.experts);
    const auto w = moetb_test::to_doubles(raw.weights);
    kept.push_back(after);
    for (int64_t e = 0; e < kE; ++e) {
      double min_kept = 2, max_dropped = -1;
      for (std::size_t t = 0; t < before.size(); ++t) {
        if (before[t] != e) continue;
        (after[t] == e ? min_kept : max_dropped) = after[t] == e ? std::min(min_kept, w[t]) : std::max(max_dropped, w[t]);
      }
      if (policy == DropPolicy::kProbability) CHECK(min_kept >= max_dropped);
    }
  }
  CHECK(kept[0] != kept[1]);
}
