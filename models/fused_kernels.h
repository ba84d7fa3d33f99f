// Raw row loops of the fused SwiGLU activation (Shazeer, arXiv 2002.05202), defined in
// fused_ops.cpp (cloned per CPU there) and shared with the grouped expert products
// (fused_experts.cpp), which run them on sub-blocks of one buffer without a tensor each.
#pragma once
#include <cstdint>

namespace moetb::fused {

// h: [n, 2F] rows [a | b] -> s = sigmoid(a): [n, F], y = a s b: [n, F].
void swiglu_forward(const float* h, float* s, float* y, int64_t n, int64_t F);
void swiglu_forward(const double* h, double* s, double* y, int64_t n, int64_t F);
// gh: [n, 2F] = (dy b s (1 + a (1 - s)) | dy a s) from h, s and dy: [n, F].
void swiglu_backward(const float* h, const float* s, const float* dy, float* gh, int64_t n, int64_t F);
void swiglu_backward(const double* h, const double* s, const double* dy, double* gh, int64_t n, int64_t F);
// The same without s: y = a sigmoid(a) b only, and the backward recomputing sigmoid(a) from h
// (the grouped experts: less memory traffic than storing s; the same values bit for bit).
void swiglu_forward_act(const float* h, float* y, int64_t n, int64_t F);
void swiglu_forward_act(const double* h, double* y, int64_t n, int64_t F);
void swiglu_backward_from_h(const float* h, const float* dy, float* gh, int64_t n, int64_t F);
void swiglu_backward_from_h(const double* h, const double* dy, double* gh, int64_t n, int64_t F);

}  // namespace moetb::fused
