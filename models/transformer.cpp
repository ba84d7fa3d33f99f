// MoETransformer (transformer.h).
#include "models/transformer.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/outer.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "common/rng.h"
#include "models/fused_attention.h"
#include "models/fused_linear.h"
#include "models/fused_ops.h"
#include <string>

namespace moetb {
namespace {

at::Tensor uniform_init(at::IntArrayRef shape, int64_t fan_in) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return at::empty(shape, at::kFloat).uniform_(-bound, bound);
}

void require(bool ok, const std::string& field, const std::string& what) {
  if (!ok) throw std::invalid_argument("model." + field + ": " + what);
}

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) { return fused_rms_norm(x, weight, eps); }

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) { return fused_rope(x, cos, sin); }

MoETransformerImpl::MoETransformerImpl(const ModelConfig& cfg) : cfg_(cfg) {
  require(cfg_.vocab_size >= 2, "vocab_size", "must be >= 2 (it comes from the dataset)");
  require(cfg_.d_model >= 2, "d_model", "must be >= 2");
  require(cfg_.n_layers >= 1, "n_layers", "must be >= 1");
  require(cfg_.n_heads >= 1 && cfg_.d_model % cfg_.n_heads == 0 && (cfg_.d_model / cfg_.n_heads) % 2 == 0, "n_heads",
          "must divide d_model into heads of even width");
  require(cfg_.first_k_dense >= 0 && cfg_.first_k_dense < cfg_.n_layers, "first_k_dense", "must be in [0, n_layers)");
  require(cfg_.max_seq_len >= 1, "max_seq_len", "must be >= 1");
  cfg_.moe.d_model = cfg_.d_model;
  const int64_t D = cfg_.d_model, V = cfg_.vocab_size;
  const int64_t dense_ff = cfg_.dense_d_ff > 0 ? cfg_.dense_d_ff : cfg_.moe.d_ff * cfg_.moe.top_k;

  embedding_ = register_parameter("embedding", at::empty({V, D}, at::kFloat).normal_(0.0, 0.02));  // GPT-2's scale
  if (!cfg_.tie_embeddings) head_ = register_parameter("head", uniform_init({D, V}, D));
  final_norm_ = register_parameter("final_norm", at::ones({D}, at::kFloat));
  // Rotary table: angle(pos, i) = pos * theta^(-2i / head_dim).
  const int64_t half = D / cfg_.n_heads / 2;
  const at::Tensor inv_freq = at::pow(cfg_.rope_theta, at::arange(half, at::kDouble) * (-2.0 / static_cast<double>(2 * half)));
  const at::Tensor angles = at::outer(at::arange(cfg_.max_seq_len, at::kDouble), inv_freq).to(at::kFloat);  // [S, hd/2]
  rope_cos_ = register_buffer("rope_cos", angles.cos());
  rope_sin_ = register_buffer("rope_sin", angles.sin());

  for (int64_t l = 0; l < cfg_.n_layers; ++l) {
    const std::string p = "block" + std::to_string(l) + "_";
    Block b;
    b.norm1 = register_parameter(p + "norm1", at::ones({D}, at::kFloat));
    b.norm2 = register_parameter(p + "norm2", at::ones({D}, at::kFloat));
    b.w_qkv = register_parameter(p + "w_qkv", uniform_init({D, 3 * D}, D));
    b.w_out = register_parameter(p + "w_out", uniform_init({D, D}, D));
    if (l < cfg_.first_k_dense) {
      b.dense_gate = register_parameter(p + "dense_gate", uniform_init({D, dense_ff}, D));
      b.dense_up = register_parameter(p + "dense_up", uniform_init({D, dense_ff}, D));
      b.dense_down = register_parameter(p + "dense_down", uniform_init({dense_ff, D}, dense_ff));
    } else {
      b.moe_index = static_cast<int64_t>(moe_.size());
      MoEConfig block_moe = cfg_.moe;  // each block's hash/random router gets its own stream
      block_moe.router.seed = mix_seed({cfg_.moe.router.seed, static_cast<uint64_t>(l)});
      moe_.push_back(register_module(p + "moe", MoEFeedForward(block_moe)));
    }
    blocks_.push_back(b);
  }
}

at::Tensor MoETransformerImpl::attention_residual(const Block& b, const at::Tensor& residual) const {
  const int64_t B = residual.size(0), S = residual.size(1), D = cfg_.d_model, H = cfg_.n_heads, hd = D / H;
  const auto [res, x] = fused_rms_norm_pass(residual, b.norm1, kRmsNormEps);  // residual passed through the norm's node; x: [B, S, D]
  const at::Tensor qkv = fused_linear(x, b.w_qkv).view({B, S, 3, H, hd});               // [B, S, 3, H, hd]
  const at::Tensor cos = rope_cos_.narrow(0, 0, S), sin = rope_sin_.narrow(0, 0, S);  // [S, hd/2]
  // Rotary q, k and causal attention in one function (fused_attention.h; masked half skipped): [B, S, D].
  const at::Tensor att = fused_rope_attention(qkv, cos, sin);
  // residual + att W_out as one product accumulating onto a copy of the residual: [B, S, D].
  return fused_linear(att, b.w_out, res);
}

LMOutput MoETransformerImpl::forward(const at::Tensor& tokens, const at::Tensor& domains, bool training) {
  if (tokens.dim() != 2 || tokens.scalar_type() != at::kLong)
    throw std::invalid_argument("model input: tokens must be [B, S] int64");
  const int64_t B = tokens.size(0), S = tokens.size(1), D = cfg_.d_model;
  if (S > cfg_.max_seq_len)
    throw std::invalid_argument("model input: sequence length " + std::to_string(S) + " exceeds max_seq_len " + std::to_string(cfg_.max_seq_len));
  RouteContext ctx;
  ctx.token_ids = tokens.reshape({B * S});                                                      // [B*S]
  if (domains.defined()) ctx.domain_ids = domains.reshape({B * S});                             // [B*S]
  bool sequences = false;  // only routers that balance per sequence read them
  for (const auto& m : moe_) sequences = sequences || m->router().needs_sequence_ids();
  if (sequences) ctx.sequence_ids = at::arange(B, tokens.options()).repeat_interleave(S);       // [B*S]
  ctx.training = training;

  LMOutput out;
  at::Tensor x = fused_embedding(embedding_, ctx.token_ids).view({B, S, D});  // [B, S, D]
  out.aux_loss = at::zeros({}, x.options());
  for (std::size_t l = 0; l < blocks_.size(); ++l) {
    const Block& b = blocks_[l];
    x = attention_residual(b, x);
    const auto [res, h] = fused_rms_norm_pass(x, b.norm2, kRmsNormEps);  // h: [B, S, D]; res: x through the norm's node
    if (b.moe_index < 0) {
      x = res + at::matmul(at::silu(at::matmul(h, b.dense_gate)) * at::matmul(h, b.dense_up), b.dense_down);
    } else {
      MoEOutput m = moe_[b.moe_index]->forward(h.reshape({B * S, D}), ctx, res.reshape({B * S, D}));  // y = x + MoE(h)
      x = m.y.view({B, S, D});
      out.aux_loss = out.aux_loss + m.decision.aux_loss;
      out.decisions.push_back(std::move(m.decision));
      out.moe_blocks.push_back(static_cast<int64_t>(l));
    }
  }
  x = rms_norm(x, final_norm_);
  out.logits = cfg_.tie_embeddings ? fused_linear_t(x, embedding_) : fused_linear(x, head_);  // [B, S, V]
  return out;
}

std::vector<Router*> MoETransformerImpl::routers() {
  std::vector<Router*> out;
  for (auto& m : moe_) out.push_back(&m->router());
  return out;
}

}  // namespace moetb
