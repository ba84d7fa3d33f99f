// The coarse-grained parallel loops of the fused CPU paths (models/parallel_blas.h): the
// balanced split of experts by rows, every chunk run once on its own thread with OpenBLAS
// held at one thread and restored, and the fused attentions and routed experts giving the
// same values and gradients on two threads as on one (and as the ATen reference), and so
// does the fused linear.
#include <ATen/Parallel.h>
#include <ATen/ops/tensor.h>
#include "tests/torch/torch_catch.h"

#include <dlfcn.h>

#include <atomic>
#include <mutex>
#include <set>
#include <vector>

#include "models/fused_attention.h"
#include "models/fused_experts.h"
#include "models/fused_linear.h"
#include "models/parallel_blas.h"
#include "tests/torch/torch_test_util.h"

using namespace moetb;
using moetb_test::max_abs_diff;
using moetb_test::seeded_randn;

namespace {

// Sets the intra-op threads for its lifetime.
struct ThreadsGuard {
  explicit ThreadsGuard(int n) : saved(at::get_num_threads()) { at::set_num_threads(n); }
  ~ThreadsGuard() { at::set_num_threads(saved); }
  int saved;
};

int openblas_threads() {
  using Get = int (*)();
  auto get = reinterpret_cast<Get>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return get ? get() : -1;
}

// Output and input gradients of fn on leaf copies, with sum(out * c) backpropagated.
std::vector<at::Tensor> run(const std::function<at::Tensor(const std::vector<at::Tensor>&)>& fn, const std::vector<at::Tensor>& inputs,
                            const at::Tensor& c) {
  std::vector<at::Tensor> leaves;
  for (const auto& t : inputs) leaves.push_back(t.detach().clone().requires_grad_(true));
  const at::Tensor out = fn(leaves);
  out.mul(c).sum().backward();
  std::vector<at::Tensor> r = {out.detach()};
  for (const auto& l : leaves) r.push_back(l.grad());
  return r;
}

}  // namespace

TEST_CASE("parallel blas: balanced_bounds splits costs into contiguous ranges of about equal total", "[models]") {
  const std::vector<int64_t> even(8, 10);
  CHECK(blas::balanced_bounds(even.data(), 8, 2) == std::vector<int64_t>{0, 4, 8});
  CHECK(blas::balanced_bounds(even.data(), 8, 4) == std::vector<int64_t>{0, 2, 4, 6, 8});
  CHECK(blas::balanced_bounds(even.data(), 8, 1) == std::vector<int64_t>{0, 8});
  const std::vector<int64_t> skew = {100, 1, 1, 1, 1};  // one heavy item: alone in the first range
  CHECK(blas::balanced_bounds(skew.data(), 5, 2) == std::vector<int64_t>{0, 1, 5});
  const std::vector<int64_t> zeros = {0, 0, 0};
  const auto z = blas::balanced_bounds(zeros.data(), 3, 2);
  REQUIRE(z.size() == 3);
  CHECK(z.front() == 0);
  CHECK(z.back() == 3);
  // Any costs: boundaries are non-decreasing from 0 to n, and no range exceeds half the total
  // by more than its largest item.
  const std::vector<int64_t> mixed = {7, 30, 2, 2, 19, 0, 8, 40, 3};
  for (int parts = 1; parts <= 6; ++parts) {
    const auto b = blas::balanced_bounds(mixed.data(), 9, parts);
    REQUIRE(b.size() == static_cast<std::size_t>(parts) + 1);
    CHECK(b.front() == 0);
    CHECK(b.back() == 9);
    for (std::size_t i = 1; i < b.size(); ++i) CHECK(b[i - 1] <= b[i]);
    if (parts == 2) {
      int64_t first = 0;
      for (int64_t i = 0; i < b[1]; ++i) first += mixed[static_cast<std::size_t>(i)];
      CHECK(std::abs(first - (111 - first)) <= 40);
    }
  }
}

TEST_CASE("parallel blas: every chunk runs once on its own thread, OpenBLAS at one thread meanwhile", "[models]") {
  const ThreadsGuard two(2);
  const int before = openblas_threads();
  std::vector<std::atomic<int>> seen(10);
  std::mutex mu;
  std::set<int> chunk_ids;
  std::set<int> blas_inside;
  blas::parallel_chunks(10, 2, [&](int t, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) seen[static_cast<std::size_t>(i)]++;
    const std::lock_guard<std::mutex> lock(mu);
    chunk_ids.insert(t);
    blas_inside.insert(openblas_threads());
  });
  for (const auto& s : seen) CHECK(s.load() == 1);
  CHECK(chunk_ids == std::set<int>{0, 1});
  if (before > 0) {
    CHECK(blas_inside == std::set<int>{1});
    CHECK(openblas_threads() == before);  // restored
  }
  // More chunks than items: one chunk per item at most; nothing to do: no call.
  int calls = 0;
  blas::parallel_chunks(0, 2, [&](int, int64_t, int64_t) { ++calls; });
  CHECK(calls == 0);
  blas::parallel_chunks(1, 4, [&](int t, int64_t b, int64_t e) { calls += (t == 0 && b == 0 && e == 1); });
  CHECK(calls == 1);
}

TEST_CASE("parallel blas: fused attention and routed experts on two threads equal one thread and the reference", "[models]") {
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    const double tol = dtype == at::kDouble ? 1e-12 : 2e-5;
    INFO("dtype " << c10::toString(dtype));
    const int64_t B = 3, S = 40, H = 2, hd = 8, d = 12, F = 10, E = 5, T = 30;
    const at::Tensor qkv = seeded_randn({B, S, 3, H, hd}, 61, dtype), c_att = seeded_randn({B, S, H * hd}, 62, dtype);
    const at::Tensor ang = seeded_randn({S, hd / 2}, 63, dtype), cos = ang.cos(), sin = ang.sin();
    const auto att = [&](const auto& t) { return fused_rope_attention(t[0], cos, sin, 16); };
    // 2 T rows over E experts, unevenly (expert 3 gets none), tokens repeating.
    const at::Tensor counts = at::tensor(std::vector<int64_t>{25, 5, 20, 0, 10});
    const at::Tensor tokens = moetb_test::seeded_randint(T, {2 * T}, 64);
    const std::vector<at::Tensor> ex_in = {seeded_randn({T, d}, 65, dtype), seeded_randn({2 * T}, 66, dtype).abs(),
                                           seeded_randn({E, d, F}, 67, dtype), seeded_randn({E, d, F}, 68, dtype),
                                           seeded_randn({E, F, d}, 69, dtype)};
    const at::Tensor c_ex = seeded_randn({T, d}, 70, dtype);
    const auto ex = [&](const auto& t) { return fused_routed_swiglu(t[0], tokens, t[1], t[2], t[3], t[4], counts); };
    // The plain causal attention on separate q, k, v (its backward's scratch is per thread too).
    const auto causal = [](const auto& t) { return fused_causal_attention(t[0], t[1], t[2], 16); };
    const std::vector<at::Tensor> qkv3 = {seeded_randn({B, H, S, hd}, 71, dtype), seeded_randn({B, H, S, hd}, 72, dtype),
                                          seeded_randn({B, H, S, hd}, 73, dtype)};
    const at::Tensor c_causal = seeded_randn({B, H, S, hd}, 74, dtype);
    std::vector<std::vector<at::Tensor>> a, x, c;
    for (const int threads : {1, 2}) {
      const ThreadsGuard g(threads);
      a.push_back(run(att, {qkv}, c_att));
      x.push_back(run(ex, ex_in, c_ex));
      c.push_back(run(causal, qkv3, c_causal));
    }
    for (std::size_t i = 0; i < c[0].size(); ++i) {
      INFO("causal attention output/gradient " << i);
      CHECK(max_abs_diff(c[1][i], c[0][i]) <= tol * 1e-3);
    }
    const auto a_ref = run([&](const auto& t) { return rope_attention_reference(t[0], cos, sin); }, {qkv}, c_att);
    const auto x_ref = run([&](const auto& t) { return routed_swiglu_reference(t[0], tokens, t[1], t[2], t[3], t[4], counts); }, ex_in, c_ex);
    for (std::size_t i = 0; i < a[0].size(); ++i) {
      INFO("attention output/gradient " << i);
      CHECK(max_abs_diff(a[1][i], a[0][i]) <= tol * 1e-3);
      CHECK(max_abs_diff(a[1][i], a_ref[i]) < tol * (1 + a_ref[i].abs().max().item<double>()));
    }
    for (std::size_t i = 0; i < x[0].size(); ++i) {
      INFO("experts output/gradient " << i);
      CHECK(max_abs_diff(x[1][i], x[0][i]) <= tol * 1e-3);
      CHECK(max_abs_diff(x[1][i], x_ref[i]) < tol * (1 + x_ref[i].abs().max().item<double>()));
    }
  }
}

TEST_CASE("parallel blas: fused linear on two threads equals one thread and matmul", "[models]") {
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    const double tol = dtype == at::kDouble ? 1e-12 : 2e-5;
    INFO("dtype " << c10::toString(dtype));
    // 131 rows (split by rows for y and dx) and 45 columns (split by columns for dW).
    const std::vector<at::Tensor> in = {seeded_randn({131, 20}, 91, dtype), seeded_randn({20, 45}, 92, dtype), seeded_randn({131, 45}, 93, dtype)};
    const at::Tensor c = seeded_randn({131, 45}, 94, dtype);
    const auto lin = [](const auto& t) { return fused_linear(t[0], t[1], t[2]); };
    std::vector<std::vector<at::Tensor>> r;
    for (const int threads : {1, 2}) {
      const ThreadsGuard g(threads);
      r.push_back(run(lin, in, c));
    }
    const auto ref = run([](const auto& t) { return linear_reference(t[0], t[1], t[2]); }, in, c);
    for (std::size_t i = 0; i < ref.size(); ++i) {
      INFO("output/gradient " << i);  // the row halves may take other BLAS edge kernels: equal to rounding, not bits
      CHECK(max_abs_diff(r[1][i], r[0][i]) < tol * (1 + ref[i].abs().max().item<double>()));
      CHECK(max_abs_diff(r[1][i], ref[i]) < tol * (1 + ref[i].abs().max().item<double>()));
    }
    // x W^T with W [out, in] = [45, 20]: dW [45, 20] split by its 20 columns.
    const std::vector<at::Tensor> in_t = {in[0], seeded_randn({45, 20}, 95, dtype)};
    const auto lin_t = [](const auto& t) { return fused_linear_t(t[0], t[1]); };
    std::vector<std::vector<at::Tensor>> rt;
    for (const int threads : {1, 2}) {
      const ThreadsGuard g(threads);
      rt.push_back(run(lin_t, in_t, c));
    }
    const auto ref_t = run([](const auto& t) { return linear_t_reference(t[0], t[1]); }, in_t, c);
    for (std::size_t i = 0; i < ref_t.size(); ++i) {
      INFO("x W^T output/gradient " << i);
      CHECK(max_abs_diff(rt[1][i], rt[0][i]) < tol * (1 + ref_t[i].abs().max().item<double>()));
      CHECK(max_abs_diff(rt[1][i], ref_t[i]) < tol * (1 + ref_t[i].abs().max().item<double>()));
    }
  }
}
