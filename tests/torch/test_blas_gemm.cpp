// The row-major products of the fused paths (models/blas_gemm.h): libxsmm's JIT path and
// the BLAS against a double-precision loop, over shapes that exercise its row blocks (64)
// and depth blocks (256) with their remainders, both op(A), beta 0 (C never read: NaN there
// stays out) and 1, row strides wider than the rows, and the products it hands to the BLAS
// (alpha != 1, op(B) = B^T); and fused_linear (models/fused_linear.h) against matmul.
#include "tests/torch/torch_catch.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "models/blas_gemm.h"
#include "models/fused_linear.h"
#include "tests/torch/torch_test_util.h"

using namespace moetb;
using moetb_test::max_abs_diff;
using moetb_test::seeded_randn;

namespace {

struct Product {
  bool ta, tb;
  int64_t m, n, k;
  float alpha, beta;
};

// Runs p through gemm_rm with the JIT path on or off and returns the largest error against
// a double loop, relative to sqrt(k) (the size of a sum of k products of N(0, 1) values).
double product_error(const Product& p, bool jit) {
  std::mt19937 gen(static_cast<unsigned>(p.m * 131 + p.n * 17 + p.k + (p.ta ? 7 : 0)));
  std::normal_distribution<float> nd;
  const int64_t pad = 3;  // row strides wider than the rows
  const int64_t a_rows = p.ta ? p.k : p.m, a_cols = p.ta ? p.m : p.k, b_rows = p.tb ? p.n : p.k, b_cols = p.tb ? p.k : p.n;
  const int64_t lda = a_cols + pad, ldb = b_cols + pad, ldc = p.n + pad;
  std::vector<float> a(static_cast<std::size_t>(a_rows * lda)), b(static_cast<std::size_t>(b_rows * ldb)), c(static_cast<std::size_t>(p.m * ldc));
  for (auto& v : a) v = nd(gen);
  for (auto& v : b) v = nd(gen);
  for (auto& v : c) v = p.beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : nd(gen);  // beta 0: C must not be read
  const std::vector<float> c0 = c;
  const bool was = blas::set_jit_gemm(jit);
  blas::gemm_rm(p.ta, p.tb, p.m, p.n, p.k, p.alpha, a.data(), lda, b.data(), ldb, p.beta, c.data(), ldc);
  blas::set_jit_gemm(was);
  double worst = 0.0;
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t j = 0; j < p.n; ++j) {
      double s = 0.0;
      for (int64_t q = 0; q < p.k; ++q) {
        const double x = p.ta ? a[static_cast<std::size_t>(q * lda + i)] : a[static_cast<std::size_t>(i * lda + q)];
        const double y = p.tb ? b[static_cast<std::size_t>(j * ldb + q)] : b[static_cast<std::size_t>(q * ldb + j)];
        s += x * y;
      }
      const double want = p.alpha * s + (p.beta == 0.0f ? 0.0 : p.beta * static_cast<double>(c0[static_cast<std::size_t>(i * ldc + j)]));
      const double got = c[static_cast<std::size_t>(i * ldc + j)];
      worst = std::max(worst, std::isfinite(got) ? std::abs(got - want) / std::sqrt(static_cast<double>(p.k) + 1.0) : 1e30);
    }
    for (int64_t j = p.n; j < ldc; ++j)  // the padding past each row of C is never written
      if (!(std::isnan(c[static_cast<std::size_t>(i * ldc + j)]) && std::isnan(c0[static_cast<std::size_t>(i * ldc + j)])) &&
          c[static_cast<std::size_t>(i * ldc + j)] != c0[static_cast<std::size_t>(i * ldc + j)])
        worst = 1e30;
  }
  return worst;
}

}  // namespace

TEST_CASE("blas gemm: the JIT path and the BLAS equal a double loop, blocks, remainders, strides and fallbacks", "[models]") {
  const auto info = blas::jit_gemm_info();
  INFO("jit: " << info.dump());
  if (!info.value("enabled", false)) WARN("the JIT path is off here (" << info.value("why", std::string()) << "): both runs use the BLAS");
  std::vector<Product> products;
  for (const bool ta : {false, true})
    for (const int64_t m : {int64_t{1}, int64_t{5}, int64_t{64}, int64_t{130}})
      for (const int64_t n : {int64_t{1}, int64_t{7}, int64_t{32}, int64_t{129}})
        for (const int64_t k : {int64_t{1}, int64_t{3}, int64_t{256}, int64_t{600}})
          for (const float beta : {0.0f, 1.0f}) products.push_back({ta, false, m, n, k, 1.0f, beta});
  products.push_back({false, true, 70, 33, 300, 1.0f, 0.0f});  // op(B) = B^T: the BLAS's
  products.push_back({true, true, 9, 65, 17, 1.0f, 1.0f});
  products.push_back({false, false, 70, 33, 300, 0.5f, 0.0f});  // alpha != 1: the BLAS's
  products.push_back({true, false, 65, 20, 257, 1.0f, 0.5f});   // beta not 0 or 1: the BLAS's
  for (const Product& p : products) {
    INFO("ta " << p.ta << " tb " << p.tb << " m " << p.m << " n " << p.n << " k " << p.k << " alpha " << p.alpha << " beta " << p.beta);
    const double tol = 1e-6 * (1.0 + std::sqrt(static_cast<double>(p.k)));  // fp32 rounding of a k-term sum; a wrong block is O(1)
    CHECK(product_error(p, true) < tol);
    CHECK(product_error(p, false) < tol);
  }
}

TEST_CASE("blas gemm: the JIT path reports itself and can be switched off", "[models]") {
  const auto info = blas::jit_gemm_info();
  REQUIRE(info.contains("library"));
  REQUIRE(info.contains("enabled"));
  if (info.value("enabled", false)) {
    CHECK(info.value("library", std::string()).rfind("libxsmm", 0) == 0);
    CHECK(blas::set_jit_gemm(false));
    CHECK_FALSE(blas::jit_gemm_info().value("enabled", true));
    CHECK_FALSE(blas::set_jit_gemm(true));
    CHECK(blas::jit_gemm_info().value("enabled", false));
  } else {
    CHECK_FALSE(blas::set_jit_gemm(true));  // stays off where unavailable
    CHECK_FALSE(blas::jit_gemm_info().value("enabled", true));
  }
}

TEST_CASE("fused linear: x W^T for W stored [out, in] equals matmul, forward and gradients", "[models]") {
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    const double tol = dtype == at::kDouble ? 1e-12 : 2e-5;
    INFO("dtype " << c10::toString(dtype));
    // [2, 75, 24] rows times [70, 24]^T (the tied LM head's and the router's layout).
    const at::Tensor x = seeded_randn({2, 75, 24}, 85, dtype), w = seeded_randn({70, 24}, 86, dtype);
    const at::Tensor c = seeded_randn({2, 75, 70}, 87, dtype);
    std::vector<std::vector<at::Tensor>> res;
    for (const bool fused : {true, false}) {
      const at::Tensor xl = x.clone().requires_grad_(true), wl = w.clone().requires_grad_(true);
      const at::Tensor y = fused ? fused_linear_t(xl, wl) : linear_t_reference(xl, wl);
      y.mul(c).sum().backward();
      res.push_back({y.detach(), xl.grad(), wl.grad()});
    }
    REQUIRE(res[0][0].sizes() == res[1][0].sizes());
    REQUIRE(res[0][2].sizes() == w.sizes());
    for (std::size_t i = 0; i < res[0].size(); ++i) {
      INFO("output/gradient " << i);
      REQUIRE(res[0][i].defined());
      CHECK(max_abs_diff(res[0][i], res[1][i]) < tol * (1 + res[1][i].abs().max().item<double>()));
    }
    // Only the weight needs a gradient, and only the input (a frozen weight).
    const at::Tensor wl = w.clone().requires_grad_(true), wr = w.clone().requires_grad_(true);
    fused_linear_t(x, wl).mul(c).sum().backward();
    linear_t_reference(x, wr).mul(c).sum().backward();
    CHECK(max_abs_diff(wl.grad(), wr.grad()) < tol * (1 + wr.grad().abs().max().item<double>()));
    const at::Tensor xl = x.clone().requires_grad_(true);
    fused_linear_t(xl, w).mul(c).sum().backward();
    CHECK(max_abs_diff(xl.grad(), res[1][1]) < tol * (1 + res[1][1].abs().max().item<double>()));
  }
  // A weight that is not [out, in] for x's width takes the ATen composition (and its error).
  CHECK_THROWS(fused_linear_t(at::ones({3, 4}), at::ones({4, 5})));
}

TEST_CASE("fused linear: x W (+ residual) equals matmul, forward and gradients", "[models]") {
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    const double tol = dtype == at::kDouble ? 1e-12 : 2e-5;
    INFO("dtype " << c10::toString(dtype));
    // [2, 75, 24] rows (150: two whole row blocks and a remainder) times [24, 70].
    const at::Tensor x = seeded_randn({2, 75, 24}, 81, dtype), w = seeded_randn({24, 70}, 82, dtype), r = seeded_randn({2, 75, 70}, 83, dtype);
    const at::Tensor c = seeded_randn({2, 75, 70}, 84, dtype);
    for (const bool with_residual : {false, true}) {
      INFO("residual " << with_residual);
      std::vector<std::vector<at::Tensor>> res;
      for (const bool fused : {true, false}) {
        const at::Tensor xl = x.clone().requires_grad_(true), wl = w.clone().requires_grad_(true), rl = r.clone().requires_grad_(true);
        const at::Tensor rr = with_residual ? rl : at::Tensor();
        const at::Tensor y = fused ? fused_linear(xl, wl, rr) : linear_reference(xl, wl, rr);
        y.mul(c).sum().backward();
        res.push_back({y.detach(), xl.grad(), wl.grad(), with_residual ? rl.grad() : at::zeros({1}, x.options())});
      }
      REQUIRE(res[0][0].sizes() == res[1][0].sizes());
      for (std::size_t i = 0; i < res[0].size(); ++i) {
        INFO("output/gradient " << i);
        REQUIRE(res[0][i].defined());
        CHECK(max_abs_diff(res[0][i], res[1][i]) < tol * (1 + res[1][i].abs().max().item<double>()));
      }
    }
    // Only the weight needs a gradient (x a constant): dx is not formed, dW still right.
    const at::Tensor wl = w.clone().requires_grad_(true);
    fused_linear(x, wl).mul(c.narrow(0, 0, 2)).sum().backward();
    const at::Tensor wr = w.clone().requires_grad_(true);
    linear_reference(x, wr).mul(c.narrow(0, 0, 2)).sum().backward();
    CHECK(max_abs_diff(wl.grad(), wr.grad()) < tol * (1 + wr.grad().abs().max().item<double>()));
  }
}
