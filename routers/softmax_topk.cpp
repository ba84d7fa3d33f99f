// softmax -> top-k -> weights -> balance + z-loss as one autograd function (softmax_topk.h).
// Per row i of n, with p = softmax(l_i), lse_i = max_j l_ij + log(sum_j exp(l_ij - max)),
// the selected set S_i (k experts, descending p + bias) and Z_i = sum_{s in S_i} p_s:
//   w_ij = p_{s_j} / Z_i (renormalised, k > 1) or p_{s_j};
//   balance = E sum_e f_e mean_i p_ie, f_e the shares of (prior +) this batch's counts;
//   z = mean_i lse_i^2;  aux = cb balance + cz z.
// Backward, from gp [n, E], gw [n, k] and ga [] (any may be absent):
//   dp_ie = gp_ie + ga cb E f_e / n + [e = s_j] ((gw_ij - sum_m gw_im w_im) / Z_i or gw_ij),
//   dl_ie = p_ie (dp_ie - sum_e p_ie dp_ie) + ga cz (2 lse_i / n) p_ie
// (dz/dl_ie = 2 lse_i p_ie / n), so the backward needs no exp at all.
#include "routers/softmax_topk.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/full.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "common/fused_math.h"
#include "routers/balance.h"
#include "routers/router_internal.h"
#include "routers/router_kernels.h"

namespace moetb {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// y = exp(y) over a flat array (every value <= 0): one vectorised pass for all rows, which
// are too short (E = 8-64) for a vector loop each.
__attribute__((target_clones("avx512f", "avx2", "default"))) void exp_in_place(float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fused::exp_nonpositive(y[i]);
}
void exp_in_place(double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(y[i]);
}

// P [n, E] = softmax of the rows of L, lse [n] their log-sum-exp (finite logits).
template <typename T>
void softmax_rows(const T* L, T* P, T* lse, int64_t n, int64_t E) {
  for (int64_t i = 0; i < n; ++i) {  // the row max, shifted logits
    const T* l = L + i * E;
    T m = l[0];
    for (int64_t j = 1; j < E; ++j) m = l[j] > m ? l[j] : m;
    for (int64_t j = 0; j < E; ++j) P[i * E + j] = l[j] - m;
    lse[i] = m;
  }
  exp_in_place(P, n * E);
  for (int64_t i = 0; i < n; ++i) {
    T* p = P + i * E;
    T s = 0;
    for (int64_t j = 0; j < E; ++j) s += p[j];
    const T inv = T(1) / s;
    for (int64_t j = 0; j < E; ++j) p[j] *= inv;
    lse[i] += static_cast<T>(std::log(static_cast<double>(s)));
  }
}

struct SoftmaxTopkFn : public torch::autograd::Function<SoftmaxTopkFn> {
  // -> {probs [n, E], experts [n, k], weights [n, k], aux [], terms [2] double (balance, z),
  // counts [E] double}; experts, terms and counts carry no gradient.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits_in, const SoftmaxTopkOptions& opt) {
    const at::Tensor logits = logits_in.contiguous();
    const int64_t n = logits.size(0), E = logits.size(1), k = opt.top_k;
    at::Tensor probs = at::empty_like(logits), lse = at::empty({n}, logits.options());  // [n, E], [n]
    at::Tensor weights = at::empty({n, k}, logits.options());                            // [n, k]
    at::Tensor terms = at::empty({2}, logits.options().dtype(at::kDouble));               // [2]
    at::Tensor counts = at::zeros({E}, terms.options());                                  // [E]
    at::Tensor experts;                                                                   // [n, k]
    std::vector<double> f;  // [E] the shares f_e
    AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "softmax_topk", [&] {
      scalar_t *P = probs.data_ptr<scalar_t>(), *Lse = lse.data_ptr<scalar_t>(), *W = weights.data_ptr<scalar_t>();
      softmax_rows(logits.data_ptr<scalar_t>(), P, Lse, n, E);
      at::Tensor select = probs;  // [n, E]: selection only
      if (!opt.bias.empty()) {
        select = at::empty_like(probs);
        scalar_t* S = select.data_ptr<scalar_t>();
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < E; ++j) S[i * E + j] = P[i * E + j] + static_cast<scalar_t>(opt.bias[static_cast<std::size_t>(j)]);
      }
      experts = topk_indices(select, k);
      const int64_t* ids = experts.data_ptr<int64_t>();
      double* c = counts.data_ptr<double>();
      std::vector<double> mean_p(static_cast<std::size_t>(E), 0.0);
      double z = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const scalar_t* p = P + i * E;
        scalar_t total = 0;
        for (int64_t j = 0; j < k; ++j) {
          W[i * k + j] = p[ids[i * k + j]];
          total += W[i * k + j];
          c[ids[i * k + j]] += 1.0;
        }
        if (opt.renormalize && k > 1)
          for (int64_t j = 0; j < k; ++j) W[i * k + j] /= total;
        for (int64_t j = 0; j < E; ++j) mean_p[static_cast<std::size_t>(j)] += static_cast<double>(p[j]);
        z += static_cast<double>(Lse[i]) * static_cast<double>(Lse[i]);
      }
      f.assign(c, c + E);  // the counts, (+ prior), then their shares
      for (std::size_t e = 0; e < opt.prior_counts.size(); ++e) f[e] += opt.prior_counts[e];
      double all = 0.0, balance = 0.0;
      for (double x : f) all += x;
      for (std::size_t e = 0; e < f.size(); ++e) {
        f[e] /= all;
        balance += f[e] * mean_p[e] / static_cast<double>(n);
      }
      balance *= static_cast<double>(E);
      terms.data_ptr<double>()[0] = balance;
      terms.data_ptr<double>()[1] = z / static_cast<double>(n);
    });
    const double* t = terms.data_ptr<double>();
    at::Tensor aux = at::full({}, opt.balance_coef * t[0] + opt.z_loss_coef * t[1], logits.options());  // []
    ctx->mark_non_differentiable({experts, terms, counts});
    ctx->set_materialize_grads(false);  // outputs without a gradient arrive undefined, not as zeros
    ctx->save_for_backward({probs, experts, weights, lse});
    ctx->saved_data["f"] = at::from_blob(f.data(), {E}, at::kDouble).clone();
    ctx->saved_data["renormalize"] = opt.renormalize && k > 1;
    ctx->saved_data["balance_coef"] = opt.balance_coef;
    ctx->saved_data["z_loss_coef"] = opt.z_loss_coef;
    return {probs, experts, weights, aux, terms, counts};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto v = ctx->get_saved_variables();
    const at::Tensor &probs = v[0], &experts = v[1], &weights = v[2], &lse = v[3];
    const at::Tensor f = ctx->saved_data["f"].toTensor();
    const bool renormalize = ctx->saved_data["renormalize"].toBool();
    const int64_t n = probs.size(0), E = probs.size(1), k = experts.size(1);
    const at::Tensor gp = grads[0].defined() ? grads[0].contiguous() : at::Tensor();  // [n, E]
    const at::Tensor gw = grads[2].defined() ? grads[2].contiguous() : at::Tensor();  // [n, k]
    const double ga = grads[3].defined() ? grads[3].item<double>() : 0.0;
    const double gb = ga * ctx->saved_data["balance_coef"].toDouble(), gz = ga * ctx->saved_data["z_loss_coef"].toDouble();
    at::Tensor dl = at::empty_like(probs);  // [n, E]
    AT_DISPATCH_FLOATING_TYPES(probs.scalar_type(), "softmax_topk_backward", [&] {
      const scalar_t *P = probs.data_ptr<scalar_t>(), *W = weights.data_ptr<scalar_t>(), *Lse = lse.data_ptr<scalar_t>();
      const scalar_t* GP = gp.defined() ? gp.data_ptr<scalar_t>() : nullptr;
      const scalar_t* GW = gw.defined() ? gw.data_ptr<scalar_t>() : nullptr;
      const int64_t* ids = experts.data_ptr<int64_t>();
      std::vector<scalar_t> balance_grad(static_cast<std::size_t>(E));  // ga cb E f_e / n
      for (int64_t e = 0; e < E; ++e)
        balance_grad[static_cast<std::size_t>(e)] =
            static_cast<scalar_t>(gb * static_cast<double>(E) * f.data_ptr<double>()[e] / static_cast<double>(n));
      const auto z_scale = static_cast<scalar_t>(2.0 * gz / static_cast<double>(n));
      scalar_t* D = dl.data_ptr<scalar_t>();
      for (int64_t i = 0; i < n; ++i) {
        const scalar_t* p = P + i * E;
        scalar_t* dp = D + i * E;  // dp first, then dl over it
        for (int64_t e = 0; e < E; ++e) dp[e] = (GP ? GP[i * E + e] : scalar_t(0)) + balance_grad[static_cast<std::size_t>(e)];
        if (GW) {
          const scalar_t* g = GW + i * k;
          if (renormalize) {
            scalar_t total = 0, gww = 0;
            for (int64_t j = 0; j < k; ++j) {
              total += p[ids[i * k + j]];
              gww += g[j] * W[i * k + j];
            }
            for (int64_t j = 0; j < k; ++j) dp[ids[i * k + j]] += (g[j] - gww) / total;
          } else {
            for (int64_t j = 0; j < k; ++j) dp[ids[i * k + j]] += g[j];
          }
        }
        scalar_t dot = 0;
        for (int64_t e = 0; e < E; ++e) dot += p[e] * dp[e];
        const scalar_t zc = z_scale * Lse[i];
        for (int64_t e = 0; e < E; ++e) dp[e] = p[e] * (dp[e] - dot + zc);
      }
    });
    return {dl, at::Tensor()};
  }
};

// Whether every value is finite: x * 0 is 0 for finite x and NaN for an infinity or a NaN,
// so one vectorised sum tells.
__attribute__((target_clones("avx512f", "avx2", "default"))) bool all_finite(const float* x, int64_t n) {
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += x[i + j] * 0.0f;
  for (; i < n; ++i) acc[0] += x[i] * 0.0f;
  return fused::lanes_sum16(acc) == 0.0f;
}
bool all_finite(const double* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}
bool all_finite(const at::Tensor& t) {
  bool ok = true;
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "softmax_topk_finite", [&] { ok = all_finite(t.data_ptr<scalar_t>(), t.numel()); });
  return ok;
}

}  // namespace

SoftmaxTopk softmax_topk_reference(const at::Tensor& logits, const SoftmaxTopkOptions& opt) {
  SoftmaxTopk r;
  r.probs = at::softmax(logits, 1);  // [n, E]
  at::Tensor select = r.probs.detach();
  if (!opt.bias.empty())
    select = select.add(at::from_blob(const_cast<double*>(opt.bias.data()), {logits.size(1)}, at::kDouble).to(select.options()));
  r.experts = topk_indices(select, opt.top_k);
  RouterConfig cfg;
  cfg.renormalize = opt.renormalize;
  r.weights = combine_weights(r.probs.gather(1, r.experts), cfg);
  r.counts = expert_counts(r.experts, logits.size(1));
  std::vector<double> shares = r.counts;
  for (std::size_t e = 0; e < opt.prior_counts.size(); ++e) shares[e] += opt.prior_counts[e];
  const at::Tensor balance = counts_balance_loss(r.probs, shares), z = router_z_loss(logits);  // []
  r.aux_loss = balance.mul(opt.balance_coef).add(z.mul(opt.z_loss_coef));
  r.balance = balance.item<double>();
  r.z_loss = z.item<double>();
  return r;
}

SoftmaxTopk softmax_topk(const at::Tensor& logits, const SoftmaxTopkOptions& opt) {
  const int64_t E = logits.dim() == 2 ? logits.size(1) : 0;
  if (logits.dim() != 2 || logits.size(0) < 1 || opt.top_k < 1 || opt.top_k > E)
    throw std::invalid_argument("softmax_topk: logits must be [n >= 1, E >= top_k], got top_k " + std::to_string(opt.top_k));
  const auto bad_size = [&](const std::vector<double>& v) { return !v.empty() && static_cast<int64_t>(v.size()) != E; };
  if (bad_size(opt.bias) || bad_size(opt.prior_counts))
    throw std::invalid_argument("softmax_topk: bias and prior_counts must have E = " + std::to_string(E) + " entries");
  const bool fast = logits.device().is_cpu() && (logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kDouble) &&
                    all_finite(logits.contiguous());  // non-finite rows: ATen's softmax and its NaN rules
  if (!fast) return softmax_topk_reference(logits, opt);
  const variable_list out = SoftmaxTopkFn::apply(logits, opt);
  SoftmaxTopk r;
  r.probs = out[0];
  r.experts = out[1];
  r.weights = out[2];
  r.aux_loss = out[3];
  r.balance = out[4].data_ptr<double>()[0];
  r.z_loss = out[4].data_ptr<double>()[1];
  const double* c = out[5].data_ptr<double>();
  r.counts.assign(c, c + E);
  return r;
}

}  // namespace moetb
