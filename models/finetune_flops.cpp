// step_flops (finetune_flops.h): the forward FLOPs of one step from its routing, and the
// backward FLOPs of a partial fine-tune (input gradients above the lowest trainable block,
// weight gradients of trainable experts only). A multiply-add is 2 FLOPs, as in arXiv 2001.08361.
#include "models/finetune_flops.h"

namespace moetb {

StepFlops step_flops(const FlopShape& s, const StepRouting& r, bool full_model) {
  const double T = static_cast<double>(r.batch * r.seq_len), D = static_cast<double>(s.d_model);
  const double S = static_cast<double>(r.seq_len), B = static_cast<double>(r.batch);
  const double expert = 6.0 * D * static_cast<double>(s.d_ff);  // gate, up, down per assignment
  const auto n_blocks = static_cast<int64_t>(s.moe_index.size());
  std::vector<double> block_fwd(static_cast<std::size_t>(n_blocks));
  int64_t lowest = n_blocks;  // lowest block with a trainable expert
  StepFlops f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    double x = T * 8.0 * D * D + 4.0 * B * S * S * D;  // qkv + out projections, QK^T + AV
    const int64_t m = s.moe_index[static_cast<std::size_t>(b)];
    if (m < 0) {
      x += T * 6.0 * D * static_cast<double>(s.dense_d_ff);
    } else {
      const auto mi = static_cast<std::size_t>(m);
      x += T * 2.0 * D * static_cast<double>(s.n_experts) + static_cast<double>(r.assignments[mi]) * expert +
           T * 6.0 * D * static_cast<double>(s.d_ff * s.n_shared);
      if (r.trainable_assignments[mi] > 0 && lowest == n_blocks) lowest = b;
    }
    block_fwd[static_cast<std::size_t>(b)] = x;
    f.forward += x;
  }
  const double head = T * 2.0 * D * static_cast<double>(s.vocab);
  f.forward += head;
  f.full = 3.0 * f.forward;
  if (full_model) {
    f.backward = 2.0 * f.forward;
    return f;
  }
  if (lowest == n_blocks) return f;  // nothing trainable: no backward
  f.backward = head;                 // the head's input gradient (its weight is frozen)
  for (int64_t b = lowest; b < n_blocks; ++b) {
    const int64_t m = s.moe_index[static_cast<std::size_t>(b)];
    const double trainable =
        m < 0 ? 0.0 : static_cast<double>(r.trainable_assignments[static_cast<std::size_t>(m)]) * expert;
    if (b > lowest) {
      f.backward += block_fwd[static_cast<std::size_t>(b)] + trainable;  // input grads + trainable experts' weight grads
    } else {
      f.backward += 2.0 * trainable;  // the lowest block: only its trainable experts (input and weight grads inside)
    }
  }
  return f;
}

}  // namespace moetb
