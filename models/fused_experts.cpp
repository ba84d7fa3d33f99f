// Grouped expert SwiGLU (fused_experts.h). Expert e owns rows [o, o + n) of xs; with
// H = [X Wg | X Wu] ([n, 2F]), A = silu(H_gate) H_up and Y = A Wd:
//   dWd = A^T dY,  dA = dY Wd^T,  dH = swiglu_backward(H, dA) (sigmoid recomputed from H),
//   dWg = X^T dH_gate,  dWu = X^T dH_up,  dX = dH [Wg | Wu]^T (= dH_gate Wg^T + dH_up Wu^T).
// dA and dX run on transposed copies of the expert's weights, made just before they are
// used, so that all nine products are libxsmm's (op(B) = B).
// Every product runs through blas_gemm.h on sub-blocks of whole-batch buffers; experts
// without rows get zero weight gradients. With several threads, groups of experts of about
// equal rows run side by side, each on one BLAS thread (parallel_blas.h).
#include "models/fused_experts.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/index_add.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <climits>
#include <functional>
#include <vector>

#include "models/blas_gemm.h"
#include "models/fused_kernels.h"
#include "models/fused_transpose.h"
#include "common/fused_math.h"
#include "models/fused_ops.h"
#include "models/parallel_blas.h"

namespace moetb {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using blas::gemm_rm;

// Experts [e0, e1), whose rows are [offset[e0], offset[e1]) of every buffer.
struct ExpertRange {
  int64_t e0, e1;
};

// Prefix sums of cnt: offset[e] is expert e's first row, offset[E] = m.
std::vector<int64_t> row_offsets(const int64_t* cnt, int64_t E) {
  std::vector<int64_t> o(static_cast<std::size_t>(E) + 1, 0);
  for (int64_t e = 0; e < E; ++e) o[static_cast<std::size_t>(e) + 1] = o[static_cast<std::size_t>(e)] + cnt[e];
  return o;
}

// Runs task(t, range) over groups of experts of about equal rows, group t on thread t
// (parallel_blas.h); one group of all experts with one thread.
void for_expert_groups(const int64_t* cnt, int64_t E, const std::function<void(int, ExpertRange)>& task) {
  const int threads = blas::loop_threads();
  if (threads == 1) {
    task(0, {0, E});
    return;
  }
  const std::vector<int64_t> b = blas::balanced_bounds(cnt, E, threads);
  blas::parallel_chunks(threads, threads, [&](int t, int64_t, int64_t) {
    const auto i = static_cast<std::size_t>(t);
    if (b[i] < b[i + 1]) task(t, {b[i], b[i + 1]});
  });
}

// The forward of experts r over xs [m, d] (rows grouped by cnt, first rows at off) into
// h [m, 2F] (packed gate | up), a [m, F] (activation) and y [m, d].
template <typename T>
void experts_forward_range(ExpertRange r, const int64_t* cnt, const int64_t* off, const T* X, const T* Wg, const T* Wu, const T* Wd,
                           T* H, T* A, T* Y, int64_t d, int64_t F) {
  for (int64_t e = r.e0, o = off[r.e0]; e < r.e1; o += cnt[e], ++e) {  // one expert at a time: its rows stay in cache
    gemm_rm(false, false, cnt[e], F, d, T(1), X + o * d, d, Wg + e * d * F, F, T(0), H + o * 2 * F, 2 * F);
    gemm_rm(false, false, cnt[e], F, d, T(1), X + o * d, d, Wu + e * d * F, F, T(0), H + o * 2 * F + F, 2 * F);
    fused::swiglu_forward_act(H + o * 2 * F, A + o * F, cnt[e], F);
    gemm_rm(false, false, cnt[e], d, F, T(1), A + o * F, F, Wd + e * F * d, d, T(0), Y + o * d, d);
  }
}

// The backward of experts r from dY [m, d]: dX [m, d] and the experts' weight gradients
// (zero for experts without rows); dA [m, F] and dH [m, 2F] are scratch. Each may be the
// buffer it is computed from (dA = A, dH = H, dX = X): per expert, every product and row
// loop reads a buffer's rows before the same rows are overwritten. WT [3 F d] is scratch for
// the expert's transposed weights: Wd^T [d, F], then [Wg | Wu]^T [2F, d], so that dA and dX
// are products with op(B) = B (libxsmm's kernels; dX one product over the packed dH).
template <typename T>
void experts_backward_range(ExpertRange r, const int64_t* cnt, const int64_t* off, const T* X, const T* Wg, const T* Wu, const T* Wd,
                            const T* H, const T* A, const T* dY, T* dA, T* dH, T* dX, T* dWg, T* dWu, T* dWd, T* WT, int64_t d,
                            int64_t F) {
  T *WdT = WT, *WguT = WT + d * F;
  for (int64_t e = r.e0, o = off[r.e0]; e < r.e1; o += cnt[e], ++e) {
    if (cnt[e] == 0) {  // no rows: zero gradients
      std::fill(dWd + e * F * d, dWd + (e + 1) * F * d, T(0));
      std::fill(dWg + e * d * F, dWg + (e + 1) * d * F, T(0));
      std::fill(dWu + e * d * F, dWu + (e + 1) * d * F, T(0));
      continue;
    }
    gemm_rm(true, false, F, d, cnt[e], T(1), A + o * F, F, dY + o * d, d, T(0), dWd + e * F * d, d);
    fused::transpose(Wd + e * F * d, d, WdT, F, F, d);  // [d, F]
    gemm_rm(false, false, cnt[e], F, d, T(1), dY + o * d, d, WdT, F, T(0), dA + o * F, F);
    if (dH == H)
      fused::swiglu_backward_in_place(dH + o * 2 * F, dA + o * F, cnt[e], F);
    else
      fused::swiglu_backward_from_h(H + o * 2 * F, dA + o * F, dH + o * 2 * F, cnt[e], F);
    gemm_rm(true, false, d, F, cnt[e], T(1), X + o * d, d, dH + o * 2 * F, 2 * F, T(0), dWg + e * d * F, F);
    gemm_rm(true, false, d, F, cnt[e], T(1), X + o * d, d, dH + o * 2 * F + F, 2 * F, T(0), dWu + e * d * F, F);
    fused::transpose(Wg + e * d * F, F, WguT, d, d, F);          // rows [0, F) of [2F, d]
    fused::transpose(Wu + e * d * F, F, WguT + F * d, d, d, F);  // rows [F, 2F)
    gemm_rm(false, false, cnt[e], d, 2 * F, T(1), dH + o * 2 * F, 2 * F, WguT, d, T(0), dX + o * d, d);
  }
}

// The experts' forward over xs [m, d] grouped by cnt: returns {h [m, 2F], a [m, F], y [m, d]}.
std::vector<at::Tensor> experts_forward(const at::Tensor& xs, const at::Tensor& wg, const at::Tensor& wu, const at::Tensor& wd,
                                        const int64_t* cnt) {
  const int64_t m = xs.size(0), d = xs.size(1), E = wg.size(0), F = wg.size(2);
  at::Tensor h = at::empty({m, 2 * F}, xs.options());                                   // [m, 2F] packed gate | up
  at::Tensor a = at::empty({m, F}, xs.options());                                       // [m, F] activation
  at::Tensor y = at::empty({m, d}, xs.options());                                       // [m, d]
  const std::vector<int64_t> off = row_offsets(cnt, E);
  AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "fused_grouped_swiglu", [&] {
    for_expert_groups(cnt, E, [&](int, ExpertRange r) {
      experts_forward_range<scalar_t>(r, cnt, off.data(), xs.data_ptr<scalar_t>(), wg.data_ptr<scalar_t>(), wu.data_ptr<scalar_t>(),
                                      wd.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), d,
                                      F);
    });
  });
  return {h, a, y};
}

// The experts' backward from dy [m, d]: returns {dxs [m, d], dwg, dwu, dwd}. With
// overwrite_saved, xs, h and a are the forward's own buffers, no longer needed: dxs, dH and
// dA are written over them (no fresh buffers, whose first writes miss the cache).
std::vector<at::Tensor> experts_backward(const at::Tensor& xs, const at::Tensor& wg, const at::Tensor& wu, const at::Tensor& wd,
                                         const at::Tensor& h, const at::Tensor& a, const int64_t* cnt,
                                         const at::Tensor& dy, bool overwrite_saved = false) {
  const int64_t m = xs.size(0), d = xs.size(1), E = wg.size(0), F = wg.size(2);
  at::Tensor da = overwrite_saved ? a : at::empty({m, F}, xs.options());          // [m, F]
  at::Tensor dh = overwrite_saved ? h : at::empty({m, 2 * F}, xs.options());      // [m, 2F]
  at::Tensor dx = overwrite_saved ? xs : at::empty({m, d}, xs.options());         // [m, d]
  at::Tensor dwg = at::empty_like(wg), dwu = at::empty_like(wu), dwd = at::empty_like(wd);  // [E, d, F], [E, F, d]
  const std::vector<int64_t> off = row_offsets(cnt, E);
  at::Tensor wt = at::empty({blas::loop_threads(), 3 * F * d}, xs.options());  // per group: one expert's transposed weights
  AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "fused_grouped_swiglu_backward", [&] {
    for_expert_groups(cnt, E, [&](int t, ExpertRange r) {
      experts_backward_range<scalar_t>(r, cnt, off.data(), xs.data_ptr<scalar_t>(), wg.data_ptr<scalar_t>(), wu.data_ptr<scalar_t>(),
                                       wd.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(), dy.data_ptr<scalar_t>(),
                                       da.data_ptr<scalar_t>(), dh.data_ptr<scalar_t>(), dx.data_ptr<scalar_t>(),
                                       dwg.data_ptr<scalar_t>(), dwu.data_ptr<scalar_t>(), dwd.data_ptr<scalar_t>(),
                                       wt.data_ptr<scalar_t>() + t * 3 * F * d, d, F);
    });
  });
  return {dx, dwg, dwu, dwd};
}

struct GroupedSwigluFn : public torch::autograd::Function<GroupedSwigluFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& xs_in, const at::Tensor& wg_in, const at::Tensor& wu_in,
                            const at::Tensor& wd_in, const at::Tensor& counts) {
    const at::Tensor xs = xs_in.contiguous(), wg = wg_in.contiguous(), wu = wu_in.contiguous(), wd = wd_in.contiguous();
    const auto f = experts_forward(xs, wg, wu, wd, counts.data_ptr<int64_t>());
    ctx->save_for_backward({xs, wg, wu, wd, f[0], f[1]});
    ctx->saved_data["counts"] = counts;
    return f[2];
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto v = ctx->get_saved_variables();
    const at::Tensor counts = ctx->saved_data["counts"].toTensor();
    const auto g = experts_backward(v[0], v[1], v[2], v[3], v[4], v[5], counts.data_ptr<int64_t>(), grads[0].contiguous());
    return {g[0], g[1], g[2], g[3], at::Tensor()};
  }
};

// The rows of xs that feed each token, in increasing row order (the order index_add_ adds
// them in): token t's rows are row[first[t] .. first[t + 1]). One counting pass over tokens.
struct TokenRows {
  at::Tensor first, row;  // [T + 1], [m] int64
};
TokenRows token_rows(const int64_t* tk, int64_t m, int64_t T) {
  TokenRows r{at::zeros({T + 1}, at::kLong), at::empty({m}, at::kLong)};
  int64_t *first = r.first.data_ptr<int64_t>(), *row = r.row.data_ptr<int64_t>();
  for (int64_t i = 0; i < m; ++i) ++first[tk[i] + 1];
  for (int64_t t = 0; t < T; ++t) first[t + 1] += first[t];
  std::vector<int64_t> next(first, first + T);
  for (int64_t i = 0; i < m; ++i) row[next[static_cast<std::size_t>(tk[i])]++] = i;
  return r;
}

// The routed layer's row loops, cloned per CPU so the inner loops vectorise (the order of
// the sums is the same for every clone and thread count):
//   gather_rows: O[t] = B[t] (B = nullptr: 0) + sum of R[i] w[i] (w = nullptr: 1) over token
//     t's rows i in increasing order, for t in [t0, t1): each output row written once, no
//     copy or zeroing pass before, the same sums as index_add_ onto B;
//   weight_grad_rows: dw[i] = <G[tk[i]], Y[i]> and dY[i] = G[tk[i]] w[i] for i in [i0, i1).
template <typename T>
__attribute__((always_inline)) inline void gather_rows_impl(T* __restrict O, const T* __restrict B, const T* __restrict R, const T* w,
                                                            const int64_t* first, const int64_t* row, int64_t t0, int64_t t1, int64_t d) {
  for (int64_t t = t0; t < t1; ++t) {
    T* __restrict o = O + t * d;
    if (B == nullptr)
      for (int64_t j = 0; j < d; ++j) o[j] = 0;
    else
      for (int64_t j = 0; j < d; ++j) o[j] = B[t * d + j];
    for (int64_t q = first[t]; q < first[t + 1]; ++q) {
      const T* __restrict r = R + row[q] * d;
      if (w == nullptr)
        for (int64_t j = 0; j < d; ++j) o[j] += r[j];
      else {
        const T wi = w[row[q]];
        for (int64_t j = 0; j < d; ++j) o[j] += r[j] * wi;
      }
    }
  }
}
template <typename T>
__attribute__((always_inline)) inline void weight_grad_rows_impl(const T* __restrict G, const T* Y, const T* w, const int64_t* tk, T* dY,
                                                                 T* __restrict dw, int64_t i0, int64_t i1, int64_t d) {
  for (int64_t i = i0; i < i1; ++i) {  // dY may be Y: each row is read (the dot) before it is written
    const T *g = G + tk[i] * d, *yr = Y + i * d;
    T* dyr = dY + i * d;
    const T wi = w[i];
    dw[i] = fused::dot16(g, yr, static_cast<const T*>(nullptr), d);
    for (int64_t j = 0; j < d; ++j) dyr[j] = g[j] * wi;
  }
}
// Without contraction: r[j] * wi is rounded before it is added (as index_add_ of the scaled
// rows does), in every clone.
__attribute__((target_clones("avx512f", "avx2", "default"), optimize("fp-contract=off")))
void gather_rows(float* O, const float* B, const float* R, const float* w, const int64_t* first, const int64_t* row, int64_t t0, int64_t t1,
                 int64_t d) {
  gather_rows_impl(O, B, R, w, first, row, t0, t1, d);
}
void gather_rows(double* O, const double* B, const double* R, const double* w, const int64_t* first, const int64_t* row, int64_t t0,
                 int64_t t1, int64_t d) {
  gather_rows_impl(O, B, R, w, first, row, t0, t1, d);
}
__attribute__((target_clones("avx512f", "avx2", "default")))
void weight_grad_rows(const float* G, const float* Y, const float* w, const int64_t* tk, float* dY, float* dw, int64_t i0, int64_t i1,
                      int64_t d) {
  weight_grad_rows_impl(G, Y, w, tk, dY, dw, i0, i1, d);
}
void weight_grad_rows(const double* G, const double* Y, const double* w, const int64_t* tk, double* dY, double* dw, int64_t i0, int64_t i1,
                      int64_t d) {
  weight_grad_rows_impl(G, Y, w, tk, dY, dw, i0, i1, d);
}

// The routed layer: gather x's rows by tokens, the experts, scale by w, add back into [T, d]
// in row order (the order index_add_ uses, so the sums are the same), per token.
struct RoutedSwigluFn : public torch::autograd::Function<RoutedSwigluFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& tokens_in, const at::Tensor& w_in,
                            const at::Tensor& wg_in, const at::Tensor& wu_in, const at::Tensor& wd_in, const at::Tensor& counts,
                            const at::Tensor& residual) {
    const at::Tensor x = x_in.contiguous(), tokens = tokens_in.contiguous(), w = w_in.contiguous();
    const at::Tensor wg = wg_in.contiguous(), wu = wu_in.contiguous(), wd = wd_in.contiguous();
    const int64_t T = x.size(0), d = x.size(1), m = tokens.size(0);
    const int64_t* tk = tokens.data_ptr<int64_t>();
    at::Tensor xs = at::empty({m, d}, x.options());  // [m, d] gathered rows
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_routed_gather", [&] {
      const scalar_t* X = x.data_ptr<scalar_t>();
      scalar_t* Xs = xs.data_ptr<scalar_t>();
      blas::parallel_chunks(m, blas::loop_threads(), [&](int, int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) std::copy(X + tk[i] * d, X + (tk[i] + 1) * d, Xs + i * d);
      });
    });
    const auto f = experts_forward(xs, wg, wu, wd, counts.data_ptr<int64_t>());
    const bool has_residual = residual.numel() > 0;  // an empty tensor stands for none (apply takes defined tensors only)
    const at::Tensor res = has_residual ? residual.contiguous() : residual;
    const TokenRows rows = token_rows(tk, m, T);
    at::Tensor out = at::empty({T, d}, x.options());  // [T, d]
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_routed_combine", [&] {
      const scalar_t *Y = f[2].data_ptr<scalar_t>(), *W = w.data_ptr<scalar_t>();
      const scalar_t* Rs = has_residual ? res.data_ptr<scalar_t>() : nullptr;
      scalar_t* O = out.data_ptr<scalar_t>();
      blas::parallel_chunks(T, blas::chunks_for(T), [&](int, int64_t t0, int64_t t1) {  // tokens: each row written by one thread
        gather_rows(O, Rs, Y, W, rows.first.data_ptr<int64_t>(), rows.row.data_ptr<int64_t>(), t0, t1, d);
      });
    });
    ctx->save_for_backward({xs, tokens, w, wg, wu, wd, f[0], f[1], f[2], rows.first, rows.row});
    ctx->saved_data["counts"] = counts;
    ctx->saved_data["T"] = T;
    ctx->saved_data["residual"] = has_residual;
    return out;
  }
  // The backward writes its gradients over the forward's own buffers (gathered rows, gate |
  // up, activation, expert outputs: see experts_backward), so it can run once per forward.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!ctx->saved_data.count("spent"),
                "fused routed experts: backward ran twice through the same graph (retain_graph is not supported: it reuses the "
                "forward's buffers)");
    ctx->saved_data["spent"] = true;
    const auto v = ctx->get_saved_variables();
    const at::Tensor &xs = v[0], &tokens = v[1], &w = v[2], &ys = v[8];
    const at::Tensor counts = ctx->saved_data["counts"].toTensor();
    const int64_t T = ctx->saved_data["T"].toInt(), m = xs.size(0), d = xs.size(1);
    const at::Tensor gout = grads[0].contiguous();  // [T, d]
    const int64_t* tk = tokens.data_ptr<int64_t>();
    const at::Tensor& dys = ys;  // [m, d]: dY written over the expert outputs, row by row after their dot
    at::Tensor dw = at::empty({m}, xs.options());  // [m]
    AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "fused_routed_combine_backward", [&] {
      const scalar_t *G = gout.data_ptr<scalar_t>(), *Y = ys.data_ptr<scalar_t>(), *W = w.data_ptr<scalar_t>();
      scalar_t *dY = dys.data_ptr<scalar_t>(), *dW = dw.data_ptr<scalar_t>();
      blas::parallel_chunks(m, blas::loop_threads(), [&](int, int64_t i0, int64_t i1) {
        weight_grad_rows(G, Y, W, tk, dY, dW, i0, i1, d);
      });
    });
    const auto g = experts_backward(xs, v[3], v[4], v[5], v[6], v[7], counts.data_ptr<int64_t>(), dys, /*overwrite_saved=*/true);
    at::Tensor dx = at::empty({T, d}, xs.options());  // [T, d]: each token's rows summed in row order, as in the forward
    AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "fused_routed_scatter", [&] {
      const scalar_t* dXs = g[0].data_ptr<scalar_t>();
      scalar_t* dX = dx.data_ptr<scalar_t>();
      blas::parallel_chunks(T, blas::chunks_for(T), [&](int, int64_t t0, int64_t t1) {
        gather_rows(dX, static_cast<const scalar_t*>(nullptr), dXs, static_cast<const scalar_t*>(nullptr), v[9].data_ptr<int64_t>(),
                    v[10].data_ptr<int64_t>(), t0, t1, d);
      });
    });
    const at::Tensor dresidual = ctx->saved_data["residual"].toBool() ? grads[0] : at::Tensor();  // out = residual + ...
    return {dx, at::Tensor(), dw, g[1], g[2], g[3], at::Tensor(), dresidual};
  }
};

bool counts_cover(const at::Tensor& counts, int64_t E, int64_t m) {
  if (!counts.device().is_cpu() || counts.scalar_type() != at::kLong || counts.dim() != 1 || counts.size(0) != E || !counts.is_contiguous())
    return false;
  int64_t total = 0;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t c = counts.data_ptr<int64_t>()[e];
    if (c < 0) return false;
    total += c;
  }
  return total == m;
}

bool experts_fusable(const at::Tensor& xs, const at::Tensor& w_gate, const at::Tensor& w_up, const at::Tensor& w_down) {
  const auto dt = xs.scalar_type();
  return xs.device().is_cpu() && (dt == at::kFloat || dt == at::kDouble) && xs.dim() == 2 && w_gate.dim() == 3 && w_gate.scalar_type() == dt &&
         w_up.scalar_type() == dt && w_down.scalar_type() == dt && w_up.sizes() == w_gate.sizes() && w_gate.size(1) == xs.size(1) &&
         w_down.dim() == 3 && w_down.size(0) == w_gate.size(0) && w_down.size(1) == w_gate.size(2) && w_down.size(2) == xs.size(1) &&
         w_gate.device().is_cpu() && w_up.device().is_cpu() && w_down.device().is_cpu() && xs.size(0) <= INT_MAX &&
         2 * w_gate.size(2) <= INT_MAX && xs.size(1) <= INT_MAX;
}

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
  if (!experts_fusable(xs, w_gate, w_up, w_down) || xs.size(0) == 0 || !counts_cover(counts, w_gate.size(0), xs.size(0)))
    return grouped_swiglu_reference(xs, w_gate, w_up, w_down, counts);
  return GroupedSwigluFn::apply(xs, w_gate, w_up, w_down, counts);
}

at::Tensor routed_swiglu_reference(const at::Tensor& x, const at::Tensor& tokens, const at::Tensor& w, const at::Tensor& w_gate,
                                   const at::Tensor& w_up, const at::Tensor& w_down, const at::Tensor& counts, const at::Tensor& residual) {
  const at::Tensor ys = grouped_swiglu_reference(x.index_select(0, tokens), w_gate, w_up, w_down, counts);  // [m, d]
  return (residual.defined() ? residual : at::zeros_like(x)).index_add(0, tokens, ys.mul(w.unsqueeze(1)));
}

at::Tensor fused_routed_swiglu(const at::Tensor& x, const at::Tensor& tokens, const at::Tensor& w, const at::Tensor& w_gate,
                               const at::Tensor& w_up, const at::Tensor& w_down, const at::Tensor& counts, const at::Tensor& residual) {
  const int64_t m = tokens.dim() == 1 ? tokens.size(0) : -1;
  bool ok = experts_fusable(x, w_gate, w_up, w_down) && m > 0 && tokens.scalar_type() == at::kLong && tokens.device().is_cpu() &&
            w.dim() == 1 && w.size(0) == m && w.scalar_type() == x.scalar_type() && w.device().is_cpu() &&
            counts_cover(counts, w_gate.size(0), m) &&
            (!residual.defined() || (residual.sizes() == x.sizes() && residual.scalar_type() == x.scalar_type() && residual.device().is_cpu()));
  if (ok) {
    const at::Tensor t = tokens.contiguous();
    const int64_t* tk = t.data_ptr<int64_t>();
    for (int64_t i = 0; i < m && ok; ++i) ok = tk[i] >= 0 && tk[i] < x.size(0);
  }
  if (!ok) return routed_swiglu_reference(x, tokens, w, w_gate, w_up, w_down, counts, residual);
  return RoutedSwigluFn::apply(x, tokens, w, w_gate, w_up, w_down, counts, residual.defined() ? residual : at::empty({0}, x.options()));
}

}  // namespace moetb
