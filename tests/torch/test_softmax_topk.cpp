// The token-choice router's fused softmax -> top-k -> weights -> balance + z-loss
// (routers/softmax_topk.h) against the ATen composition it replaces: the same experts, probs,
// weights, counts and loss terms, and the same gradients of the logits from cotangents on
// every output, for k = 1..3, with and without renormalisation, bias and prior counts; and
// the fallback for non-finite logits.
#include <ATen/ops/tensor.h>

#include <cmath>
#include <limits>
#include <vector>

#include "routers/softmax_topk.h"
#include "tests/torch/torch_test_util.h"

using moetb::SoftmaxTopk;
using moetb::SoftmaxTopkOptions;
using moetb_test::seeded_randn;

namespace {

double max_abs(const at::Tensor& a, const at::Tensor& b) { return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>(); }

}  // namespace

TEST_CASE("softmax_topk: the fused router head equals the ATen composition, forward and gradients", "[routers]") {
  const int64_t n = 300, E = 8;
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    const double tol = dtype == at::kFloat ? 2e-6 : 1e-12;
    const at::Tensor base = seeded_randn({n, E}, 31, dtype).mul(2.0);
    const at::Tensor cp = seeded_randn({n, E}, 32, dtype);
    for (const int64_t k : {int64_t{1}, int64_t{2}, int64_t{3}}) {
      const at::Tensor cw = seeded_randn({n, k}, 33, dtype);
      for (const bool renormalize : {true, false}) {
        for (const int variant : {0, 1, 2}) {  // 0: plain, 1: bias, 2: prior counts (global-batch scope)
          INFO(c10::toString(dtype) << " k " << k << " renormalize " << renormalize << " variant " << variant);
          SoftmaxTopkOptions opt;
          opt.top_k = k;
          opt.renormalize = renormalize;
          opt.balance_coef = 0.05;
          opt.z_loss_coef = 0.01;
          if (variant == 1) opt.bias = {0.3, -0.2, 0.0, 0.1, -0.4, 0.25, 0.05, -0.1};
          if (variant == 2) opt.prior_counts = {100, 0, 40, 7, 0, 300, 12, 1};
          std::vector<SoftmaxTopk> r;
          std::vector<at::Tensor> grads;
          for (const bool fused : {true, false}) {
            const at::Tensor l = base.clone().requires_grad_(true);
            r.push_back(fused ? moetb::softmax_topk(l, opt) : moetb::softmax_topk_reference(l, opt));
            r.back().probs.mul(cp).sum().add(r.back().weights.mul(cw).sum()).add(r.back().aux_loss.mul(3.0)).backward();
            grads.push_back(l.grad());
          }
          CHECK(at::equal(r[0].experts, r[1].experts));
          CHECK(r[0].counts == r[1].counts);
          CHECK(max_abs(r[0].probs, r[1].probs) < tol);
          CHECK(max_abs(r[0].weights, r[1].weights) < tol);
          CHECK(r[0].balance == Approx(r[1].balance).epsilon(10 * tol));
          CHECK(r[0].z_loss == Approx(r[1].z_loss).epsilon(10 * tol));
          CHECK(r[0].aux_loss.item<double>() == Approx(r[1].aux_loss.item<double>()).epsilon(10 * tol));
          CHECK(max_abs(grads[0], grads[1]) < 10 * tol);
        }
      }
    }
  }
}

TEST_CASE("softmax_topk: gradients through one output at a time, and non-finite logits", "[routers]") {
  const at::Tensor base = seeded_randn({64, 6}, 41, at::kDouble);
  SoftmaxTopkOptions opt;
  opt.top_k = 2;
  opt.balance_coef = 0.1;
  opt.z_loss_coef = 0.02;
  for (int which = 0; which < 3; ++which) {  // only probs, only weights, only the aux loss
    INFO("output " << which);
    std::vector<at::Tensor> grads;
    for (const bool fused : {true, false}) {
      const at::Tensor l = base.clone().requires_grad_(true);
      const SoftmaxTopk r = fused ? moetb::softmax_topk(l, opt) : moetb::softmax_topk_reference(l, opt);
      (which == 0 ? r.probs.pow(2).sum() : which == 1 ? r.weights.pow(3).sum() : r.aux_loss).backward();
      grads.push_back(l.grad());
    }
    CHECK(max_abs(grads[0], grads[1]) < 1e-12);
  }
  // A NaN or infinite logit: ATen's softmax and its NaN rows, not the fused path's exp.
  const double inf = std::numeric_limits<double>::infinity();
  const at::Tensor odd = at::tensor(std::vector<float>{0.5f, -static_cast<float>(inf), 1.0f, 2.0f, 0.0f, 1.0f}).view({2, 3});
  const SoftmaxTopk r = moetb::softmax_topk(odd, opt), ref = moetb::softmax_topk_reference(odd, opt);
  CHECK(at::equal(r.probs, ref.probs));
  CHECK(r.probs[0][1].item<float>() == 0.0f);
  at::Tensor wide = seeded_randn({64, 6}, 42, at::kFloat);  // past the 16-lane blocks of the finiteness scan
  wide[50][3] = -std::numeric_limits<float>::infinity();
  CHECK(moetb::softmax_topk(wide, opt).probs[50][3].item<float>() == 0.0f);
  // Sizes that do not fit are refused by name.
  opt.bias = {1.0};
  CHECK_THROWS_WITH(moetb::softmax_topk(base, opt), Catch::Contains("bias and prior_counts must have E = 6"));
  opt.bias.clear();
  opt.top_k = 7;
  CHECK_THROWS_WITH(moetb::softmax_topk(base, opt), Catch::Contains("top_k 7"));
}
