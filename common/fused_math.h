// Branch-free elementwise maths for the fused CPU loops (models/fused_*.cpp, routers/router_kernels.cpp):
// exp of a non-positive float by Cephes' expf reduction and polynomial (about 1 ulp), the
// logistic sigmoid built on it, and 16-lane sum and max reductions that the compiler turns
// into vector code without -ffast-math (each lane keeps its own order; the lanes are then
// added pairwise, 8 + 8, 4 + 4, 2 + 2, 1 + 1: four vector steps instead of a chain of 15
// scalar adds, which cost as much as the sum itself on the rows of 32-128 used here).
// Double precision goes through std::exp (the float64 tests compare to 1e-12).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace moetb::fused {

// exp(x) for x <= 0: 2^n e^r, n = round(x log2 e) by the 1.5 * 2^23 trick, |r| <= ln2 / 2.
// Below -87 it returns exp(-87) ~ 1.6e-38 instead of smaller values or 0.
__attribute__((always_inline)) inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float t = x * 1.44269504088896341f + 12582912.0f;
  const float n = t - 12582912.0f;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  int32_t ti;
  std::memcpy(&ti, &t, sizeof ti);
  const int32_t bits = (ti - 0x4B400000 + 127) * (1 << 23);  // 2^n: t's low mantissa bits hold n
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}
__attribute__((always_inline)) inline double exp_nonpositive(double x) { return std::exp(x); }

// 1 / (1 + exp(-a)) from e = exp(-|a|): 1 / (1 + e) for a >= 0, e / (1 + e) below.
template <typename T>
__attribute__((always_inline)) inline T sigmoid(T a) {
  const T e = exp_nonpositive(a < 0 ? a : -a);
  return (a < 0 ? e : T(1)) / (T(1) + e);
}

// acc[0] + ... + acc[15], added pairwise (the same order every time).
template <typename T>
__attribute__((always_inline)) inline T lanes_sum16(T* acc) {
  for (int j = 0; j < 8; ++j) acc[j] += acc[j + 8];
  for (int j = 0; j < 4; ++j) acc[j] += acc[j + 4];
  for (int j = 0; j < 2; ++j) acc[j] += acc[j + 2];
  return acc[0] + acc[1];
}

template <typename T>
__attribute__((always_inline)) inline T sum16(const T* x, int64_t n) {
  T acc[16] = {};
  int64_t c = 0;
  for (; c + 16 <= n; c += 16)
    for (int j = 0; j < 16; ++j) acc[j] += x[c + j];
  for (; c < n; ++c) acc[0] += x[c];
  return lanes_sum16(acc);
}

// sum of exp(x[c] - shift) for c < n (every x[c] - shift <= 0), in sum16's lanes and order;
// the exps of the last n % 16 are made as one block before they are added, so short rows
// (a router's 8-64 logits) vectorise too.
template <typename T>
__attribute__((always_inline)) inline T exp_sum16(const T* x, T shift, int64_t n) {
  T acc[16] = {};
  int64_t c = 0;
  for (; c + 16 <= n; c += 16)
    for (int j = 0; j < 16; ++j) acc[j] += exp_nonpositive(x[c + j] - shift);
  T e[16];
  const int64_t rest = n - c;
  for (int64_t j = 0; j < rest; ++j) e[j] = exp_nonpositive(x[c + j] - shift);
  for (int64_t j = 0; j < rest; ++j) acc[0] += e[j];
  return lanes_sum16(acc);
}

// sum of a[i] b[i] (c: optional third factor, nullptr for none).
template <typename T>
__attribute__((always_inline)) inline T dot16(const T* a, const T* b, const T* c, int64_t n) {
  T acc[16] = {};
  int64_t i = 0;
  if (c != nullptr) {
    for (; i + 16 <= n; i += 16)
      for (int j = 0; j < 16; ++j) acc[j] += a[i + j] * b[i + j] * c[i + j];
    for (; i < n; ++i) acc[0] += a[i] * b[i] * c[i];
  } else {
    for (; i + 16 <= n; i += 16)
      for (int j = 0; j < 16; ++j) acc[j] += a[i + j] * b[i + j];
    for (; i < n; ++i) acc[0] += a[i] * b[i];
  }
  return lanes_sum16(acc);
}

template <typename T>
__attribute__((always_inline)) inline T max16(const T* x, int64_t n) {  // n >= 1
  if (n < 16) {
    T m = x[0];
    for (int64_t c = 1; c < n; ++c) m = x[c] > m ? x[c] : m;
    return m;
  }
  T acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = x[j];
  int64_t c = 16;
  for (; c + 16 <= n; c += 16)
    for (int j = 0; j < 16; ++j) acc[j] = x[c + j] > acc[j] ? x[c + j] : acc[j];
  for (int w = 8; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] = acc[j + w] > acc[j] ? acc[j + w] : acc[j];
  T m = acc[0];
  for (; c < n; ++c) m = x[c] > m ? x[c] : m;
  return m;
}

}  // namespace moetb::fused
