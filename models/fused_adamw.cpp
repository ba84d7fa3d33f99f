// Fused AdamW (fused_adamw.h). Per element, in float, exactly the sequence of LibTorch
// 1.13's AdamW::step (torch/csrc/api/src/optim/adamw.cpp):
//   p *= 1 - lr wd;  m = m b1 + (1 - b1) g;  v = v b2 + (1 - b2) g g;
//   p += -(lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
// Large parameters are split over the intra-op threads (element-wise: same values).
#include "models/fused_adamw.h"
#include "models/parallel_blas.h"

#include <ATen/ops/zeros_like.h>
#include <c10/core/GradMode.h>
#include <c10/util/string_utils.h>

#include <cmath>
#include <memory>

namespace moetb {
namespace {

// One parameter's update. Cloned for AVX-512, AVX2 and baseline x86-64 (picked at load
// time by the CPU), and compiled without errno for sqrt, so the loop vectorises.
__attribute__((target_clones("avx512f", "avx2", "default"), optimize("no-math-errno")))
void adamw_loop(float* __restrict pp, const float* __restrict gp, float* __restrict m, float* __restrict v, int64_t n, float decay,
                float fb1, float fb2, float a1, float a2, float sqrt_bc2, float eps, float step_size, float grad_scale) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gp[i] * grad_scale;  // the clipped gradient, as mul_ would have stored it (x * 1 = x)
    const float pi = pp[i] * decay;  // decay is exactly 1 without weight decay
    const float mi = m[i] * fb1 + a1 * g;
    const float vi = v[i] * fb2 + a2 * g * g;  // addcmul_: self + value * t1 * t2
    m[i] = mi;
    v[i] = vi;
    pp[i] = pi + step_size * mi / (std::sqrt(vi) / sqrt_bc2 + eps);  // addcdiv_: self + value * t1 / t2
  }
}

}  // namespace

bool fused_adamw_step(torch::optim::AdamW& opt, float grad_scale) {
  const auto unfused = [&] {
    if (grad_scale != 1.0f) {
      const c10::NoGradGuard no_grad;
      for (auto& group : opt.param_groups())
        for (auto& p : group.params())
          if (p.grad().defined()) p.mutable_grad().mul_(grad_scale);
    }
    opt.step();
    return false;
  };
  for (auto& group : opt.param_groups()) {
    if (static_cast<torch::optim::AdamWOptions&>(group.options()).amsgrad()) return unfused();
    for (const auto& p : group.params())
      if (p.grad().defined() && (!p.device().is_cpu() || p.scalar_type() != at::kFloat || !p.is_contiguous() ||
                                 !p.grad().is_contiguous() || p.grad().scalar_type() != at::kFloat))
        return unfused();
  }
  const c10::NoGradGuard no_grad;
  auto& state = opt.state();
  for (auto& group : opt.param_groups()) {
    const auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
    const double lr = o.lr(), b1 = std::get<0>(o.betas()), b2 = std::get<1>(o.betas());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const std::string key = c10::guts::to_string(p.unsafeGetTensorImpl());
      auto it = state.find(key);
      if (it == state.end()) {
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(0);
        s->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
        s->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
        it = state.emplace(key, std::move(s)).first;
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
      s.step(s.step() + 1);
      const double bc1 = 1 - std::pow(b1, static_cast<double>(s.step())), bc2 = 1 - std::pow(b2, static_cast<double>(s.step()));
      const float decay = static_cast<float>(1 - lr * o.weight_decay());
      const float fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2);
      const float a1 = static_cast<float>(1 - b1), a2 = static_cast<float>(1 - b2);
      const float sqrt_bc2 = static_cast<float>(std::sqrt(bc2)), eps = static_cast<float>(o.eps());
      const float step_size = static_cast<float>(-(lr / bc1));
      float *pp = p.data_ptr<float>(), *m = s.exp_avg().data_ptr<float>(), *v = s.exp_avg_sq().data_ptr<float>();
      const float* g = p.grad().data_ptr<float>();
      const int64_t n = p.numel();
      // Element-wise, so splitting a large parameter over the threads changes no value.
      const int threads = n >= (int64_t{1} << 15) ? blas::loop_threads() : 1;
      blas::parallel_chunks(n, threads, [&](int, int64_t i0, int64_t i1) {
        adamw_loop(pp + i0, g + i0, m + i0, v + i0, i1 - i0, o.weight_decay() != 0 ? decay : 1.0f, fb1, fb2, a1, a2, sqrt_bc2, eps,
                   step_size, grad_scale);
      });
    }
  }
  return true;
}

}  // namespace moetb
