// Scope for every balancing method (issue 15 item 4; MoE Routing Testbed arXiv 2604.07030):
// the aux-loss-free bias (DeepSeek-V3 arXiv 2412.19437) from per-sequence, per-micro-batch
// or global-batch counts; Sinkhorn (S-BASE arXiv 2202.01169) and balanced assignment (BASE
// arXiv 2103.16716) solved per sequence or over the micro-batch; global_batch for those two
// only at train.accum_steps = 1. (The Switch-loss scopes are in test_router_balance.cpp.)
#include <ATen/ops/arange.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/zeros.h>
#include "tests/torch/torch_catch.h"

#include <string>
#include <vector>

#include "models/train_config.h"
#include "routers/balance.h"
#include "routers/balanced_assignment.h"
#include "routers/router.h"
#include "tests/torch/torch_test_util.h"

using namespace moetb;

namespace {

constexpr int64_t kE = 4;

// n tokens that all prefer expert `e` strongly: [n, kE].
at::Tensor prefer(int64_t n, int64_t e) {
  return at::zeros({n, kE}, at::kFloat).index_fill(1, at::arange(e, e + 1, at::kLong), 5.0);
}

std::vector<double> bias_after(BalanceScope scope, const std::vector<at::Tensor>& micro_batches, bool two_sequences) {
  RouterConfig cfg;
  cfg.n_experts = kE;
  cfg.top_k = 1;
  cfg.balance_coef = 0;
  cfg.bias_update_rate = 0.1;
  cfg.bias_scope = scope;
  auto router = make_router(cfg);
  for (const at::Tensor& logits : micro_batches) {
    RouteContext ctx;
    ctx.sequence_ids = two_sequences ? at::arange(logits.size(0), at::kLong).div(logits.size(0) / 2, "floor")
                                     : at::zeros({logits.size(0)}, at::kLong);
    router->route(logits, ctx);
  }
  const std::vector<uint64_t> mid = router->save_state();  // votes survive a checkpoint mid-step
  auto copy = make_router(cfg);
  copy->load_state(mid);
  copy->end_step();
  router->end_step();
  CHECK(copy->save_state() == router->save_state());
  return read_doubles(router->save_state(), 0, kE);
}

RouterConfig solver_cfg(const std::string& name, BalanceScope scope) {
  RouterConfig cfg;
  cfg.name = name;
  cfg.n_experts = kE;
  cfg.top_k = 2;
  cfg.assign_scope = scope;
  return cfg;
}

}  // namespace

TEST_CASE("expert bias scopes: per-sequence, per-micro-batch and global-batch counts", "[routers]") {
  // One micro-batch: sequence A all on expert 0, sequence B all on expert 1.
  const at::Tensor both = at::cat({prefer(8, 0), prefer(8, 1)}, 0);
  // Global counts (8, 8, 0, 0): experts 0 and 1 over the mean, 2 and 3 under.
  CHECK(bias_after(BalanceScope::kGlobalBatch, {both}, true) == std::vector<double>{-0.1, -0.1, 0.1, 0.1});
  CHECK(bias_after(BalanceScope::kMicroBatch, {both}, true) == std::vector<double>{-0.1, -0.1, 0.1, 0.1});  // one micro-batch = the step
  // Per sequence: A votes (-1, +1, +1, +1), B (+1, -1, +1, +1); the mean is (0, 0, 1, 1).
  CHECK(bias_after(BalanceScope::kSequence, {both}, true) == std::vector<double>{0.0, 0.0, 0.1, 0.1});
  // Two micro-batches in one step, one on expert 0, one on expert 1.
  const std::vector<at::Tensor> step = {prefer(8, 0), prefer(8, 1)};
  CHECK(bias_after(BalanceScope::kGlobalBatch, step, false) == std::vector<double>{-0.1, -0.1, 0.1, 0.1});
  CHECK(bias_after(BalanceScope::kMicroBatch, step, false) == std::vector<double>{0.0, 0.0, 0.1, 0.1});
  RouterConfig cfg;
  cfg.n_experts = kE;
  cfg.bias_update_rate = 0.1;
  cfg.bias_scope = BalanceScope::kSequence;
  CHECK_THROWS_WITH(make_router(cfg)->route(both, RouteContext{}), Catch::Contains("needs ctx.sequence_ids"));
}

TEST_CASE("sinkhorn and balanced assignment per sequence: each sequence solved on its own", "[routers]") {
  const int64_t seq = 24;
  const at::Tensor logits = moetb_test::seeded_randn({3 * seq, kE}, 17).add(at::arange(kE, at::kFloat).mul(-0.7));
  RouteContext ctx;
  ctx.sequence_ids = at::arange(3 * seq, at::kLong).div(seq, "floor");
  for (const std::string name : {"sinkhorn", "balanced"}) {
    INFO(name);
    const RoutingDecision per_seq = make_router(solver_cfg(name, BalanceScope::kSequence))->route(logits, ctx);
    auto whole = make_router(solver_cfg(name, BalanceScope::kMicroBatch));
    for (int64_t s = 0; s < 3; ++s) {  // = the micro-batch solution of that sequence alone
      const at::Tensor rows = logits.narrow(0, s * seq, seq);
      CHECK(per_seq.experts.narrow(0, s * seq, seq).equal(whole->route(rows, RouteContext{}).experts));
      if (name == "balanced") {  // exact shares inside every sequence: 24 * 2 / 4 = 12
        const at::Tensor ids = per_seq.experts.narrow(0, s * seq, seq).reshape({-1});
        CHECK(moetb_test::to_longs(at::bincount(ids, {}, kE)) == std::vector<int64_t>{12, 12, 12, 12});
      }
    }
    // Over the micro-batch the problem is one: sequences need not balance on their own.
    const RoutingDecision mb = whole->route(logits, RouteContext{});
    if (name == "balanced")
      CHECK(moetb_test::to_longs(at::bincount(mb.experts.reshape({-1}), {}, kE)) == std::vector<int64_t>{36, 36, 36, 36});
    CHECK_FALSE(mb.experts.equal(per_seq.experts));
    // global_batch is the micro-batch (the router sees the whole step at accum_steps = 1).
    CHECK(make_router(solver_cfg(name, BalanceScope::kGlobalBatch))->route(logits, RouteContext{}).experts.equal(mb.experts));
    CHECK_THROWS_WITH(make_router(solver_cfg(name, BalanceScope::kSequence))->route(logits, RouteContext{}),
                      Catch::Contains("needs ctx.sequence_ids"));
  }
}

TEST_CASE("global_batch for sinkhorn and balanced needs train.accum_steps = 1; moetb routers lists the scopes", "[routers]") {
  TrainConfig c;
  c.data_dir = "d";
  c.router.name = "balanced";
  c.router.assign_scope = BalanceScope::kGlobalBatch;
  c.accum_steps = 2;
  CHECK_THROWS_WITH(validate_train_config(c), Catch::StartsWith("router.assign_scope: global_batch needs train.accum_steps = 1"));
  c.accum_steps = 1;
  CHECK_NOTHROW(validate_train_config(c));
  int with_three = 0;
  for (const ScopeInfo& s : balancing_scopes()) with_three += s.scopes.size() == 3;
  CHECK(with_three == 4);  // LBL, EB, SH, BA
}
