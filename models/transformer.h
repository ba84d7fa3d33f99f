// A small decoder-only MoE language model: token embedding; N blocks of RMSNorm, causal
// multi-head attention with rotary positions (RoFormer, arXiv 2104.09864), RMSNorm, and a
// feed-forward that is dense SwiGLU for the first `first_k_dense` blocks (DeepSeek-MoE,
// arXiv 2401.06066) and MoE after; final RMSNorm; LM head (tied to the embedding or not).
// Simplifications: no dropout, no KV cache, plain O(S^2) attention (S is small here).
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "models/moe_layer.h"

namespace moetb {

struct ModelConfig {
  int64_t vocab_size = 0;       // from the dataset
  int64_t max_seq_len = 128;    // rotary table length
  int64_t d_model = 128;
  int64_t n_layers = 2;
  int64_t n_heads = 4;          // head_dim = d_model / n_heads (even)
  int64_t first_k_dense = 0;    // leading blocks with a dense SwiGLU instead of MoE
  int64_t dense_d_ff = 0;       // their width (0 = d_ff * top_k: the MoE's active width)
  bool tie_embeddings = true;
  double rope_theta = 10000.0;
  MoEConfig moe;                // d_model is copied from above
};

struct LMOutput {
  at::Tensor logits;                       // [B, S, vocab]
  at::Tensor aux_loss;                     // [] sum of the MoE layers' router aux losses
  std::vector<RoutingDecision> decisions;  // per MoE block, tokens flattened [B*S, ...]
  std::vector<int64_t> moe_blocks;         // block index of each decision
};

class MoETransformerImpl : public torch::nn::Module {
 public:
  explicit MoETransformerImpl(const ModelConfig& cfg);  // throws std::invalid_argument naming the field
  // tokens: [B, S] int64; domains: [B, S] int64 or undefined (the oracle router needs it).
  LMOutput forward(const at::Tensor& tokens, const at::Tensor& domains, bool training);
  const ModelConfig& config() const { return cfg_; }
  std::vector<Router*> routers();  // one per MoE block (end_step hooks)
  int64_t n_moe_layers() const { return static_cast<int64_t>(moe_.size()); }

 private:
  struct Block {
    at::Tensor norm1, norm2;        // [d_model]
    at::Tensor w_qkv;               // [d_model, 3 d_model]
    at::Tensor w_out;               // [d_model, d_model]
    at::Tensor dense_gate, dense_up, dense_down;  // dense blocks only
    int64_t moe_index = -1;         // index into moe_, -1 for dense blocks
  };
  // residual + attention(rms_norm(residual)) of block b, the output projection accumulated
  // onto the residual in one product (addmm). residual: [B, S, D].
  at::Tensor attention_residual(const Block& b, const at::Tensor& residual) const;

  ModelConfig cfg_;
  at::Tensor embedding_;            // [vocab, d_model]
  at::Tensor head_;                 // [d_model, vocab], undefined when tied
  at::Tensor final_norm_;           // [d_model]
  at::Tensor rope_cos_, rope_sin_;  // [max_seq_len, head_dim / 2], buffers
  std::vector<Block> blocks_;
  std::vector<MoEFeedForward> moe_;
};
TORCH_MODULE(MoETransformer);

inline constexpr double kRmsNormEps = 1e-6;  // every norm of the model
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps = kRmsNormEps);  // over the last dim
// Rotates pairs (x[..., i], x[..., i + h/2]) by position-dependent angles. x: [B, H, S, hd].
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace moetb
