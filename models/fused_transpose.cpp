// Transposes (fused_transpose.h): float blocks of 8 x 8 by three rounds of shuffles, other
// sizes and double in 16 x 16 tiles of plain loops.
#include "models/fused_transpose.h"

#include <algorithm>
#include <cstring>

namespace moetb::fused {
namespace {

// dst [cols, rows] (row stride ldd) = src^T for src [rows, cols] (row stride lds), in 16 x 16
// tiles so neither side is walked with a large stride for long.
template <typename T>
__attribute__((always_inline)) inline void transpose_impl(const T* __restrict src, int64_t lds, T* __restrict dst, int64_t ldd, int64_t rows,
                                                          int64_t cols) {
  constexpr int64_t kTile = 16;
  for (int64_t i0 = 0; i0 < rows; i0 += kTile)
    for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
      const int64_t i1 = std::min(rows, i0 + kTile), j1 = std::min(cols, j0 + kTile);
      for (int64_t j = j0; j < j1; ++j)
        for (int64_t i = i0; i < i1; ++i) dst[j * ldd + i] = src[i * lds + j];
    }
}
// An 8 x 8 float block by three rounds of two-vector shuffles (GCC's vector extensions, so
// each CPU clone gets its own shuffle instructions): pairs of rows interleaved, then pairs of
// pairs, then the halves swapped; out row j = in column j.
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
__attribute__((always_inline)) inline void transpose8x8(const float* src, int64_t lds, float* dst, int64_t ldd) {
  v8f r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) std::memcpy(&r[i], src + i * lds, sizeof(v8f));
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shuffle(r[i], r[i + 1], v8i{0, 8, 1, 9, 4, 12, 5, 13});
    t[i + 1] = __builtin_shuffle(r[i], r[i + 1], v8i{2, 10, 3, 11, 6, 14, 7, 15});
  }
  for (int i = 0; i < 8; i += 4)
    for (int j = 0; j < 2; ++j) {
      u[i + j] = __builtin_shuffle(t[i + j], t[i + j + 2], v8i{0, 1, 8, 9, 4, 5, 12, 13});      // columns 2j, 2j + 4 ...
      u[i + j + 2] = __builtin_shuffle(t[i + j], t[i + j + 2], v8i{2, 3, 10, 11, 6, 7, 14, 15});  // ... and 2j + 1, 2j + 5
    }
  // u[0], u[2], u[1], u[3] (rows 0-3) hold columns (0, 4), (1, 5), (2, 6), (3, 7); u[4..7] rows 4-7.
  const int col_of[4] = {0, 2, 1, 3};
  for (int q = 0; q < 4; ++q) {
    const v8f lo = __builtin_shuffle(u[q], u[q + 4], v8i{0, 1, 2, 3, 8, 9, 10, 11});
    const v8f hi = __builtin_shuffle(u[q], u[q + 4], v8i{4, 5, 6, 7, 12, 13, 14, 15});
    std::memcpy(dst + col_of[q] * ldd, &lo, sizeof(v8f));
    std::memcpy(dst + (col_of[q] + 4) * ldd, &hi, sizeof(v8f));
  }
}
}  // namespace

__attribute__((target_clones("avx512f", "avx2", "default")))
void transpose(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t rows, int64_t cols) {
  if (rows % 8 != 0 || cols % 8 != 0) return transpose_impl(src, lds, dst, ldd, rows, cols);
  for (int64_t i = 0; i < rows; i += 8)
    for (int64_t j = 0; j < cols; j += 8) transpose8x8(src + i * lds + j, lds, dst + j * ldd + i, ldd);
}
void transpose(const double* src, int64_t lds, double* dst, int64_t ldd, int64_t rows, int64_t cols) {
  transpose_impl(src, lds, dst, ldd, rows, cols);
}

}  // namespace moetb::fused
