// Raw row loops of the fused SwiGLU activation (Shazeer, arXiv 2002.05202), defined in
// fused_ops.cpp (cloned per CPU there) and shared with the grouped expert products
// (fused_experts.cpp), which run them on sub-blocks of one buffer without a tensor each.
#pragma once
#include <cstdint>

namespace moetb::fused {

// h: [n, 2F] rows [a | b] -> y = a sigmoid(a) b: [n, F].
void swiglu_forward_act(const float* h, float* y, int64_t n, int64_t F);
void swiglu_forward_act(const double* h, double* y, int64_t n, int64_t F);
// gh: [n, 2F] = (dy b s (1 + a (1 - s)) | dy a s), s = sigmoid(a) recomputed from h (cheaper
// than storing it: less memory traffic, the same values bit for bit); dy: [n, F].
void swiglu_backward_from_h(const float* h, const float* dy, float* gh, int64_t n, int64_t F);
void swiglu_backward_from_h(const double* h, const double* dy, double* gh, int64_t n, int64_t F);
// The same written over h itself (h: [n, 2F] in, its gradient out), for callers done with h.
void swiglu_backward_in_place(float* h, const float* dy, int64_t n, int64_t F);
void swiglu_backward_in_place(double* h, const double* dy, int64_t n, int64_t F);

}  // namespace moetb::fused
