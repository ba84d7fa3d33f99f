// Fused next-token cross-entropy (fused_loss.h). Per position (b, s < S - 1), row x = logits[b, s],
// target t = tokens[b, s + 1]: lse = max + log sum exp(x - max), loss = lse - x_t (summed in
// double, divided by N = B (S - 1)); backward: dx = g (exp(x - lse) - [c = t]) / N, and 0 for
// the rows s = S - 1 that no target follows. The row loops are cloned for AVX-512/AVX2.
#include "models/fused_loss.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/scalar_tensor.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "common/fused_math.h"

namespace moetb {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// lse of one row of V logits: the exps summed as they are made (fused::exp_sum16, sum16's
// lanes and order, so the same bits as summing a row of them afterwards, one pass fewer).
template <typename T>
__attribute__((always_inline)) inline T row_lse_impl(const T* x, int64_t V) {
  const T mx = fused::max16(x, V);
  return mx + static_cast<T>(std::log(static_cast<double>(fused::exp_sum16(x, mx, V))));
}

template <typename T>
__attribute__((always_inline)) inline void row_grad_impl(const T* x, T lse, T scale, T* g, int64_t V) {
  for (int64_t c = 0; c < V; ++c) g[c] = fused::exp_nonpositive(x[c] - lse) * scale;
}

__attribute__((target_clones("avx512f", "avx2", "default"))) float row_lse_f(const float* x, int64_t V) { return row_lse_impl(x, V); }
__attribute__((target_clones("avx512f", "avx2", "default"))) void row_grad_f(const float* x, float lse, float scale, float* g, int64_t V) {
  row_grad_impl(x, lse, scale, g, V);
}
template <typename T>
T row_lse(const T* x, int64_t V) {
  if constexpr (std::is_same_v<T, float>) return row_lse_f(x, V);
  else return row_lse_impl(x, V);
}
template <typename T>
void row_grad(const T* x, T lse, T scale, T* g, int64_t V) {
  if constexpr (std::is_same_v<T, float>) row_grad_f(x, lse, scale, g, V);
  else row_grad_impl(x, lse, scale, g, V);
}

struct NextTokenCeFn : public torch::autograd::Function<NextTokenCeFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& logits_in, const at::Tensor& tokens_in) {
    const at::Tensor logits = logits_in.contiguous(), tokens = tokens_in.contiguous();
    const int64_t B = logits.size(0), S = logits.size(1), V = logits.size(2);
    const int64_t* tp = tokens.data_ptr<int64_t>();
    at::Tensor lse = at::empty({B, S - 1}, logits.options());  // [B, S-1]
    double total = 0.0;
    AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "fused_next_token_ce", [&] {
      const scalar_t* xp = logits.data_ptr<scalar_t>();
      scalar_t* lp = lse.data_ptr<scalar_t>();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t s = 0; s + 1 < S; ++s) {
          const int64_t t = tp[b * S + s + 1];
          TORCH_CHECK(t >= 0 && t < V, "fused_next_token_ce: target ", t, " is out of bounds for vocabulary ", V);
          const scalar_t* x = xp + (b * S + s) * V;
          const scalar_t l = row_lse(x, V);
          lp[b * (S - 1) + s] = l;
          total += static_cast<double>(l) - static_cast<double>(x[t]);
        }
    });
    ctx->save_for_backward({logits, tokens, lse});
    return at::scalar_tensor(total / static_cast<double>(B * (S - 1)), logits.options());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &logits = saved[0], &tokens = saved[1], &lse = saved[2];
    const int64_t B = logits.size(0), S = logits.size(1), V = logits.size(2);
    const double g = grads[0].item<double>();  // [] on the CPU: no device sync
    at::Tensor gx = at::empty_like(logits);    // [B, S, V]
    AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "fused_next_token_ce_backward", [&] {
      const scalar_t *xp = logits.data_ptr<scalar_t>(), *lp = lse.data_ptr<scalar_t>();
      const int64_t* tp = tokens.data_ptr<int64_t>();
      scalar_t* gp = gx.data_ptr<scalar_t>();
      const scalar_t scale = static_cast<scalar_t>(g / static_cast<double>(B * (S - 1)));
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t s = 0; s + 1 < S; ++s) {
          const int64_t row = b * S + s;
          row_grad(xp + row * V, lp[b * (S - 1) + s], scale, gp + row * V, V);
          gp[row * V + tp[row + 1]] -= scale;
        }
        std::fill(gp + (b * S + S - 1) * V, gp + (b * S + S) * V, scalar_t(0));
      }
    });
    return {gx, at::Tensor()};
  }
};

}  // namespace

at::Tensor next_token_ce_reference(const at::Tensor& logits, const at::Tensor& tokens) {
  const int64_t S = logits.size(1), V = logits.size(2);
  return at::cross_entropy_loss(logits.narrow(1, 0, S - 1).reshape({-1, V}), tokens.narrow(1, 1, S - 1).reshape({-1}));
}

at::Tensor fused_next_token_ce(const at::Tensor& logits, const at::Tensor& tokens) {
  if (!logits.device().is_cpu() || (logits.scalar_type() != at::kFloat && logits.scalar_type() != at::kDouble) || logits.dim() != 3 ||
      tokens.dim() != 2 || tokens.scalar_type() != at::kLong || !tokens.device().is_cpu() || tokens.size(0) != logits.size(0) ||
      tokens.size(1) != logits.size(1) || logits.size(1) < 2 || logits.numel() == 0)
    return next_token_ce_reference(logits, tokens);
  return NextTokenCeFn::apply(logits, tokens);
}

}  // namespace moetb
