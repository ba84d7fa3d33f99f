// Grouped expert SwiGLU (fused_experts.h). Expert e owns rows [o, o + n) of xs; with
// H = [X Wg | X Wu] ([n, 2F]), s = sigmoid(H_gate), A = silu(H_gate) H_up and Y = A Wd:
//   dWd = A^T dY,  dA = dY Wd^T,  dH = swiglu_backward(H, s, dA),
//   dWg = X^T dH_gate,  dWu = X^T dH_up,  dX = dH_gate Wg^T + dH_up Wu^T.
// Every product runs through blas_gemm.h on sub-blocks of whole-batch buffers; experts
// without rows get zero weight gradients.
#include "models/fused_experts.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "models/blas_gemm.h"
#include "models/fused_kernels.h"
#include "models/fused_ops.h"

namespace moetb {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using blas::gemm_rm;

struct GroupedSwigluFn : public torch::autograd::Function<GroupedSwigluFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& xs_in, const at::Tensor& wg_in, const at::Tensor& wu_in,
                            const at::Tensor& wd_in, const at::Tensor& counts) {
    const at::Tensor xs = xs_in.contiguous(), wg = wg_in.contiguous(), wu = wu_in.contiguous(), wd = wd_in.contiguous();
    const int64_t m = xs.size(0), d = xs.size(1), E = wg.size(0), F = wg.size(2);
    const int64_t* cnt = counts.data_ptr<int64_t>();
    at::Tensor h = at::empty({m, 2 * F}, xs.options());                                   // [m, 2F] packed gate | up
    at::Tensor s = at::empty({m, F}, xs.options()), a = at::empty({m, F}, xs.options());  // [m, F] sigmoid(gate), activation
    at::Tensor y = at::empty({m, d}, xs.options());                                       // [m, d]
    AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "fused_grouped_swiglu", [&] {
      const scalar_t *X = xs.data_ptr<scalar_t>(), *Wg = wg.data_ptr<scalar_t>(), *Wu = wu.data_ptr<scalar_t>(),
                     *Wd = wd.data_ptr<scalar_t>();
      scalar_t *H = h.data_ptr<scalar_t>(), *S = s.data_ptr<scalar_t>(), *A = a.data_ptr<scalar_t>(), *Y = y.data_ptr<scalar_t>();
      const scalar_t one = 1, zero = 0;
      for (int64_t e = 0, o = 0; e < E; o += cnt[e], ++e) {
        gemm_rm(false, false, cnt[e], F, d, one, X + o * d, d, Wg + e * d * F, F, zero, H + o * 2 * F, 2 * F);
        gemm_rm(false, false, cnt[e], F, d, one, X + o * d, d, Wu + e * d * F, F, zero, H + o * 2 * F + F, 2 * F);
      }
      fused::swiglu_forward(H, S, A, m, F);
      for (int64_t e = 0, o = 0; e < E; o += cnt[e], ++e)
        gemm_rm(false, false, cnt[e], d, F, one, A + o * F, F, Wd + e * F * d, d, zero, Y + o * d, d);
    });
    ctx->save_for_backward({xs, wg, wu, wd, h, s, a});
    ctx->saved_data["counts"] = counts;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &xs = saved[0], &wg = saved[1], &wu = saved[2], &wd = saved[3], &h = saved[4], &s = saved[5], &a = saved[6];
    const at::Tensor counts = ctx->saved_data["counts"].toTensor();
    const at::Tensor dy = grads[0].contiguous();  // [m, d]
    const int64_t m = xs.size(0), d = xs.size(1), E = wg.size(0), F = wg.size(2);
    const int64_t* cnt = counts.data_ptr<int64_t>();
    at::Tensor da = at::empty({m, F}, xs.options()), dh = at::empty({m, 2 * F}, xs.options()), dx = at::empty({m, d}, xs.options());
    at::Tensor dwg = at::empty_like(wg), dwu = at::empty_like(wu), dwd = at::empty_like(wd);  // [E, d, F], [E, F, d]
    AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "fused_grouped_swiglu_backward", [&] {
      const scalar_t *X = xs.data_ptr<scalar_t>(), *Wg = wg.data_ptr<scalar_t>(), *Wu = wu.data_ptr<scalar_t>(),
                     *Wd = wd.data_ptr<scalar_t>(), *H = h.data_ptr<scalar_t>(), *S = s.data_ptr<scalar_t>(), *A = a.data_ptr<scalar_t>(),
                     *dY = dy.data_ptr<scalar_t>();
      scalar_t *dA = da.data_ptr<scalar_t>(), *dH = dh.data_ptr<scalar_t>(), *dX = dx.data_ptr<scalar_t>();
      scalar_t *dWg = dwg.data_ptr<scalar_t>(), *dWu = dwu.data_ptr<scalar_t>(), *dWd = dwd.data_ptr<scalar_t>();
      const scalar_t one = 1, zero = 0;
      for (int64_t e = 0, o = 0; e < E; o += cnt[e], ++e) {
        if (cnt[e] == 0) {  // no rows: zero gradients
          std::fill(dWd + e * F * d, dWd + (e + 1) * F * d, zero);
          std::fill(dWg + e * d * F, dWg + (e + 1) * d * F, zero);
          std::fill(dWu + e * d * F, dWu + (e + 1) * d * F, zero);
          continue;
        }
        gemm_rm(true, false, F, d, cnt[e], one, A + o * F, F, dY + o * d, d, zero, dWd + e * F * d, d);
        gemm_rm(false, true, cnt[e], F, d, one, dY + o * d, d, Wd + e * F * d, d, zero, dA + o * F, F);
      }
      fused::swiglu_backward(H, S, dA, dH, m, F);
      for (int64_t e = 0, o = 0; e < E; o += cnt[e], ++e) {
        if (cnt[e] == 0) continue;
        gemm_rm(true, false, d, F, cnt[e], one, X + o * d, d, dH + o * 2 * F, 2 * F, zero, dWg + e * d * F, F);
        gemm_rm(true, false, d, F, cnt[e], one, X + o * d, d, dH + o * 2 * F + F, 2 * F, zero, dWu + e * d * F, F);
        gemm_rm(false, true, cnt[e], d, F, one, dH + o * 2 * F, 2 * F, Wg + e * d * F, F, zero, dX + o * d, d);
        gemm_rm(false, true, cnt[e], d, F, one, dH + o * 2 * F + F, 2 * F, Wu + e * d * F, F, one, dX + o * d, d);
      }
    });
    return {dx, dwg, dwu, dwd, at::Tensor()};
  }
};

}  // namespace

at::Tensor grouped_swiglu_reference(const at::Tensor& xs, const at::Tensor& w_gate, const at::Tensor& w_up, const at::Tensor& w_down,
                                    const at::Tensor& counts) {
  const std::vector<at::Tensor> gate_up = at::cat({w_gate, w_up}, 2).unbind(0), down = w_down.unbind(0);  // [d, 2F] per expert
  const at::Tensor c = counts.cpu();
  const int64_t* count = c.data_ptr<int64_t>();
  std::vector<at::Tensor> parts;  // per expert with rows: [count_e, d]
  for (int64_t e = 0, offset = 0; e < w_gate.size(0); offset += count[e], ++e) {
    if (count[e] == 0) continue;
    const auto i = static_cast<std::size_t>(e);
    parts.push_back(at::mm(fused_swiglu_act(at::mm(xs.narrow(0, offset, count[e]), gate_up[i])), down[i]));
  }
  return parts.empty() ? at::zeros({0, xs.size(1)}, xs.options()) : at::cat(parts, 0);
}

at::Tensor fused_grouped_swiglu(const at::Tensor& xs, const at::Tensor& w_gate, const at::Tensor& w_up, const at::Tensor& w_down,
                                const at::Tensor& counts) {
  const auto dt = xs.scalar_type();
  bool ok = xs.device().is_cpu() && (dt == at::kFloat || dt == at::kDouble) && xs.dim() == 2 && xs.size(0) > 0 && w_gate.dim() == 3 &&
            w_gate.scalar_type() == dt && w_up.scalar_type() == dt && w_down.scalar_type() == dt && w_up.sizes() == w_gate.sizes() &&
            w_gate.size(1) == xs.size(1) && w_down.dim() == 3 && w_down.size(0) == w_gate.size(0) && w_down.size(1) == w_gate.size(2) &&
            w_down.size(2) == xs.size(1) && w_gate.device().is_cpu() && counts.device().is_cpu() && counts.scalar_type() == at::kLong &&
            counts.dim() == 1 && counts.size(0) == w_gate.size(0) && counts.is_contiguous() && xs.size(0) <= INT_MAX &&
            2 * w_gate.size(2) <= INT_MAX && xs.size(1) <= INT_MAX;
  if (ok) {  // the counts cover exactly the m rows
    int64_t total = 0;
    for (int64_t e = 0; e < counts.size(0); ++e) {
      const int64_t c = counts.data_ptr<int64_t>()[e];
      ok = ok && c >= 0;
      total += c;
    }
    ok = ok && total == xs.size(0);
  }
  if (!ok) return grouped_swiglu_reference(xs, w_gate, w_up, w_down, counts);
  return GroupedSwigluFn::apply(xs, w_gate, w_up, w_down, counts);
}

}  // namespace moetb
