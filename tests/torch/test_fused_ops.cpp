// The fused CPU paths (models/fused_ops.h, models/fused_adamw.h) against the ATen
// compositions they replace: forward values and gradients of RMSNorm, rotary embedding (on
// the strided view attention gives it), the packed SwiGLU activation, the causal scores, the
// embedding gather and the pass-through norm, in float64 (to 1e-12) and float32 (to fp32
// rounding); and the fused AdamW against torch::optim::AdamW over several steps with a
// changing learning rate (params and state);
// the step's gradient clipping (models/train_step.h) on a known norm; the block-causal
// attention (models/fused_attention.h) against softmax(causal scores) v; the fused next-token
// cross-entropy (models/fused_loss.h) against ATen's cross_entropy_loss; the grouped expert
// SwiGLU (models/fused_experts.h) against per-expert slices and products.
#include <ATen/ops/full.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/optim/adamw.h>
#include "tests/torch/torch_catch.h"

#include <functional>
#include <vector>

#include "models/fused_adamw.h"
#include "models/fused_attention.h"
#include "models/fused_experts.h"
#include "models/fused_loss.h"
#include "models/fused_ops.h"
#include "models/train_step.h"
#include "tests/torch/torch_test_util.h"

using namespace moetb;
using moetb_test::max_abs_diff;
using moetb_test::seeded_randn;

namespace {

using Fn = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

// Runs fn on fresh leaf copies of inputs, backpropagates sum(out * c); returns out and grads.
std::vector<at::Tensor> run(const Fn& fn, const std::vector<at::Tensor>& inputs, const at::Tensor& c) {
  std::vector<at::Tensor> leaves;
  for (const auto& t : inputs) leaves.push_back(t.detach().clone().requires_grad_(true));
  const at::Tensor out = fn(leaves);
  out.masked_fill(out.isinf(), 0.0).mul(c).sum().backward();
  std::vector<at::Tensor> r = {out.detach()};
  for (const auto& l : leaves) r.push_back(l.grad());
  return r;
}

void compare(const Fn& fused, const Fn& reference, const std::vector<at::Tensor>& inputs, const at::Tensor& c, double tol) {
  const auto a = run(fused, inputs, c), b = run(reference, inputs, c);
  REQUIRE(a[0].sizes() == b[0].sizes());
  CHECK(a[0].isinf().equal(b[0].isinf()));
  CHECK(max_abs_diff(a[0].masked_fill(a[0].isinf(), 0.0), b[0].masked_fill(b[0].isinf(), 0.0)) < tol);
  for (std::size_t i = 1; i < a.size(); ++i) {
    INFO("gradient of input " << i - 1);
    REQUIRE(a[i].defined());
    CHECK(max_abs_diff(a[i], b[i]) < tol);
  }
}

}  // namespace

TEST_CASE("fused ops: RMSNorm, rope, SwiGLU and causal scores equal the ATen path, forward and gradients", "[models]") {
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    const double tol = dtype == at::kDouble ? 1e-12 : 2e-5;
    INFO("dtype " << c10::toString(dtype));
    // RMSNorm over [2, 7, 24] with a non-trivial weight.
    const at::Tensor x = seeded_randn({2, 7, 24}, 1, dtype), w = seeded_randn({24}, 2, dtype);
    compare([](const auto& t) { return fused_rms_norm(t[0], t[1], 1e-6); },
            [](const auto& t) { return rms_norm_reference(t[0], t[1], 1e-6); }, {x, w}, seeded_randn({2, 7, 24}, 3, dtype), tol);
    // The pass-through norm {x, rms_norm(x)}: cotangents on both outputs (the residual
    // stream's gradient is added in the norm's pass), then on the norm alone and on x alone.
    const at::Tensor cr = seeded_randn({2, 7, 24}, 11, dtype), cn = seeded_randn({2, 7, 24}, 12, dtype);
    for (int used = 0; used < 3; ++used) {  // 0: both, 1: the norm only, 2: the pass-through only
      INFO("pass-through norm, outputs used " << used);
      std::vector<std::vector<at::Tensor>> got;
      for (const bool fused : {true, false}) {
        const at::Tensor xl = x.clone().requires_grad_(true), wl = w.clone().requires_grad_(true);
        const auto [res, y] = fused ? fused_rms_norm_pass(xl, wl, 1e-6) : std::make_pair(xl * 1.0, rms_norm_reference(xl, wl, 1e-6));
        const at::Tensor loss = used == 1 ? y.mul(cn).sum() : used == 2 ? res.mul(cr).sum() : res.mul(cr).sum() + y.mul(cn).sum();
        loss.backward();
        got.push_back({res.detach(), y.detach(), xl.grad(), wl.grad().defined() ? wl.grad() : at::zeros_like(w)});
      }
      for (std::size_t i = 0; i < got[0].size(); ++i) {
        INFO("output/gradient " << i);
        REQUIRE(got[0][i].defined());
        CHECK(max_abs_diff(got[0][i], got[1][i]) < tol);
      }
    }
    // Embedding rows by id, ids repeated (their gradients add up) and the last row unused.
    const at::Tensor table = seeded_randn({6, 24}, 13, dtype);
    const at::Tensor ids = at::tensor(std::vector<int64_t>{3, 0, 3, 4, 1, 3, 0, 2, 4});
    compare([&](const auto& t) { return fused_embedding(t[0], ids); }, [&](const auto& t) { return embedding_reference(t[0], ids); }, {table},
            seeded_randn({9, 24}, 14, dtype), tol);
    CHECK_THROWS_WITH(fused_embedding(table, at::tensor(std::vector<int64_t>{0, 6})), Catch::Contains("token id 6 outside [0, 6)"));
    CHECK_THROWS_WITH(fused_embedding(table, at::tensor(std::vector<int64_t>{-1})), Catch::Contains("token id -1"));
    // Rope on q of a packed qkv, as attention slices it: [B, S, 3, H, hd] -> [B, H, S, hd] view.
    const int64_t B = 2, S = 5, H = 3, hd = 8;
    const at::Tensor qkv = seeded_randn({B, S, 3, H, hd}, 4, dtype), ang = seeded_randn({S, hd / 2}, 5, dtype);
    const at::Tensor cos = ang.cos(), sin = ang.sin();
    compare([&](const auto& t) { return fused_rope(t[0].permute({2, 0, 3, 1, 4})[0], cos, sin); },
            [&](const auto& t) { return rope_reference(t[0].permute({2, 0, 3, 1, 4})[0], cos, sin); }, {qkv},
            seeded_randn({B, H, S, hd}, 6, dtype), tol);
    // SwiGLU on a packed [n, 2F] product.
    compare([](const auto& t) { return fused_swiglu_act(t[0]); }, [](const auto& t) { return swiglu_act_reference(t[0]); },
            {seeded_randn({9, 2 * 6}, 7, dtype)}, seeded_randn({9, 6}, 8, dtype), tol);
    // Causal scores, then softmax (what attention uses), and the raw scores with their -inf.
    const at::Tensor q = seeded_randn({B, H, S, hd}, 9, dtype), k = seeded_randn({B, H, S, hd}, 10, dtype);
    compare([](const auto& t) { return causal_scores(t[0], t[1]); }, [](const auto& t) { return causal_scores_reference(t[0], t[1]); },
            {q, k}, seeded_randn({B, H, S, S}, 11, dtype), tol);
    compare([](const auto& t) { return causal_scores(t[0], t[1]).softmax(-1); },
            [](const auto& t) { return causal_scores_reference(t[0], t[1]).softmax(-1); }, {q, k}, seeded_randn({B, H, S, S}, 12, dtype), tol);
  }
}

TEST_CASE("fused ops: block-causal attention equals softmax(causal scores) v, forward and gradients", "[models]") {
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    const double tol = dtype == at::kDouble ? 1e-12 : 2e-5;
    INFO("dtype " << c10::toString(dtype));
    // q, k, v sliced from one packed qkv as attention does (v keeps the strided view);
    // S = 45 is not a multiple of the blocks 7 and 16, one block (64 > S) and the default.
    const int64_t B = 2, S = 45, H = 3, hd = 8;
    const at::Tensor qkv = seeded_randn({B, S, 3, H, hd}, 21, dtype), c = seeded_randn({B, H, S, hd}, 22, dtype);
    for (const int64_t block : {int64_t{7}, int64_t{16}, int64_t{64}, int64_t{0}}) {
      INFO("block " << block);
      compare(
          [&](const auto& t) {
            const at::Tensor p = t[0].permute({2, 0, 3, 1, 4});  // [3, B, H, S, hd]
            return fused_causal_attention(p[0], p[1], p[2], block);
          },
          [](const auto& t) {
            const at::Tensor p = t[0].permute({2, 0, 3, 1, 4});
            return causal_attention_reference(p[0], p[1], p[2]);
          },
          {qkv}, c, tol);
    }
    // Rotary q, k and attention on the packed projection, as the model calls it.
    const at::Tensor ang = seeded_randn({S, hd / 2}, 27, dtype), cos = ang.cos(), sin = ang.sin();
    for (const int64_t block : {int64_t{16}, int64_t{0}}) {
      INFO("rope attention, block " << block);
      compare([&](const auto& t) { return fused_rope_attention(t[0], cos, sin, block); },
              [&](const auto& t) { return rope_attention_reference(t[0], cos, sin); }, {qkv}, seeded_randn({B, S, H * hd}, 28, dtype),
              tol);
    }
    // The model's head size 32 (rotary rows specialised for it) at S = 64, whole 8 x 8
    // transposes of K and V and whole 16-lane softmax rows.
    {
      INFO("rope attention, S 64, hd 32");
      const at::Tensor qkv32 = seeded_randn({1, 64, 3, 2, 32}, 29, dtype), ang32 = seeded_randn({64, 16}, 30, dtype);
      const at::Tensor cos32 = ang32.cos(), sin32 = ang32.sin();
      compare([&](const auto& t) { return fused_rope_attention(t[0], cos32, sin32, 0); },
              [&](const auto& t) { return rope_attention_reference(t[0], cos32, sin32); }, {qkv32}, seeded_randn({1, 64, 64}, 31, dtype),
              tol);
    }
    // Separate contiguous q, k, v; large scores (x 8) so the softmax is peaked; one row
    // (S = 1); S = 48 with hd = 8: whole 8 x 8 transposes.
    for (const int64_t s : {int64_t{33}, int64_t{1}, int64_t{48}}) {
      INFO("S " << s);
      compare([](const auto& t) { return fused_causal_attention(t[0], t[1], t[2], 16); },
              [](const auto& t) { return causal_attention_reference(t[0], t[1], t[2]); },
              {seeded_randn({1, 2, s, hd}, 23, dtype) * 8, seeded_randn({1, 2, s, hd}, 24, dtype), seeded_randn({1, 2, s, hd}, 25, dtype)},
              seeded_randn({1, 2, s, hd}, 26, dtype), tol * 10);
    }
  }
}

TEST_CASE("fused ops: next-token cross-entropy equals ATen's cross_entropy_loss, value and gradient", "[models]") {
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    const double tol = dtype == at::kDouble ? 1e-12 : 2e-6;
    for (const int64_t V : {int64_t{37}, int64_t{241}}) {  // a vocabulary that is not a multiple of 16, and the default run's
      INFO("dtype " << c10::toString(dtype) << ", V " << V);
      const int64_t B = 3, S = 9;
      const at::Tensor logits = seeded_randn({B, S, V}, 31, dtype) * 3, tokens = moetb_test::seeded_randint(V, {B, S}, 32);
      std::vector<at::Tensor> loss, grad;
      for (int fused = 0; fused < 2; ++fused) {
        const at::Tensor x = logits.clone().requires_grad_(true);
        const at::Tensor l = fused ? fused_next_token_ce(x, tokens) : next_token_ce_reference(x, tokens);
        (l * 1.7).backward();
        loss.push_back(l.detach());
        grad.push_back(x.grad());
      }
      CHECK(loss[0].dim() == 0);
      CHECK(loss[1].dim() == 0);
      CHECK(max_abs_diff(loss[0], loss[1]) < tol * 10);
      CHECK(max_abs_diff(grad[0], grad[1]) < tol);
      CHECK(grad[1].select(1, S - 1).abs().max().item<double>() == 0.0);  // no target follows the last position
    }
  }
  // A target outside the vocabulary is an error naming it.
  CHECK_THROWS_WITH(fused_next_token_ce(at::zeros({1, 3, 5}), at::full({1, 3}, 7, at::kLong)), Catch::Contains("target 7"));
}

TEST_CASE("fused ops: grouped expert SwiGLU equals the per-expert products, forward and gradients", "[models]") {
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    const double tol = dtype == at::kDouble ? 1e-12 : 2e-5;
    INFO("dtype " << c10::toString(dtype));
    const int64_t E = 4, d = 6, F = 5;
    const at::Tensor counts = at::tensor(std::vector<int64_t>{3, 0, 5, 2});  // expert 1 gets no rows
    const int64_t m = 10;
    compare([&](const auto& t) { return fused_grouped_swiglu(t[0], t[1], t[2], t[3], counts); },
            [&](const auto& t) { return grouped_swiglu_reference(t[0], t[1], t[2], t[3], counts); },
            {seeded_randn({m, d}, 41, dtype), seeded_randn({E, d, F}, 42, dtype), seeded_randn({E, d, F}, 43, dtype),
             seeded_randn({E, F, d}, 44, dtype)},
            seeded_randn({m, d}, 45, dtype), tol);
    // The routed form: 10 (token, expert) rows over 6 tokens (tokens repeat, one gets none), weighted.
    const at::Tensor tokens = at::tensor(std::vector<int64_t>{0, 2, 5, 1, 2, 3, 4, 5, 0, 3});
    compare([&](const auto& t) { return fused_routed_swiglu(t[0], tokens, t[1], t[2], t[3], t[4], counts); },
            [&](const auto& t) { return routed_swiglu_reference(t[0], tokens, t[1], t[2], t[3], t[4], counts); },
            {seeded_randn({7, d}, 46, dtype), seeded_randn({m}, 47, dtype).abs(), seeded_randn({E, d, F}, 42, dtype),
             seeded_randn({E, d, F}, 43, dtype), seeded_randn({E, F, d}, 44, dtype)},
            seeded_randn({7, d}, 48, dtype), tol);
    // Whole vector rows (d 16, F 32), where the backward writes its gradients over the
    // forward's buffers in vector steps (gradients of magnitude ~100 here: 10x the tolerance).
    compare([&](const auto& t) { return fused_routed_swiglu(t[0], tokens, t[1], t[2], t[3], t[4], counts); },
            [&](const auto& t) { return routed_swiglu_reference(t[0], tokens, t[1], t[2], t[3], t[4], counts); },
            {seeded_randn({7, 16}, 49, dtype), seeded_randn({m}, 50, dtype).abs(), seeded_randn({E, 16, 32}, 51, dtype),
             seeded_randn({E, 16, 32}, 52, dtype), seeded_randn({E, 32, 16}, 53, dtype)},
            seeded_randn({7, 16}, 54, dtype), tol * 10);
    // Starting from a residual instead of zeros: the same sum, and the residual's gradient.
    compare([&](const auto& t) { return fused_routed_swiglu(t[0], tokens, t[1], t[2], t[3], t[4], counts, t[5]); },
            [&](const auto& t) { return routed_swiglu_reference(t[0], tokens, t[1], t[2], t[3], t[4], counts, t[5]); },
            {seeded_randn({7, d}, 46, dtype), seeded_randn({m}, 47, dtype).abs(), seeded_randn({E, d, F}, 42, dtype),
             seeded_randn({E, d, F}, 43, dtype), seeded_randn({E, F, d}, 44, dtype), seeded_randn({7, d}, 59, dtype)},
            seeded_randn({7, d}, 48, dtype), tol);
  }
  // The routed backward reuses the forward's buffers, so a second backward through the same
  // graph (retain_graph) is refused with a message instead of giving wrong gradients.
  const at::Tensor tokens = at::tensor(std::vector<int64_t>{0, 1, 1});
  const at::Tensor x = seeded_randn({2, 4}, 55).requires_grad_(true);
  const at::Tensor y = fused_routed_swiglu(x, tokens, at::ones({3}), seeded_randn({2, 4, 3}, 56), seeded_randn({2, 4, 3}, 57),
                                           seeded_randn({2, 3, 4}, 58), at::tensor(std::vector<int64_t>{2, 1}));
  const at::Tensor loss = y.sum();
  loss.backward({}, /*retain_graph=*/true);
  CHECK_THROWS_WITH(loss.backward(), Catch::Contains("retain_graph is not supported"));
}

TEST_CASE("fused ops: fused AdamW follows torch::optim::AdamW step by step", "[models]") {
  std::vector<at::Tensor> a, b;
  for (int i = 0; i < 3; ++i) {
    const at::Tensor p = seeded_randn({5 + i, 7}, 20 + static_cast<uint64_t>(i));
    a.push_back(p.clone().requires_grad_(true));
    b.push_back(p.clone().requires_grad_(true));
  }
  const auto options = torch::optim::AdamWOptions(3e-3).betas({0.9, 0.95}).weight_decay(0.1);
  torch::optim::AdamW ref(a, options), fused(b, options);
  for (int step = 1; step <= 5; ++step) {
    const double lr = 3e-3 * step / 5.0;
    for (auto* opt : {&ref, &fused})
      for (auto& g : opt->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    for (std::size_t i = 0; i < a.size(); ++i) {
      const at::Tensor g = seeded_randn(a[i].sizes(), 100 * static_cast<uint64_t>(step) + i);
      if (step == 3 && i == 1) continue;  // a parameter without a gradient this step is skipped by both
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
    ref.step();
    REQUIRE(fused_adamw_step(fused));
    for (std::size_t i = 0; i < a.size(); ++i) {
      a[i].mutable_grad().reset();
      b[i].mutable_grad().reset();
    }
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(max_abs_diff(a[i], b[i]) < 1e-6);
    const std::string key_a = c10::guts::to_string(a[i].unsafeGetTensorImpl()), key_b = c10::guts::to_string(b[i].unsafeGetTensorImpl());
    const auto& sa = static_cast<torch::optim::AdamWParamState&>(*ref.state().at(key_a));
    const auto& sb = static_cast<torch::optim::AdamWParamState&>(*fused.state().at(key_b));
    CHECK(sa.step() == sb.step());
    CHECK(max_abs_diff(sa.exp_avg(), sb.exp_avg()) < 1e-6);
    CHECK(max_abs_diff(sa.exp_avg_sq(), sb.exp_avg_sq()) < 1e-7);
  }
}

TEST_CASE("fused ops: the clipping factor folded into fused AdamW equals clipping the gradients first", "[models]") {
  std::vector<at::Tensor> a, b;
  for (int i = 0; i < 2; ++i) {
    const at::Tensor p = seeded_randn({6, 5 + i}, 50 + static_cast<uint64_t>(i));
    a.push_back(p.clone().requires_grad_(true));
    b.push_back(p.clone().requires_grad_(true));
  }
  const auto options = torch::optim::AdamWOptions(3e-3).betas({0.9, 0.95}).weight_decay(0.1);
  torch::optim::AdamW first(a, options), folded(b, options);
  for (int step = 1; step <= 3; ++step) {
    for (std::size_t i = 0; i < a.size(); ++i) {
      const at::Tensor g = seeded_randn(a[i].sizes(), 300 * static_cast<uint64_t>(step) + i) * 4;  // norm well above 1
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
    const double scale = cpu_clip_scale(b, 1.0);
    REQUIRE(scale > 0.0);
    REQUIRE(scale < 1.0);
    clip_grad_norm(a, 1.0);
    REQUIRE(fused_adamw_step(first));
    REQUIRE(fused_adamw_step(folded, static_cast<float>(scale)));
    CHECK(max_abs_diff(b[0].grad(), a[0].grad()) > 0.0);  // the folded path leaves the gradients as they were
  }
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(max_abs_diff(a[i], b[i]) == 0.0);
  // Within the norm the factor is exactly 1; a gradient off the CPU path gives -1.
  b[0].mutable_grad() = at::zeros_like(b[0]);
  b[1].mutable_grad() = at::zeros_like(b[1]);
  CHECK(cpu_clip_scale(b, 1.0) == 1.0);
  b[1].mutable_grad() = at::zeros({b[1].size(1), b[1].size(0)}).t();  // not contiguous
  CHECK(cpu_clip_scale(b, 1.0) == -1.0);
}

TEST_CASE("fused ops: gradient clipping scales to the global norm, zero_grads drops the gradients", "[models]") {
  at::Tensor a = at::zeros({2}).requires_grad_(true), b = at::zeros({1}).requires_grad_(true);
  a.mutable_grad() = at::zeros({2});
  a.mutable_grad()[0].fill_(3.0);
  b.mutable_grad() = at::zeros({1}).fill_(4.0);  // global norm 5
  clip_grad_norm({a, b}, 10.0);                   // within the norm: unchanged
  CHECK(a.grad()[0].item<double>() == 3.0);
  clip_grad_norm({a, b}, 1.0);
  CHECK(a.grad()[0].item<double>() == Approx(0.6).epsilon(1e-6));
  CHECK(b.grad()[0].item<double>() == Approx(0.8).epsilon(1e-6));
  const at::Tensor before = a.grad().clone();
  clip_grad_norm({at::zeros({1}).requires_grad_(true)}, 1.0);  // a parameter without a gradient: nothing to do
  zero_grads({a, b});
  CHECK_FALSE(a.grad().defined());
  CHECK_FALSE(b.grad().defined());
  CHECK(before[1].item<double>() == 0.0);
}
