// Next-token cross-entropy of a language model as one custom autograd function: the
// log-softmax, the negative log-likelihood of each next token and their mean in one pass
// over the logits, and a backward that writes (softmax - one-hot) / N straight into the
// gradient of the full [B, S, V] logits (zero at the last position), instead of ATen's
// narrow, reshape, log_softmax, nll_loss and a zero-filled slice gradient. Float32/64 CPU;
// anything else takes the ATen composition (same maths).
#pragma once
#include <ATen/core/Tensor.h>

namespace moetb {

// logits: [B, S, V] float; tokens: [B, S] int64 in [0, V). Returns [] the mean over the
// B (S - 1) positions of -log softmax(logits[b, s])[tokens[b, s + 1]], in nats.
at::Tensor fused_next_token_ce(const at::Tensor& logits, const at::Tensor& tokens);

// at::cross_entropy_loss(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1)).
at::Tensor next_token_ce_reference(const at::Tensor& logits, const at::Tensor& tokens);

}  // namespace moetb
