// The training step (train_step.h): forward, cross-entropy (fused_loss.h) + aux loss, one
// host read of the three losses, backward; clipping (CPU: one double pass per gradient for the
// norm, the factor applied inside the fused AdamW pass; elsewhere on the device, no sync) and
// the fused AdamW (fused_adamw.h). Shared by trainer and benchmark.
#include "models/train_step.h"

#include "common/fused_math.h"
#include "models/fused_adamw.h"
#include "models/fused_loss.h"

#include <ATen/ops/stack.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <limits>

namespace moetb {

MicroStep forward_backward(MoETransformerImpl& model, const at::Tensor& tokens, const at::Tensor& domains,
                           int64_t accum_steps, bool poison_nan) {
  MicroStep r;
  r.out = model.forward(tokens, domains, /*training=*/true);
  const at::Tensor ce = fused_next_token_ce(r.out.logits, tokens);  // [] nats, fused_loss.h
  at::Tensor loss = ce + r.out.aux_loss;                                                    // []
  if (poison_nan) loss = loss * std::numeric_limits<double>::quiet_NaN();
  const at::Tensor host = at::stack({loss.detach(), ce.detach(), r.out.aux_loss.detach()}).to(at::kDouble).cpu();  // [3], one sync
  const double* v = host.data_ptr<double>();
  r.loss = v[0];
  r.ce = v[1];
  r.aux = v[2];
  if (!std::isfinite(r.loss)) return r;
  (loss / static_cast<double>(accum_steps)).backward();
  return r;
}

void zero_grads(const std::vector<at::Tensor>& params) {
  for (const auto& p : params)
    if (p.grad().defined()) p.mutable_grad().reset();
}

namespace {

// sum of d[i]^2 in double, sixteen running sums in a fixed order (enough independent adds
// to keep up with memory; four were bound by the add latency), added pairwise at the end (fused::lanes_sum16);
// cloned per CPU and without contraction, so every clone gives the same bits.
__attribute__((target_clones("avx512f", "avx2", "default"), optimize("fp-contract=off")))
double sum_squares(const float* d, int64_t n) {
  double acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += static_cast<double>(d[i + j]) * static_cast<double>(d[i + j]);
  for (; i < n; ++i) acc[0] += static_cast<double>(d[i]) * static_cast<double>(d[i]);
  return fused::lanes_sum16(acc);
}

}  // namespace

double cpu_clip_scale(const std::vector<at::Tensor>& params, double max_norm) {
  double sq = 0.0;  // one pass per gradient in double, no temporaries; reading the norm costs no sync on the CPU
  for (const auto& p : params) {
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (!g.device().is_cpu() || g.scalar_type() != at::kFloat || !g.is_contiguous()) return -1.0;
    sq += sum_squares(g.data_ptr<float>(), g.numel());
  }
  const double norm = std::sqrt(sq);
  return norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
}

void clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  const c10::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return;
  const double cpu_scale = cpu_clip_scale(params, max_norm);
  if (cpu_scale >= 0.0) {
    if (cpu_scale != 1.0)
      for (auto& g : grads) g.mul_(cpu_scale);
    return;
  }
  std::vector<at::Tensor> squares;  // elsewhere (CUDA): stay on the device, no host sync
  for (const auto& g : grads) squares.push_back(g.to(at::kDouble).pow(2).sum());
  const at::Tensor norm = at::stack(squares).sum().sqrt();                            // [] double
  const at::Tensor scale = (max_norm / (norm + 1e-6)).clamp_max(1.0).to(at::kFloat);  // [] 1 when within the norm
  for (auto& g : grads) g.mul_(scale.to(g.scalar_type()));
}

void optimizer_step(torch::optim::AdamW& opt, const std::vector<at::Tensor>& params, double lr, double grad_clip) {
  for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  double scale = 1.0;  // on the CPU the clipping factor goes into the AdamW pass (no pass of its own)
  if (grad_clip > 0.0) {
    scale = cpu_clip_scale(params, grad_clip);
    if (scale < 0.0) {
      clip_grad_norm(params, grad_clip);
      scale = 1.0;
    }
  }
  fused_adamw_step(opt, static_cast<float>(scale));  // models/fused_adamw.h (falls back to scaling and opt.step())
}

}  // namespace moetb
