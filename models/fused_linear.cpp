// y = x W (+ r), or y = x W^T for W stored [out, in], as one autograd function
// (fused_linear.h). With x as [N, in] rows:
//   forward:  y = r (copied per 64 rows) or nothing, then y += x W (rows split across threads;
//             for W [out, in] on a transposed copy, [in, out])
//   backward: dx = dy W^T: on W^T copied out once ([out, in]), or W itself when it is stored
//             [out, in]                                          (rows split across threads)
//             dW = x^T dy, or dy^T x for W [out, in]             (columns of dW split across threads)
//             dr = dy
// Each split depends only on the sizes and the thread count (parallel_blas.h), and no two
// threads write one value, so a run with the same threads gives the same numbers.
#include "models/fused_linear.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/matmul.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "models/blas_gemm.h"
#include "models/parallel_blas.h"

namespace moetb {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows per residual copy: as many as blas_gemm's row blocks, so the copy is still in cache
// when the product adds onto it (one clone of the whole residual first was 10% of the
// output projection's forward).
constexpr int64_t kResidualRows = 64;

struct LinearFn : public torch::autograd::Function<LinearFn> {
  // x: [N, in] contiguous, w: [in, out] (out_in false) or [out, in] (out_in true) contiguous,
  // r: [N, out] or empty (none) -> [N, out].
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& r, bool out_in) {
    const int64_t N = x.size(0), in = x.size(1), out = w.size(out_in ? 0 : 1);
    const bool has_r = r.numel() > 0;  // an empty tensor stands for none (apply takes defined tensors only)
    const at::Tensor rc = has_r ? r.contiguous() : r;
    at::Tensor y = at::empty({N, out}, x.options());  // [N, out]
    const at::Tensor wf = out_in ? w.t().contiguous() : w;  // [in, out]
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_linear", [&] {
      const scalar_t *X = x.data_ptr<scalar_t>(), *W = wf.data_ptr<scalar_t>();
      scalar_t* Y = y.data_ptr<scalar_t>();
      blas::parallel_chunks(N, blas::chunks_for(N), [&](int, int64_t i0, int64_t i1) {
        if (!has_r) {
          blas::gemm_rm(false, false, i1 - i0, out, in, scalar_t(1), X + i0 * in, in, W, out, scalar_t(0), Y + i0 * out, out);
          return;
        }
        const scalar_t* R = rc.data_ptr<scalar_t>();
        for (int64_t b0 = i0; b0 < i1; b0 += kResidualRows) {  // the residual's rows copied just before the product adds onto them
          const int64_t b1 = std::min(i1, b0 + kResidualRows);
          std::copy(R + b0 * out, R + b1 * out, Y + b0 * out);
          blas::gemm_rm(false, false, b1 - b0, out, in, scalar_t(1), X + b0 * in, in, W, out, scalar_t(1), Y + b0 * out, out);
        }
      });
    });
    ctx->save_for_backward({x, w});
    ctx->saved_data["residual"] = has_r;
    ctx->saved_data["out_in"] = out_in;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto v = ctx->get_saved_variables();
    const at::Tensor &x = v[0], &w = v[1];
    const bool out_in = ctx->saved_data["out_in"].toBool();
    const at::Tensor g = grads[0].contiguous();  // [N, out]
    const int64_t N = x.size(0), in = x.size(1), out = w.size(out_in ? 0 : 1);
    at::Tensor dx, dw;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_linear_backward", [&] {
      const scalar_t *X = x.data_ptr<scalar_t>(), *G = g.data_ptr<scalar_t>();
      if (ctx->needs_input_grad(0)) {
        const at::Tensor wt = out_in ? w : w.t().contiguous();  // [out, in]
        dx = at::empty({N, in}, x.options());                   // [N, in]
        const scalar_t* Wt = wt.data_ptr<scalar_t>();
        scalar_t* dX = dx.data_ptr<scalar_t>();
        blas::parallel_chunks(N, blas::chunks_for(N), [&](int, int64_t i0, int64_t i1) {
          blas::gemm_rm(false, false, i1 - i0, in, out, scalar_t(1), G + i0 * out, out, Wt, in, scalar_t(0), dX + i0 * in, in);
        });
      }
      if (ctx->needs_input_grad(1) && out_in) {
        dw = at::empty({out, in}, x.options());  // [out, in] = dy^T x
        scalar_t* dW = dw.data_ptr<scalar_t>();
        blas::parallel_chunks(in, blas::chunks_for(in), [&](int, int64_t j0, int64_t j1) {
          blas::gemm_rm(true, false, out, j1 - j0, N, scalar_t(1), G, out, X + j0, in, scalar_t(0), dW + j0, in);
        });
      } else if (ctx->needs_input_grad(1)) {
        dw = at::empty({in, out}, x.options());  // [in, out] = x^T dy
        scalar_t* dW = dw.data_ptr<scalar_t>();
        blas::parallel_chunks(out, blas::chunks_for(out), [&](int, int64_t j0, int64_t j1) {
          blas::gemm_rm(true, false, in, j1 - j0, N, scalar_t(1), X, in, G + j0, out, scalar_t(0), dW + j0, out);
        });
      }
    });
    const at::Tensor dr = ctx->saved_data["residual"].toBool() ? grads[0] : at::Tensor();
    return {dx, dw, dr, at::Tensor()};
  }
};

// The checks both entry points share: float32/64 CPU tensors of sizes int can hold, x's last
// dimension equal to w's `in` (dim in_dim), a residual of exactly the result's shape.
bool linear_fusable(const at::Tensor& x, const at::Tensor& w, const at::Tensor& residual, int64_t in_dim, std::vector<int64_t>& shape) {
  const auto dt = x.scalar_type();
  const bool shapes = x.dim() >= 1 && w.dim() == 2 && x.size(-1) == w.size(in_dim);
  shape = x.sizes().vec();  // the result's: [..., out]
  if (shapes) shape.back() = w.size(1 - in_dim);
  return shapes && x.device().is_cpu() && w.device().is_cpu() && (dt == at::kFloat || dt == at::kDouble) && w.scalar_type() == dt &&
         x.numel() > 0 && w.numel() > 0 && x.size(-1) <= INT_MAX && w.size(1 - in_dim) <= INT_MAX && x.numel() / x.size(-1) <= INT_MAX &&
         (!residual.defined() || (residual.device().is_cpu() && residual.scalar_type() == dt && residual.sizes().vec() == shape));
}

}  // namespace

at::Tensor linear_reference(const at::Tensor& x, const at::Tensor& w, const at::Tensor& residual) {
  const at::Tensor y = at::matmul(x, w);
  return residual.defined() ? y.add(residual) : y;
}

at::Tensor linear_t_reference(const at::Tensor& x, const at::Tensor& w) { return at::matmul(x, w.t()); }

at::Tensor fused_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& residual) {
  std::vector<int64_t> shape;
  if (!linear_fusable(x, w, residual, 0, shape)) return linear_reference(x, w, residual);
  const at::Tensor x2 = x.reshape({-1, x.size(-1)}).contiguous();  // [N, in]
  const at::Tensor r2 = residual.defined() ? residual.reshape({-1, w.size(1)}) : at::empty({0}, x.options());
  return LinearFn::apply(x2, w.contiguous(), r2, false).view(shape);
}

at::Tensor fused_linear_t(const at::Tensor& x, const at::Tensor& w) {
  std::vector<int64_t> shape;
  if (!linear_fusable(x, w, at::Tensor(), 1, shape)) return linear_t_reference(x, w);
  const at::Tensor x2 = x.reshape({-1, x.size(-1)}).contiguous();  // [N, in]
  return LinearFn::apply(x2, w.contiguous(), at::empty({0}, x.options()), true).view(shape);
}

}  // namespace moetb
