// The routers' CPU fast paths (routers/router_kernels.h) against the ATen compositions they
// replace: top-k indices equal to at::topk's for every row, ties, NaN and signed zeros
// included; the fused z-loss's value and gradient; the expert counts.
#include <ATen/ops/full.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/topk.h>

#include <cmath>
#include <limits>
#include <vector>

#include "routers/router_kernels.h"
#include "tests/torch/torch_test_util.h"

using moetb::expert_counts;
using moetb::router_z_loss;
using moetb::router_z_loss_reference;
using moetb::topk_indices;
using moetb_test::seeded_randn;

namespace {

at::Tensor aten_topk(const at::Tensor& s, int64_t k) { return std::get<1>(at::topk(s, k, 1, /*largest=*/true, /*sorted=*/true)); }

}  // namespace

TEST_CASE("router kernels: top-k indices equal at::topk's, ties and NaN included", "[routers]") {
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    for (const int64_t E : {int64_t{2}, int64_t{8}, int64_t{16}, int64_t{64}, int64_t{200}}) {
      for (const int64_t k : {int64_t{1}, int64_t{2}, int64_t{4}, int64_t{8}}) {
        if (k > E) continue;
        INFO("dtype " << c10::toString(dtype) << ", E " << E << ", k " << k);
        // Distinct values (the insertion path) ...
        const at::Tensor distinct = seeded_randn({300, E}, 60 + static_cast<uint64_t>(E + k), dtype);
        CHECK(at::equal(topk_indices(distinct, k), aten_topk(distinct, k)));
        // ... and rows full of ties from a few integer values (ATen's own order).
        at::manual_seed(static_cast<uint64_t>(E * 10 + k));
        const at::Tensor ties = at::randint(0, 3, {300, E}).to(dtype);
        CHECK(at::equal(topk_indices(ties, k), aten_topk(ties, k)));
      }
    }
    // NaN ranks above everything, and -0 equals +0, as in ATen.
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const at::Tensor odd = at::tensor(std::vector<double>{0.5, nan, 0.1, -0.0, 0.0, 0.3, nan, 2.0, 0.0, -0.0, 1.0, -1.0}, dtype).view({3, 4});
    for (const int64_t k : {int64_t{1}, int64_t{2}, int64_t{3}}) CHECK(at::equal(topk_indices(odd, k), aten_topk(odd, k)));
  }
}

TEST_CASE("router kernels: the fused z-loss equals logsumexp^2's mean, value and gradient", "[routers]") {
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    const double tol = dtype == at::kDouble ? 1e-12 : 2e-5;
    INFO("dtype " << c10::toString(dtype));
    for (const double scale : {1.0, 30.0}) {  // 30: logits far from 0, where an unshifted exp overflows
      const at::Tensor base = seeded_randn({37, 8}, 70, dtype) * scale;
      const at::Tensor a = base.clone().requires_grad_(true), b = base.clone().requires_grad_(true);
      const at::Tensor za = router_z_loss(a), zb = router_z_loss_reference(b);
      CHECK(za.dim() == 0);
      CHECK(std::abs(za.item<double>() - zb.item<double>()) <= tol * std::max(1.0, std::abs(zb.item<double>())));
      (za * 1.7).backward();
      (zb * 1.7).backward();
      CHECK((a.grad() - b.grad()).abs().max().item<double>() <= tol * std::max(1.0, b.grad().abs().max().item<double>()));
    }
    // Rows with -inf, +inf or NaN logits give what ATen's logsumexp gives; no rows give 0.
    const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
    const at::Tensor odd = at::tensor(std::vector<double>{-inf, -inf, -inf, -inf, 1.0, inf, 0.0, 2.0, 1.0, nan, 0.0, 2.0}, dtype).view({3, 4});
    const at::Tensor lse = at::logsumexp(odd, {1});
    for (int64_t r = 0; r < 3; ++r) {
      const at::Tensor one = odd.narrow(0, r, 1);
      const double got = router_z_loss(one).item<double>(), want = lse[r].item<double>() * lse[r].item<double>();
      INFO("row " << r << ": " << got << " vs " << want);
      CHECK(((std::isnan(got) && std::isnan(want)) || got == want));
    }
    CHECK(router_z_loss(at::zeros({0, 4}, at::TensorOptions().dtype(dtype))).item<double>() == 0.0);
  }
}

TEST_CASE("router kernels: expert counts skip empty slots and name an id out of range", "[routers]") {
  const at::Tensor ids = at::tensor(std::vector<int64_t>{0, 2, -1, 2, 3, 2}).view({3, 2});
  CHECK(expert_counts(ids, 4) == std::vector<double>{1.0, 0.0, 3.0, 1.0});
  CHECK_THROWS_WITH(expert_counts(at::tensor(std::vector<int64_t>{0, 4}), 4), Catch::Contains("expert id 4 outside [-1, 4)"));
  CHECK_THROWS_WITH(expert_counts(at::tensor(std::vector<int64_t>{-2}), 4), Catch::Contains("expert id -2"));
}
