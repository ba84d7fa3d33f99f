// CPU fast paths for the routers' per-token work (router_kernels.h). The top-k matches
// ATen's CPU top-k exactly: a row whose k largest are distinct and strictly above the rest
// has one answer, which a k-slot insertion finds; any other row (a tie that touches the top
// k, or a NaN, which ATen ranks above everything) is ordered by the same nth_element + sort
// (or partial_sort when k * 64 <= E) on (value, index) pairs that ATen runs, so it comes out
// the same. z-loss: lse_i = m_i + log(sum_j exp(l_ij - m_i)), z = mean_i lse_i^2,
// dz/dl_ij = 2 lse_i softmax(l_i)_j / n.
#include "routers/router_kernels.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/full.h>
#include <ATen/ops/topk.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/fused_math.h"

namespace moetb {
namespace {

constexpr int64_t kMaxFastK = 16;

// The k largest of x[0, E) by descending value into idx, if they are distinct, not NaN and
// strictly above every other value (then the answer is unique); false otherwise.
template <typename T>
bool top_k_distinct(const T* x, int64_t E, int64_t k, int64_t* idx) {
  T val[kMaxFastK];
  int64_t cnt = 0;
  for (int64_t j = 0; j < E; ++j) {
    const T v = x[j];
    if (v != v) return false;  // NaN
    if (cnt == k && !(v > val[k - 1])) {
      if (v == val[k - 1]) return false;  // ties with the k-th
      continue;
    }
    int64_t p = cnt < k ? cnt++ : k - 1;  // the slot v enters at, then moved up
    for (; p > 0 && v >= val[p - 1]; --p) {
      if (v == val[p - 1]) return false;  // two equal values inside the top k
      val[p] = val[p - 1];
      idx[p] = idx[p - 1];
    }
    val[p] = v;
    idx[p] = j;
  }
  return true;
}

// ATen's CPU top-k of one row (largest, sorted): the same algorithm on the same pairs.
template <typename T>
void top_k_like_aten(const T* x, int64_t E, int64_t k, int64_t* idx) {
  using elem = std::pair<double, int64_t>;  // ATen compares CPU float scores as double (acc_type)
  std::vector<elem> q(static_cast<std::size_t>(E));
  for (int64_t j = 0; j < E; ++j) q[static_cast<std::size_t>(j)] = {static_cast<double>(x[j]), j};
  const auto greater = [](const elem& a, const elem& b) { return (std::isnan(a.first) && !std::isnan(b.first)) || a.first > b.first; };
  if (k * 64 <= E) {
    std::partial_sort(q.begin(), q.begin() + k, q.end(), greater);
  } else {
    std::nth_element(q.begin(), q.begin() + (k - 1), q.end(), greater);
    std::sort(q.begin(), q.begin() + (k - 1), greater);
  }
  for (int64_t j = 0; j < k; ++j) idx[j] = q[static_cast<std::size_t>(j)].second;
}

// lse of rows of E logits (float: exp by fused::exp_nonpositive, cloned per CPU).
template <typename T>
__attribute__((always_inline)) inline void row_lse_impl(const T* x, T* lse, int64_t n, int64_t E) {
  for (int64_t i = 0; i < n; ++i) {
    const T* r = x + i * E;
    T m = -std::numeric_limits<T>::infinity();
    bool nan = false;
    for (int64_t j = 0; j < E; ++j) {
      nan = nan || r[j] != r[j];
      m = r[j] > m ? r[j] : m;
    }
    if (nan || !std::isfinite(m)) {  // as ATen's logsumexp: NaN, or the infinite max itself
      lse[i] = nan ? std::numeric_limits<T>::quiet_NaN() : m;
      continue;
    }
    lse[i] = m + static_cast<T>(std::log(static_cast<double>(fused::exp_sum16(r, m, E))));
  }
}
__attribute__((target_clones("avx512f", "avx2", "default"))) void row_lse(const float* x, float* lse, int64_t n, int64_t E) {
  row_lse_impl(x, lse, n, E);
}
void row_lse(const double* x, double* lse, int64_t n, int64_t E) { row_lse_impl(x, lse, n, E); }

// g_ij = c lse_i exp(l_ij - lse_i), c = 2 dz / n.
template <typename T>
__attribute__((always_inline)) inline void z_grad_impl(const T* x, const T* lse, T c, T* g, int64_t n, int64_t E) {
  for (int64_t i = 0; i < n; ++i) {
    const T f = c * lse[i];
    for (int64_t j = 0; j < E; ++j) g[i * E + j] = f * fused::exp_nonpositive(x[i * E + j] - lse[i]);
  }
}
__attribute__((target_clones("avx512f", "avx2", "default"))) void z_grad(const float* x, const float* lse, float c, float* g, int64_t n,
                                                                          int64_t E) {
  z_grad_impl(x, lse, c, g, n, E);
}
void z_grad(const double* x, const double* lse, double c, double* g, int64_t n, int64_t E) { z_grad_impl(x, lse, c, g, n, E); }

struct RouterZLossFn : public torch::autograd::Function<RouterZLossFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits_in) {
    const at::Tensor logits = logits_in.contiguous();
    const int64_t n = logits.size(0), E = logits.size(1);
    at::Tensor lse = at::empty({n}, logits.options());  // [n]
    double z = 0.0;
    AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "router_z_loss", [&] {
      scalar_t* L = lse.data_ptr<scalar_t>();
      row_lse(logits.data_ptr<scalar_t>(), L, n, E);
      for (int64_t i = 0; i < n; ++i) z += static_cast<double>(L[i]) * static_cast<double>(L[i]);
    });
    ctx->save_for_backward({logits, lse});
    return at::full({}, z / static_cast<double>(n), logits.options());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &logits = saved[0], &lse = saved[1];
    const int64_t n = logits.size(0), E = logits.size(1);
    at::Tensor g = at::empty_like(logits);  // [n, E]
    AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "router_z_loss_backward", [&] {
      const auto c = static_cast<scalar_t>(2.0 * grads[0].item<double>() / static_cast<double>(n));
      z_grad(logits.data_ptr<scalar_t>(), lse.data_ptr<scalar_t>(), c, g.data_ptr<scalar_t>(), n, E);
    });
    return {g};
  }
};

}  // namespace

at::Tensor topk_indices(const at::Tensor& scores, int64_t k) {
  const bool fast = scores.device().is_cpu() && scores.dim() == 2 && k >= 1 && k <= kMaxFastK && k <= scores.size(1) &&
                    (scores.scalar_type() == at::kFloat || scores.scalar_type() == at::kDouble);
  if (!fast) return std::get<1>(at::topk(scores, k, 1, /*largest=*/true, /*sorted=*/true));
  const at::Tensor s = scores.contiguous();
  const int64_t n = s.size(0), E = s.size(1);
  at::Tensor out = at::empty({n, k}, s.options().dtype(at::kLong));  // [n, k]
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "topk_indices", [&] {
    const scalar_t* x = s.data_ptr<scalar_t>();
    int64_t* o = out.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i)
      if (!top_k_distinct(x + i * E, E, k, o + i * k)) top_k_like_aten(x + i * E, E, k, o + i * k);
  });
  return out;
}

at::Tensor router_z_loss_reference(const at::Tensor& logits) {
  if (logits.size(0) == 0) return at::zeros({}, logits.options());
  return at::logsumexp(logits, {1}).pow(2).mean();  // [n_tokens] -> []
}

at::Tensor router_z_loss(const at::Tensor& logits) {
  const bool fast = logits.device().is_cpu() && logits.dim() == 2 && logits.size(0) > 0 && logits.size(1) > 0 &&
                    (logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kDouble);
  if (!fast) return router_z_loss_reference(logits);
  return RouterZLossFn::apply(logits);
}

std::vector<double> expert_counts(const at::Tensor& experts, int64_t n_experts) {
  const at::Tensor ids = experts.reshape({-1}).to(at::kCPU, at::kLong).contiguous();  // [n * k]
  std::vector<double> counts(static_cast<std::size_t>(n_experts), 0.0);
  const int64_t* p = ids.data_ptr<int64_t>();
  for (int64_t i = 0; i < ids.numel(); ++i) {
    if (p[i] == -1) continue;
    if (p[i] < -1 || p[i] >= n_experts)
      throw std::invalid_argument("expert id " + std::to_string(p[i]) + " outside [-1, " + std::to_string(n_experts) + ")");
    counts[static_cast<std::size_t>(p[i])] += 1.0;
  }
  return counts;
}

}  // namespace moetb
