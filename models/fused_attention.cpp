// Block-causal fused attention (fused_attention.h). Per (batch, head), with row blocks
// [r0, r1) of `block` rows and c = 1/sqrt(hd), everything row-major through BLAS gemm:
//   forward:  P[r0:r1, :r1] = softmax_causal(c Q[r0:r1] K[:r1]^T);  O[r0:r1] = P[r0:r1, :r1] V[:r1]
//             (K^T, and in the backward V^T, copied out once per head: OpenBLAS runs these
//             small products 1.4-3x faster with both operands untransposed)
//   backward: dP = dO[r0:r1] V[:r1]^T;  dS = P (dP - rowsum(P dP));  dQ[r0:r1] = c dS K[:r1]
//             and per column block [c0, c1): dK[c0:c1] = c dS[c0:, c0:c1]^T Q[c0:],
//             dV[c0:c1] = P[c0:, c0:c1]^T dO[c0:]
// P is zero above the diagonal inside the diagonal blocks and never read beyond them, so
// the products cover (nb + 1) / (2 nb) of the full S x S work for nb blocks. Heads run
// side by side on several threads, each on one BLAS thread (parallel_blas.h). The products
// stay with OpenBLAS (gemm_rm_blas): at these sizes its small-matrix kernels were 6% faster
// per layer than libxsmm's (docs/performance.md, the fifth round).
#include "models/fused_attention.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/matmul.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <functional>
#include <type_traits>

#include "models/blas_gemm.h"
#include "models/fused_transpose.h"
#include "common/fused_math.h"
#include "models/fused_ops.h"
#include "models/parallel_blas.h"

namespace moetb {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kDefaultBlock = 32;

// Softmax of rows r0 .. r0 + m of a block (row i at p + i ld holds scores for keys 0 .. n),
// each over its keys 0 .. r0 + i; the keys after the diagonal are set to 0. The exp, sum and
// scaling passes run over whole 16-lane groups (end: len rounded up, at most n), the keys
// past the diagonal inside the last group masked to 0 after the exp (which may give anything
// there), so the loops vectorise without a scalar exp tail; a NaN score still gives a NaN row.
template <typename T>
__attribute__((always_inline)) inline void causal_softmax_rows_impl(T* p, int64_t ld, int64_t r0, int64_t m, int64_t n) {
  for (int64_t i = 0; i < m; ++i) {
    T* x = p + i * ld;
    const int64_t len = r0 + i + 1, end = std::min(n, (len + 15) / 16 * 16);
    const T mx = fused::max16(x, len);
    T acc[16] = {};  // the exp and the sum in one pass, 16 lanes as in fused::sum16
    int64_t c = 0;
    for (; c + 16 <= end; c += 16)
      for (int j = 0; j < 16; ++j) {
        const T e = fused::exp_nonpositive(x[c + j] - mx);
        const T kept = c + j < len ? e : T(0);  // past the diagonal: whatever exp gave there
        x[c + j] = kept;
        acc[j] += kept;
      }
    for (; c < end; ++c) {
      x[c] = c < len ? fused::exp_nonpositive(x[c] - mx) : T(0);
      acc[0] += x[c];
    }
    const T inv = T(1) / fused::lanes_sum16(acc);
    for (c = 0; c < end; ++c) x[c] *= inv;
    for (c = end; c < n; ++c) x[c] = 0;
  }
}

// dS = P (dP - rowsum(P dP)) in place over dP, rows of n keys (P is 0 past the diagonal).
template <typename T>
__attribute__((always_inline)) inline void softmax_grad_rows_impl(const T* p, T* dp, int64_t ld, int64_t m, int64_t n) {
  for (int64_t i = 0; i < m; ++i) {
    const T* pr = p + i * ld;
    T* g = dp + i * ld;
    const T d = fused::dot16(pr, static_cast<const T*>(g), static_cast<const T*>(nullptr), n);
    for (int64_t c = 0; c < n; ++c) g[c] = pr[c] * (g[c] - d);
  }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void causal_softmax_rows(float* p, int64_t ld, int64_t r0, int64_t m, int64_t n) { causal_softmax_rows_impl(p, ld, r0, m, n); }
void causal_softmax_rows(double* p, int64_t ld, int64_t r0, int64_t m, int64_t n) { causal_softmax_rows_impl(p, ld, r0, m, n); }
__attribute__((target_clones("avx512f", "avx2", "default")))
void softmax_grad_rows(const float* p, float* dp, int64_t ld, int64_t m, int64_t n) { softmax_grad_rows_impl(p, dp, ld, m, n); }
void softmax_grad_rows(const double* p, double* dp, int64_t ld, int64_t m, int64_t n) { softmax_grad_rows_impl(p, dp, ld, m, n); }

// One (batch, head)'s [S, hd] matrix: base pointer and row stride.
template <typename T>
struct Mat {
  T* p;
  int64_t ld;
};
template <typename T>
Mat<T> head(const at::Tensor& t, int64_t b, int64_t h, int64_t dim_s, int64_t dim_h) {
  return {t.data_ptr<T>() + b * t.stride(0) + h * t.stride(dim_h), t.stride(dim_s)};
}

// One head's forward: P [S, S] (ld S) and O [S, hd] from Q, K, V [S, hd]; KT: [hd, S] scratch.
template <typename T>
void head_forward(Mat<const T> Q, Mat<const T> K, Mat<const T> V, Mat<T> O, T* P, T* KT, int64_t S, int64_t hd, int64_t bs) {
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(hd)));
  fused::transpose(K.p, K.ld, KT, S, S, hd);
  for (int64_t r0 = 0; r0 < S; r0 += bs) {
    const int64_t r1 = std::min(S, r0 + bs), m = r1 - r0;
    blas::gemm_rm_blas(false, false, m, r1, hd, scale, Q.p + r0 * Q.ld, Q.ld, KT, S, T(0), P + r0 * S, S);
    causal_softmax_rows(P + r0 * S, S, r0, m, r1);
    blas::gemm_rm_blas(false, false, m, hd, r1, T(1), P + r0 * S, S, V.p, V.ld, T(0), O.p + r0 * O.ld, O.ld);
  }
}

// One head's backward: dQ, dK, dV [S, hd] from dO and the saved P; scratch: dS [S, S] and
// VT [hd, S].
template <typename T>
void head_backward(Mat<const T> Q, Mat<const T> K, Mat<const T> V, Mat<const T> dO, const T* P, Mat<T> dQ, Mat<T> dK, Mat<T> dV,
                   T* dS, T* VT, int64_t S, int64_t hd, int64_t bs) {
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(hd)));
  fused::transpose(V.p, V.ld, VT, S, S, hd);
  for (int64_t r0 = 0; r0 < S; r0 += bs) {
    const int64_t r1 = std::min(S, r0 + bs), m = r1 - r0;
    blas::gemm_rm_blas(false, false, m, r1, hd, T(1), dO.p + r0 * dO.ld, dO.ld, VT, S, T(0), dS + r0 * S, S);
    softmax_grad_rows(P + r0 * S, dS + r0 * S, S, m, r1);
    blas::gemm_rm_blas(false, false, m, hd, r1, scale, dS + r0 * S, S, K.p, K.ld, T(0), dQ.p + r0 * dQ.ld, dQ.ld);
  }
  for (int64_t c0 = 0; c0 < S; c0 += bs) {
    const int64_t w = std::min(S, c0 + bs) - c0, rows = S - c0;
    blas::gemm_rm_blas(true, false, w, hd, rows, scale, dS + c0 * S + c0, S, Q.p + c0 * Q.ld, Q.ld, T(0), dK.p + c0 * dK.ld, dK.ld);
    blas::gemm_rm_blas(true, false, w, hd, rows, T(1), P + c0 * S + c0, S, dO.p + c0 * dO.ld, dO.ld, T(0), dV.p + c0 * dV.ld, dV.ld);
  }
}

template <typename T>
Mat<const T> cm(Mat<T> m) {
  return {m.p, m.ld};
}

// Runs task(chunk, b, h) for every head (b, h), chunk t's heads on its own thread.
void for_heads(int64_t n, const std::function<void(int, int64_t, int64_t)>& task, int64_t H) {
  blas::parallel_chunks(n, blas::chunks_for(n), [&](int t, int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) task(t, i / H, i % H);
  });
}

struct CausalAttentionFn : public torch::autograd::Function<CausalAttentionFn> {
  // q, k, v: [B, H, S, hd] -> out: [B, S, H, hd] contiguous.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t bs) {
    const int64_t B = q.size(0), H = q.size(1), S = q.size(2), hd = q.size(3);
    at::Tensor out = at::empty({B, S, H, hd}, q.options());
    at::Tensor probs = at::empty({B * H, S, S}, q.options());  // [B*H, S, S], filled at and below the diagonal blocks
    at::Tensor kt = at::empty({blas::chunks_for(B * H), hd, S}, q.options());  // [chunks, hd, S]: K^T per thread
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "fused_causal_attention", [&] {
      for_heads(B * H, [&](int t, int64_t b, int64_t h) {
        head_forward<scalar_t>(cm(head<scalar_t>(q, b, h, 2, 1)), cm(head<scalar_t>(k, b, h, 2, 1)), cm(head<scalar_t>(v, b, h, 2, 1)),
                               head<scalar_t>(out, b, h, 1, 2), probs.data_ptr<scalar_t>() + (b * H + h) * S * S,
                               kt.data_ptr<scalar_t>() + t * hd * S, S, hd, bs);
      }, H);
    });
    ctx->save_for_backward({q, k, v, probs});
    ctx->saved_data["block"] = bs;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &probs = saved[3];
    const int64_t bs = ctx->saved_data["block"].toInt();
    const at::Tensor g = grads[0].stride(-1) == 1 ? grads[0] : grads[0].contiguous();  // [B, S, H, hd]
    const int64_t B = q.size(0), H = q.size(1), S = q.size(2), hd = q.size(3);
    at::Tensor dq = at::empty({B, H, S, hd}, q.options()), dk = at::empty_like(dq), dv = at::empty_like(dq);
    const int chunks = blas::chunks_for(B * H);
    const int64_t per = S * S + hd * S;
    at::Tensor ds = at::empty({chunks * per}, q.options());  // per thread: dP then dS [S, S] and V^T [hd, S], per (batch, head)
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "fused_causal_attention_backward", [&] {
      for_heads(B * H, [&](int t, int64_t b, int64_t h) {
        head_backward<scalar_t>(cm(head<scalar_t>(q, b, h, 2, 1)), cm(head<scalar_t>(k, b, h, 2, 1)), cm(head<scalar_t>(v, b, h, 2, 1)),
                                cm(head<scalar_t>(g, b, h, 1, 2)), probs.data_ptr<scalar_t>() + (b * H + h) * S * S,
                                head<scalar_t>(dq, b, h, 2, 1), head<scalar_t>(dk, b, h, 2, 1), head<scalar_t>(dv, b, h, 2, 1),
                                ds.data_ptr<scalar_t>() + t * per, ds.data_ptr<scalar_t>() + t * per + S * S, S, hd, bs);
      }, H);
    });
    return {dq, dk, dv, at::Tensor()};
  }
};

// dst = rotate(src) by the angles of each row (sign -1: the inverse rotation); rows of hd.
// HALF > 0 fixes hd / 2 at compile time (the common head sizes), so each row is a few
// whole vectors with no loop bookkeeping; HALF = 0 takes it from `half`.
template <int HALF, typename T>
__attribute__((always_inline)) inline void rope_rows_impl(const T* src, int64_t lds, T* dst, int64_t ldd, const T* cos, const T* sin,
                                                          int64_t S, int64_t half, T sign) {
  const int64_t h = HALF > 0 ? HALF : half;
  for (int64_t s = 0; s < S; ++s) {
    const T *x = src + s * lds, *c = cos + s * h, *sn = sin + s * h;
    T* o = dst + s * ldd;
    for (int64_t i = 0; i < h; ++i) {
      const T x1 = x[i], x2 = x[i + h], si = sign * sn[i];
      o[i] = x1 * c[i] - x2 * si;
      o[i + h] = x1 * si + x2 * c[i];
    }
  }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void rope_rows_f(const float* src, int64_t lds, float* dst, int64_t ldd, const float* cos, const float* sin, int64_t S, int64_t half,
                 float sign) {
  switch (half) {
    case 16: rope_rows_impl<16>(src, lds, dst, ldd, cos, sin, S, half, sign); break;
    case 32: rope_rows_impl<32>(src, lds, dst, ldd, cos, sin, S, half, sign); break;
    default: rope_rows_impl<0>(src, lds, dst, ldd, cos, sin, S, half, sign);
  }
}
template <typename T>
void rope_rows(Mat<const T> src, Mat<T> dst, const T* cos, const T* sin, int64_t S, int64_t half, T sign) {
  if constexpr (std::is_same_v<T, float>)
    rope_rows_f(src.p, src.ld, dst.p, dst.ld, cos, sin, S, half, sign);
  else
    rope_rows_impl<0>(src.p, src.ld, dst.p, dst.ld, cos, sin, S, half, sign);
}

struct RopeAttentionFn : public torch::autograd::Function<RopeAttentionFn> {
  // qkv: [B, S, 3, H, hd] contiguous; cos, sin: [S, hd/2] -> [B, S, H * hd].
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin, int64_t bs) {
    const int64_t B = qkv.size(0), S = qkv.size(1), H = qkv.size(3), hd = qkv.size(4), D = H * hd;
    at::Tensor qr = at::empty({B, H, S, hd}, qkv.options()), kr = at::empty_like(qr);  // [B, H, S, hd] rotated q, k
    at::Tensor out = at::empty({B, S, D}, qkv.options());
    at::Tensor probs = at::empty({B * H, S, S}, qkv.options());  // [B*H, S, S]
    at::Tensor kt = at::empty({blas::chunks_for(B * H), hd, S}, qkv.options());  // [chunks, hd, S]: K^T per thread
    AT_DISPATCH_FLOATING_TYPES(qkv.scalar_type(), "fused_rope_attention", [&] {
      const scalar_t *base = qkv.data_ptr<scalar_t>(), *c = cos.data_ptr<scalar_t>(), *sn = sin.data_ptr<scalar_t>();
      for_heads(B * H, [&](int t, int64_t b, int64_t h) {
        const scalar_t* row = base + b * S * 3 * D + h * hd;
        const auto Q = head<scalar_t>(qr, b, h, 2, 1), K = head<scalar_t>(kr, b, h, 2, 1);
        rope_rows<scalar_t>({row, 3 * D}, Q, c, sn, S, hd / 2, 1);
        rope_rows<scalar_t>({row + D, 3 * D}, K, c, sn, S, hd / 2, 1);
        head_forward<scalar_t>(cm(Q), cm(K), {row + 2 * D, 3 * D}, {out.data_ptr<scalar_t>() + b * S * D + h * hd, D},
                               probs.data_ptr<scalar_t>() + (b * H + h) * S * S, kt.data_ptr<scalar_t>() + t * hd * S, S, hd, bs);
      }, H);
    });
    ctx->save_for_backward({qkv, qr, kr, probs, cos, sin});
    ctx->saved_data["block"] = bs;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &qkv = saved[0], &qr = saved[1], &kr = saved[2], &probs = saved[3], &cos = saved[4], &sin = saved[5];
    const int64_t bs = ctx->saved_data["block"].toInt();
    const at::Tensor g = grads[0].contiguous();  // [B, S, D]
    const int64_t B = qkv.size(0), S = qkv.size(1), H = qkv.size(3), hd = qkv.size(4), D = H * hd;
    at::Tensor dqkv = at::empty(qkv.sizes(), qkv.options());  // [B, S, 3, H, hd]
    const int chunks = blas::chunks_for(B * H);
    const int64_t per = S * S + 3 * S * hd;
    at::Tensor scratch = at::empty({chunks * per}, qkv.options());  // per thread: dS [S, S], dQ, dK [S, hd] and V^T [hd, S] of one head
    AT_DISPATCH_FLOATING_TYPES(qkv.scalar_type(), "fused_rope_attention_backward", [&] {
      const scalar_t *base = qkv.data_ptr<scalar_t>(), *c = cos.data_ptr<scalar_t>(), *sn = sin.data_ptr<scalar_t>();
      for_heads(B * H, [&](int t, int64_t b, int64_t h) {
        scalar_t *dS = scratch.data_ptr<scalar_t>() + t * per, *dq = dS + S * S, *dk = dq + S * hd, *vt = dk + S * hd;
        const int64_t off = b * S * 3 * D + h * hd;
        scalar_t* drow = dqkv.data_ptr<scalar_t>() + off;
        head_backward<scalar_t>(cm(head<scalar_t>(qr, b, h, 2, 1)), cm(head<scalar_t>(kr, b, h, 2, 1)), {base + off + 2 * D, 3 * D},
                                {g.data_ptr<scalar_t>() + b * S * D + h * hd, D}, probs.data_ptr<scalar_t>() + (b * H + h) * S * S,
                                {dq, hd}, {dk, hd}, {drow + 2 * D, 3 * D}, dS, vt, S, hd, bs);
        rope_rows<scalar_t>({dq, hd}, {drow, 3 * D}, c, sn, S, hd / 2, -1);  // the inverse rotation
        rope_rows<scalar_t>({dk, hd}, {drow + D, 3 * D}, c, sn, S, hd / 2, -1);
      }, H);
    });
    return {dqkv, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

bool fusable(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  for (const auto* t : {&q, &k, &v})
    if (!t->device().is_cpu() || t->scalar_type() != q.scalar_type() || t->dim() != 4 || t->sizes() != q.sizes() ||
        t->stride(-1) != 1 || t->stride(2) > INT_MAX)
      return false;
  return (q.scalar_type() == at::kFloat || q.scalar_type() == at::kDouble) && q.numel() > 0 &&
         q.size(1) * q.size(3) <= INT_MAX && q.size(2) * q.size(2) <= INT_MAX;
}

}  // namespace

at::Tensor causal_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return at::matmul(causal_scores_reference(q, k).softmax(-1), v);
}

at::Tensor rope_attention_reference(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t B = qkv.size(0), S = qkv.size(1), D = qkv.size(3) * qkv.size(4);
  const at::Tensor p = qkv.permute({2, 0, 3, 1, 4});  // [3, B, H, S, hd]
  const at::Tensor out = causal_attention_reference(rope_reference(p[0], cos, sin), rope_reference(p[1], cos, sin), p[2]);
  return out.transpose(1, 2).reshape({B, S, D});
}

at::Tensor fused_causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t block) {
  if (!fusable(q, k, v)) return causal_attention_reference(q, k, v);
  return CausalAttentionFn::apply(q, k, v, block > 0 ? block : kDefaultBlock).permute({0, 2, 1, 3});  // [B, H, S, hd]
}

}  // namespace moetb

namespace moetb {

at::Tensor fused_rope_attention(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin, int64_t block) {
  const bool ok = qkv.device().is_cpu() && (qkv.scalar_type() == at::kFloat || qkv.scalar_type() == at::kDouble) && qkv.dim() == 5 &&
                  qkv.size(2) == 3 && qkv.numel() > 0 && cos.scalar_type() == qkv.scalar_type() && sin.scalar_type() == qkv.scalar_type() &&
                  cos.dim() == 2 && cos.size(0) == qkv.size(1) && 2 * cos.size(1) == qkv.size(4) && sin.sizes() == cos.sizes() &&
                  3 * qkv.size(3) * qkv.size(4) <= INT_MAX && qkv.size(1) * qkv.size(1) <= INT_MAX;
  if (!ok) return rope_attention_reference(qkv, cos, sin);
  return RopeAttentionFn::apply(qkv.contiguous(), cos.contiguous(), sin.contiguous(), block > 0 ? block : kDefaultBlock);
}

}  // namespace moetb
