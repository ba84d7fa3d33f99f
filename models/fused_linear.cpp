// y = x W (+ r) as one autograd function (fused_linear.h). With x as [N, in] rows:
//   forward:  y = r (copied) or nothing, then y += x W          (rows split across threads)
//   backward: dx = dy W^T with W^T copied out once ([out, in]), (rows split across threads)
//             dW = x^T dy                                        (columns of dW split across threads)
//             dr = dy
// Each split depends only on the sizes and the thread count (parallel_blas.h), and no two
// threads write one value, so a run with the same threads gives the same numbers.
#include "models/fused_linear.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/matmul.h>
#include <torch/csrc/autograd/custom_function.h>

#include <climits>
#include <vector>

#include "models/blas_gemm.h"
#include "models/parallel_blas.h"

namespace moetb {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct LinearFn : public torch::autograd::Function<LinearFn> {
  // x: [N, in] contiguous, w: [in, out] contiguous, r: [N, out] or empty (none) -> [N, out].
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& r) {
    const int64_t N = x.size(0), in = x.size(1), out = w.size(1);
    const bool has_r = r.numel() > 0;  // an empty tensor stands for none (apply takes defined tensors only)
    at::Tensor y = has_r ? r.clone(at::MemoryFormat::Contiguous) : at::empty({N, out}, x.options());  // [N, out]
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_linear", [&] {
      const scalar_t *X = x.data_ptr<scalar_t>(), *W = w.data_ptr<scalar_t>();
      scalar_t* Y = y.data_ptr<scalar_t>();
      blas::parallel_chunks(N, blas::chunks_for(N), [&](int, int64_t i0, int64_t i1) {
        blas::gemm_rm(false, false, i1 - i0, out, in, scalar_t(1), X + i0 * in, in, W, out, scalar_t(has_r ? 1 : 0), Y + i0 * out, out);
      });
    });
    ctx->save_for_backward({x, w});
    ctx->saved_data["residual"] = has_r;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto v = ctx->get_saved_variables();
    const at::Tensor &x = v[0], &w = v[1];
    const at::Tensor g = grads[0].contiguous();  // [N, out]
    const int64_t N = x.size(0), in = x.size(1), out = w.size(1);
    at::Tensor dx, dw;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_linear_backward", [&] {
      const scalar_t *X = x.data_ptr<scalar_t>(), *G = g.data_ptr<scalar_t>();
      if (ctx->needs_input_grad(0)) {
        const at::Tensor wt = w.t().contiguous();  // [out, in]
        dx = at::empty({N, in}, x.options());      // [N, in]
        const scalar_t* Wt = wt.data_ptr<scalar_t>();
        scalar_t* dX = dx.data_ptr<scalar_t>();
        blas::parallel_chunks(N, blas::chunks_for(N), [&](int, int64_t i0, int64_t i1) {
          blas::gemm_rm(false, false, i1 - i0, in, out, scalar_t(1), G + i0 * out, out, Wt, in, scalar_t(0), dX + i0 * in, in);
        });
      }
      if (ctx->needs_input_grad(1)) {
        dw = at::empty({in, out}, x.options());  // [in, out]
        scalar_t* dW = dw.data_ptr<scalar_t>();
        blas::parallel_chunks(out, blas::chunks_for(out), [&](int, int64_t j0, int64_t j1) {
          blas::gemm_rm(true, false, in, j1 - j0, N, scalar_t(1), X, in, G + j0, out, scalar_t(0), dW + j0, out);
        });
      }
    });
    const at::Tensor dr = ctx->saved_data["residual"].toBool() ? grads[0] : at::Tensor();
    return {dx, dw, dr};
  }
};

}  // namespace

at::Tensor linear_reference(const at::Tensor& x, const at::Tensor& w, const at::Tensor& residual) {
  const at::Tensor y = at::matmul(x, w);
  return residual.defined() ? y.add(residual) : y;
}

at::Tensor fused_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& residual) {
  const auto dt = x.scalar_type();
  const bool shapes = x.dim() >= 1 && w.dim() == 2 && x.size(-1) == w.size(0);
  std::vector<int64_t> shape = x.sizes().vec();  // the result's: [..., out]
  if (shapes) shape.back() = w.size(1);
  const bool ok = shapes && x.device().is_cpu() && w.device().is_cpu() && (dt == at::kFloat || dt == at::kDouble) && w.scalar_type() == dt &&
                  x.numel() > 0 && w.numel() > 0 && x.size(-1) <= INT_MAX && w.size(1) <= INT_MAX && x.numel() / x.size(-1) <= INT_MAX &&
                  (!residual.defined() || (residual.device().is_cpu() && residual.scalar_type() == dt && residual.sizes().vec() == shape));
  if (!ok) return linear_reference(x, w, residual);
  const at::Tensor x2 = x.reshape({-1, x.size(-1)}).contiguous();  // [N, in]
  const at::Tensor r2 = residual.defined() ? residual.reshape({-1, w.size(1)}) : at::empty({0}, x.options());
  return LinearFn::apply(x2, w.contiguous(), r2).view(shape);
}

}  // namespace moetb
