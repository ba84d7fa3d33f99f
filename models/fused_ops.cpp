// Fused RMSNorm, rotary embedding and SwiGLU activation (fused_ops.h). Each is a
// torch::autograd::Function whose forward and backward are single loops over rows, written
// so the compiler vectorises the inner loop (cloned per CPU; the sigmoid from fused_math.h);
// RMSNorm's rows are split over the intra-op threads (parallel_blas.h).
// Gradients (y = x r w, r = (mean(x^2) + eps)^-1/2, g = dy w):
//   dx = r g - x r^3 mean(g x),  dw = sum over rows of dy x r;
//   rope: dx1 = dy1 cos + dy2 sin, dx2 = dy2 cos - dy1 sin;
//   swiglu: y = a s(a) b: da = dy b s (1 + a (1 - s)), db = dy a s.
#include "models/fused_ops.h"

#include "models/fused_kernels.h"
#include "common/fused_math.h"
#include "models/parallel_blas.h"

#include <ATen/Dispatch.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/baddbmm.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <limits>

namespace moetb {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool fusable(const at::Tensor& t) {
  return t.device().is_cpu() && (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble);
}

// The per-row loops, as always-inline templates; the float versions are cloned for AVX-512,
// AVX2 and baseline x86-64 (picked at load time by the CPU), so the inner loops vectorise.
template <typename T>
__attribute__((always_inline)) inline void rms_forward_impl(const T* xp, const T* wp, T* yp, T* rp, int64_t n, int64_t D, double eps) {
  for (int64_t i = 0; i < n; ++i) {
    const T* xr = xp + i * D;
    const T ss = fused::dot16(xr, xr, static_cast<const T*>(nullptr), D);
    const T ri = static_cast<T>(1.0 / std::sqrt(static_cast<double>(ss / static_cast<T>(D)) + eps));
    rp[i] = ri;
    T* yr = yp + i * D;
    for (int64_t j = 0; j < D; ++j) yr[j] = xr[j] * ri * wp[j];
  }
}

// gw_acc: [D] zeroed; receives sum over rows of dy x r. gpass (nullptr: none) is the gradient
// of x arriving by another path (the residual stream), added in the same pass.
template <typename T>
__attribute__((always_inline)) inline void rms_backward_impl(const T* xp, const T* wp, const T* rp, const T* gp, const T* gpass, T* gxp,
                                                             T* gw_acc, int64_t n, int64_t D) {
  for (int64_t i = 0; i < n; ++i) {
    const T *xr = xp + i * D, *gr = gp + i * D;
    const T ri = rp[i];
    const T dot = fused::dot16(gr, wp, xr, D);  // sum_j dy_j w_j x_j
    for (int64_t j = 0; j < D; ++j) gw_acc[j] += gr[j] * xr[j] * ri;
    const T c = ri * ri * ri * dot / static_cast<T>(D);
    T* gxr = gxp + i * D;
    if (gpass == nullptr) {
      for (int64_t j = 0; j < D; ++j) gxr[j] = ri * gr[j] * wp[j] - xr[j] * c;
    } else {
      const T* pr = gpass + i * D;
      for (int64_t j = 0; j < D; ++j) {
        const T v = ri * gr[j] * wp[j] - xr[j] * c;
        gxr[j] = v + pr[j];
      }
    }
  }
}

// y = silu(a) b over rows [a | b] of 2F, and its backward with sigmoid(a) recomputed from h.
template <typename T>
__attribute__((always_inline)) inline void swiglu_forward_act_impl(const T* hp, T* yp, int64_t n, int64_t F) {
  for (int64_t i = 0; i < n; ++i) {
    const T *a = hp + i * 2 * F, *b = a + F;
    T* yr = yp + i * F;
    for (int64_t j = 0; j < F; ++j) yr[j] = a[j] * fused::sigmoid(a[j]) * b[j];
  }
}

template <typename T>
__attribute__((always_inline)) inline void swiglu_backward_from_h_impl(const T* hp, const T* gp, T* ghp, int64_t n, int64_t F) {
  for (int64_t i = 0; i < n; ++i) {
    const T *a = hp + i * 2 * F, *b = a + F, *g = gp + i * F;
    T *ga = ghp + i * 2 * F, *gb = ga + F;
    for (int64_t j = 0; j < F; ++j) {
      const T av = a[j], sv = fused::sigmoid(av);
      ga[j] = g[j] * b[j] * sv * (1 + av * (1 - sv));
      gb[j] = g[j] * av * sv;
    }
  }
}

// In place over h: each lane's a and b are read before its gradients are written there.
template <typename T>
__attribute__((always_inline)) inline void swiglu_backward_in_place_impl(T* hp, const T* __restrict gp, int64_t n, int64_t F) {
  for (int64_t i = 0; i < n; ++i) {
    T *a = hp + i * 2 * F, *b = a + F;
    const T* __restrict g = gp + i * F;
    for (int64_t j = 0; j < F; ++j) {
      const T av = a[j], bv = b[j], sv = fused::sigmoid(av);
      a[j] = g[j] * bv * sv * (1 + av * (1 - sv));
      b[j] = g[j] * av * sv;
    }
  }
}

#define MOETB_CLONED __attribute__((target_clones("avx512f", "avx2", "default")))
MOETB_CLONED void rms_forward(const float* xp, const float* wp, float* yp, float* rp, int64_t n, int64_t D, double eps) {
  rms_forward_impl(xp, wp, yp, rp, n, D, eps);
}
void rms_forward(const double* xp, const double* wp, double* yp, double* rp, int64_t n, int64_t D, double eps) {
  rms_forward_impl(xp, wp, yp, rp, n, D, eps);
}
MOETB_CLONED void rms_backward(const float* xp, const float* wp, const float* rp, const float* gp, const float* gpass, float* gxp, float* gw,
                               int64_t n, int64_t D) {
  rms_backward_impl(xp, wp, rp, gp, gpass, gxp, gw, n, D);
}
void rms_backward(const double* xp, const double* wp, const double* rp, const double* gp, const double* gpass, double* gxp, double* gw,
                  int64_t n, int64_t D) {
  rms_backward_impl(xp, wp, rp, gp, gpass, gxp, gw, n, D);
}
}  // namespace

namespace fused {  // the SwiGLU row loops, shared with fused_experts.cpp (fused_kernels.h)
MOETB_CLONED void swiglu_forward_act(const float* hp, float* yp, int64_t n, int64_t F) { swiglu_forward_act_impl(hp, yp, n, F); }
void swiglu_forward_act(const double* hp, double* yp, int64_t n, int64_t F) { swiglu_forward_act_impl(hp, yp, n, F); }
MOETB_CLONED void swiglu_backward_from_h(const float* hp, const float* gp, float* ghp, int64_t n, int64_t F) {
  swiglu_backward_from_h_impl(hp, gp, ghp, n, F);
}
void swiglu_backward_from_h(const double* hp, const double* gp, double* ghp, int64_t n, int64_t F) {
  swiglu_backward_from_h_impl(hp, gp, ghp, n, F);
}
MOETB_CLONED void swiglu_backward_in_place(float* hp, const float* gp, int64_t n, int64_t F) { swiglu_backward_in_place_impl(hp, gp, n, F); }
void swiglu_backward_in_place(double* hp, const double* gp, int64_t n, int64_t F) { swiglu_backward_in_place_impl(hp, gp, n, F); }
}  // namespace fused

namespace {
#undef MOETB_CLONED

// y = rms_norm(x) forward, and its backward from gy, with gpass (undefined: none) added.
at::Tensor rms_forward_tensor(const at::Tensor& x, const at::Tensor& w, double eps, at::Tensor& r) {
  const int64_t D = x.size(-1), n = x.numel() / D;
  at::Tensor y = at::empty_like(x);
  r = at::empty({n}, x.options());  // [n] 1/rms per row
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_rms_norm", [&] {
    const scalar_t *X = x.data_ptr<scalar_t>(), *W = w.data_ptr<scalar_t>();
    scalar_t *Y = y.data_ptr<scalar_t>(), *R = r.data_ptr<scalar_t>();
    blas::parallel_chunks(n, blas::loop_threads(), [&](int, int64_t i0, int64_t i1) {  // rows
      rms_forward(X + i0 * D, W, Y + i0 * D, R + i0, i1 - i0, D, eps);
    });
  });
  return y;
}
variable_list rms_backward_tensors(const at::Tensor& x, const at::Tensor& w, const at::Tensor& r, const at::Tensor& gy_in,
                                   const at::Tensor& gpass_in) {
  const at::Tensor gy = gy_in.contiguous(), gpass = gpass_in.defined() ? gpass_in.contiguous() : gpass_in;
  const int64_t D = x.size(-1), n = x.numel() / D;
  // Rows split over the threads; each chunk sums its own dw, added in chunk order (so one
  // thread count always gives the same sums, and one thread the plain row order).
  const int chunks = blas::chunks_for(n);
  at::Tensor gx = at::empty_like(x), gw_parts = at::zeros({chunks, D}, x.options());  // [chunks, D]
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_rms_norm_backward", [&] {
    const scalar_t *X = x.data_ptr<scalar_t>(), *W = w.data_ptr<scalar_t>(), *R = r.data_ptr<scalar_t>(), *G = gy.data_ptr<scalar_t>();
    const scalar_t* GP = gpass.defined() ? gpass.data_ptr<scalar_t>() : nullptr;
    scalar_t *GX = gx.data_ptr<scalar_t>(), *GW = gw_parts.data_ptr<scalar_t>();
    blas::parallel_chunks(n, chunks, [&](int t, int64_t i0, int64_t i1) {
      rms_backward(X + i0 * D, W, R + i0, G + i0 * D, GP ? GP + i0 * D : nullptr, GX + i0 * D, GW + t * D, i1 - i0, D);
    });
    for (int t = 1; t < chunks; ++t)
      for (int64_t j = 0; j < D; ++j) GW[j] += GW[t * D + j];
  });
  return {gx, gw_parts[0]};
}

struct RmsNormFn : public torch::autograd::Function<RmsNormFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& w_in, double eps) {
    const at::Tensor x = x_in.contiguous(), w = w_in.contiguous();
    at::Tensor r;
    at::Tensor y = rms_forward_tensor(x, w, eps, r);
    ctx->save_for_backward({x, w, r});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const variable_list g = rms_backward_tensors(saved[0], saved[1], saved[2], grads[0], at::Tensor());
    return {g[0], g[1], at::Tensor()};
  }
};

// {x, rms_norm(x)}: x passed through, so that its gradient from the residual stream and the
// norm's own arrive at one node and are added in the norm's backward pass (otherwise the
// autograd engine adds the two [n, D] gradients as a separate tensor op).
struct RmsNormPassFn : public torch::autograd::Function<RmsNormPassFn> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& w_in, double eps) {
    const at::Tensor x = x_in.contiguous(), w = w_in.contiguous();
    at::Tensor r;
    at::Tensor y = rms_forward_tensor(x, w, eps, r);
    ctx->save_for_backward({x, w, r});
    ctx->set_materialize_grads(false);
    return {x_in, y};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    if (!grads[1].defined()) return {grads[0], at::Tensor(), at::Tensor()};  // only the pass-through was used
    const variable_list g = rms_backward_tensors(saved[0], saved[1], saved[2], grads[1], grads[0]);
    return {g[0], g[1], at::Tensor()};
  }
};

// out = rotate(x) (sign = +1) or its transpose (sign = -1, the backward).
void rope_apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, at::Tensor& out, int sign) {
  const int64_t B = x.size(0), H = x.size(1), S = x.size(2), hd = x.size(3), half = hd / 2;
  const int64_t sb = x.stride(0), sh = x.stride(1), ss = x.stride(2);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_rope", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* cp = cos.data_ptr<scalar_t>();
    const scalar_t* snp = sin.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    const scalar_t sg = static_cast<scalar_t>(sign);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t s = 0; s < S; ++s) {
          const scalar_t* xr = xp + b * sb + h * sh + s * ss;
          scalar_t* o = op + ((b * H + h) * S + s) * hd;
          const scalar_t *c = cp + s * half, *sn = snp + s * half;
          for (int64_t i = 0; i < half; ++i) {
            const scalar_t x1 = xr[i], x2 = xr[i + half], si = sg * sn[i];
            o[i] = x1 * c[i] - x2 * si;
            o[i + half] = x1 * si + x2 * c[i];
          }
        }
  });
}

struct RopeFn : public torch::autograd::Function<RopeFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
    at::Tensor out = at::empty(x.sizes(), x.options());
    rope_apply(x, cos, sin, out, +1);
    ctx->save_for_backward({cos, sin});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor g = grads[0].stride(-1) == 1 ? grads[0] : grads[0].contiguous();
    at::Tensor gx = at::empty(g.sizes(), g.options());
    rope_apply(g, saved[0], saved[1], gx, -1);  // the inverse rotation
    return {gx, at::Tensor(), at::Tensor()};
  }
};

struct SwigluFn : public torch::autograd::Function<SwigluFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& h_in) {
    const at::Tensor h = h_in.contiguous();
    const int64_t n = h.size(0), F = h.size(1) / 2;
    at::Tensor y = at::empty({n, F}, h.options());  // [n, F]
    AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "fused_swiglu", [&] {
      fused::swiglu_forward_act(h.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), n, F);
    });
    ctx->save_for_backward({h});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& h = saved[0];
    const at::Tensor gy = grads[0].contiguous();
    const int64_t n = h.size(0), F = h.size(1) / 2;
    at::Tensor gh = at::empty_like(h);
    AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "fused_swiglu_backward", [&] {
      fused::swiglu_backward_from_h(h.data_ptr<scalar_t>(), gy.data_ptr<scalar_t>(), gh.data_ptr<scalar_t>(), n, F);
    });
    return {gh};
  }
};

}  // namespace

at::Tensor rms_norm_reference(const at::Tensor& x, const at::Tensor& weight, double eps) {
  return x * (x.pow(2).mean(-1, true) + eps).rsqrt() * weight;
}

at::Tensor rope_reference(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  const at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);  // [B, H, S, hd/2]
  return at::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1);
}

at::Tensor swiglu_act_reference(const at::Tensor& h) {
  const int64_t F = h.size(1) / 2;
  return at::silu(h.narrow(1, 0, F)) * h.narrow(1, F, F);
}

at::Tensor causal_scores_reference(const at::Tensor& q, const at::Tensor& k) {
  const int64_t S = q.size(2);
  const at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(q.size(3))));  // [B, H, S, S]
  return scores.masked_fill(at::ones({S, S}, q.options().dtype(at::kBool)).triu(1), -std::numeric_limits<float>::infinity());
}

at::Tensor causal_scores(const at::Tensor& q, const at::Tensor& k) {
  const int64_t B = q.size(0), H = q.size(1), S = q.size(2), hd = q.size(3);
  const at::Tensor future = at::ones({S, S}, q.options().dtype(at::kBool)).triu(1);
  const at::Tensor mask = at::zeros({S, S}, q.options()).masked_fill_(future, -std::numeric_limits<double>::infinity());  // [S, S]
  return at::baddbmm(mask.expand({B * H, S, S}), q.reshape({B * H, S, hd}), k.reshape({B * H, S, hd}).transpose(1, 2), 1.0,
                     1.0 / std::sqrt(static_cast<double>(hd)))
      .view({B, H, S, S});
}

at::Tensor fused_rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  if (!fusable(x) || weight.scalar_type() != x.scalar_type() || weight.dim() != 1 || x.size(-1) != weight.size(0) || x.numel() == 0)
    return rms_norm_reference(x, weight, eps);
  return RmsNormFn::apply(x, weight, eps);
}

namespace {

// Rows of an embedding table by id, and the table's gradient summed row by row in id order
// (index_add_'s order, so the same sums), columns split across threads.
struct EmbeddingFn : public torch::autograd::Function<EmbeddingFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& weight_in, const at::Tensor& ids_in) {
    const at::Tensor weight = weight_in.contiguous(), ids = ids_in.contiguous();
    const int64_t N = ids.numel(), V = weight.size(0), D = weight.size(1);
    const int64_t* id = ids.data_ptr<int64_t>();
    for (int64_t i = 0; i < N; ++i)
      if (id[i] < 0 || id[i] >= V)
        throw std::invalid_argument("embedding: token id " + std::to_string(id[i]) + " outside [0, " + std::to_string(V) + ")");
    at::Tensor out = at::empty({N, D}, weight.options());  // [N, D]
    AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "fused_embedding", [&] {
      const scalar_t* W = weight.data_ptr<scalar_t>();
      scalar_t* O = out.data_ptr<scalar_t>();
      blas::parallel_chunks(N, blas::chunks_for(N), [&](int, int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) std::copy(W + id[i] * D, W + (id[i] + 1) * D, O + i * D);
      });
    });
    ctx->save_for_backward({ids});
    ctx->saved_data["V"] = V;
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor ids = ctx->get_saved_variables()[0], g = grads[0].contiguous();  // [N], [N, D]
    const int64_t N = ids.numel(), D = g.size(1);
    at::Tensor dw = at::zeros({ctx->saved_data["V"].toInt(), D}, g.options());  // [V, D]
    const int64_t* id = ids.data_ptr<int64_t>();
    AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "fused_embedding_backward", [&] {
      const scalar_t* G = g.data_ptr<scalar_t>();
      scalar_t* dW = dw.data_ptr<scalar_t>();
      blas::parallel_chunks(D, blas::chunks_for(D), [&](int, int64_t j0, int64_t j1) {
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = j0; j < j1; ++j) dW[id[i] * D + j] += G[i * D + j];
      });
    });
    return {dw, at::Tensor()};
  }
};

}  // namespace

at::Tensor embedding_reference(const at::Tensor& weight, const at::Tensor& ids) { return weight.index_select(0, ids.reshape({-1})); }

at::Tensor fused_embedding(const at::Tensor& weight, const at::Tensor& ids) {
  if (!fusable(weight) || weight.dim() != 2 || ids.dim() != 1 || ids.scalar_type() != at::kLong || !ids.device().is_cpu() || ids.numel() == 0)
    return embedding_reference(weight, ids);
  return EmbeddingFn::apply(weight, ids);
}

std::pair<at::Tensor, at::Tensor> fused_rms_norm_pass(const at::Tensor& x, const at::Tensor& weight, double eps) {
  if (!fusable(x) || weight.scalar_type() != x.scalar_type() || weight.dim() != 1 || x.size(-1) != weight.size(0) || x.numel() == 0)
    return {x, rms_norm_reference(x, weight, eps)};
  const variable_list out = RmsNormPassFn::apply(x, weight, eps);
  return {out[0], out[1]};
}

at::Tensor fused_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  if (!fusable(x) || x.dim() != 4 || x.stride(-1) != 1 || cos.scalar_type() != x.scalar_type() || !cos.is_contiguous() ||
      !sin.is_contiguous() || cos.size(0) != x.size(2) || 2 * cos.size(1) != x.size(3) || x.numel() == 0)
    return rope_reference(x, cos, sin);
  return RopeFn::apply(x, cos, sin);
}

at::Tensor fused_swiglu_act(const at::Tensor& h) {
  if (!fusable(h) || h.dim() != 2 || h.size(1) % 2 != 0 || h.numel() == 0) return swiglu_act_reference(h);
  return SwigluFn::apply(h);
}

}  // namespace moetb
