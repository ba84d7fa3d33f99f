// Fused RMSNorm, rotary embedding and SwiGLU activation (fused_ops.h). Each is a
// torch::autograd::Function whose forward and backward are single loops over rows, written
// so the compiler vectorises the inner loop; the sigmoid uses ATen's vectorised kernel once.
// Gradients (y = x r w, r = (mean(x^2) + eps)^-1/2, g = dy w):
//   dx = r g - x r^3 mean(g x),  dw = sum over rows of dy x r;
//   rope: dx1 = dy1 cos + dy2 sin, dx2 = dy2 cos - dy1 sin;
//   swiglu: y = a s(a) b: da = dy b s (1 + a (1 - s)), db = dy a s.
#include "models/fused_ops.h"

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

#include <cmath>
#include <limits>
#include <vector>

namespace moetb {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool fusable(const at::Tensor& t) {
  return t.device().is_cpu() && (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble);
}

struct RmsNormFn : public torch::autograd::Function<RmsNormFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& w_in, double eps) {
    const at::Tensor x = x_in.contiguous(), w = w_in.contiguous();
    const int64_t D = x.size(-1), n = x.numel() / D;
    at::Tensor y = at::empty_like(x), r = at::empty({n}, x.options());  // r: [n] 1/rms per row
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_rms_norm", [&] {
      const scalar_t* xp = x.data_ptr<scalar_t>();
      const scalar_t* wp = w.data_ptr<scalar_t>();
      scalar_t* yp = y.data_ptr<scalar_t>();
      scalar_t* rp = r.data_ptr<scalar_t>();
      for (int64_t i = 0; i < n; ++i) {
        const scalar_t* xr = xp + i * D;
        scalar_t ss = 0;
        for (int64_t j = 0; j < D; ++j) ss += xr[j] * xr[j];
        const scalar_t ri = static_cast<scalar_t>(1.0 / std::sqrt(static_cast<double>(ss / static_cast<scalar_t>(D)) + eps));
        rp[i] = ri;
        scalar_t* yr = yp + i * D;
        for (int64_t j = 0; j < D; ++j) yr[j] = xr[j] * ri * wp[j];
      }
    });
    ctx->save_for_backward({x, w, r});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &r = saved[2];
    const at::Tensor gy = grads[0].contiguous();
    const int64_t D = x.size(-1), n = x.numel() / D;
    at::Tensor gx = at::empty_like(x), gw = at::zeros({D}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_rms_norm_backward", [&] {
      const scalar_t* xp = x.data_ptr<scalar_t>();
      const scalar_t* wp = w.data_ptr<scalar_t>();
      const scalar_t* rp = r.data_ptr<scalar_t>();
      const scalar_t* gp = gy.data_ptr<scalar_t>();
      scalar_t* gxp = gx.data_ptr<scalar_t>();
      std::vector<scalar_t> gw_acc(static_cast<std::size_t>(D), 0);
      for (int64_t i = 0; i < n; ++i) {
        const scalar_t *xr = xp + i * D, *gr = gp + i * D;
        const scalar_t ri = rp[i];
        scalar_t dot = 0;  // sum_j dy_j w_j x_j
        for (int64_t j = 0; j < D; ++j) {
          dot += gr[j] * wp[j] * xr[j];
          gw_acc[static_cast<std::size_t>(j)] += gr[j] * xr[j] * ri;
        }
        const scalar_t c = ri * ri * ri * dot / static_cast<scalar_t>(D);
        scalar_t* gxr = gxp + i * D;
        for (int64_t j = 0; j < D; ++j) gxr[j] = ri * gr[j] * wp[j] - xr[j] * c;
      }
      scalar_t* gwp = gw.data_ptr<scalar_t>();
      for (int64_t j = 0; j < D; ++j) gwp[j] = gw_acc[static_cast<std::size_t>(j)];
    });
    return {gx, gw, at::Tensor()};
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
    const at::Tensor s = at::sigmoid(h.narrow(1, 0, F)).contiguous();  // [n, F], ATen's vectorised exp
    at::Tensor y = at::empty({n, F}, h.options());
    AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "fused_swiglu", [&] {
      const scalar_t* hp = h.data_ptr<scalar_t>();
      const scalar_t* sp = s.data_ptr<scalar_t>();
      scalar_t* yp = y.data_ptr<scalar_t>();
      for (int64_t i = 0; i < n; ++i) {
        const scalar_t *a = hp + i * 2 * F, *b = a + F, *si = sp + i * F;
        scalar_t* yr = yp + i * F;
        for (int64_t j = 0; j < F; ++j) yr[j] = a[j] * si[j] * b[j];
      }
    });
    ctx->save_for_backward({h, s});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &h = saved[0], &s = saved[1];
    const at::Tensor gy = grads[0].contiguous();
    const int64_t n = h.size(0), F = h.size(1) / 2;
    at::Tensor gh = at::empty_like(h);
    AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "fused_swiglu_backward", [&] {
      const scalar_t* hp = h.data_ptr<scalar_t>();
      const scalar_t* sp = s.data_ptr<scalar_t>();
      const scalar_t* gp = gy.data_ptr<scalar_t>();
      scalar_t* ghp = gh.data_ptr<scalar_t>();
      for (int64_t i = 0; i < n; ++i) {
        const scalar_t *a = hp + i * 2 * F, *b = a + F, *si = sp + i * F, *g = gp + i * F;
        scalar_t *ga = ghp + i * 2 * F, *gb = ga + F;
        for (int64_t j = 0; j < F; ++j) {
          const scalar_t sv = si[j], av = a[j];
          ga[j] = g[j] * b[j] * sv * (1 + av * (1 - sv));
          gb[j] = g[j] * av * sv;
        }
      }
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
