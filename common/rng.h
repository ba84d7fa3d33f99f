// Deterministic, portable random numbers for data, planted traces and routers.
// xoshiro256** seeded through SplitMix64 (Blackman & Vigna); own uniform and
// integer draws, because std:: distributions differ between standard libraries
// and "same config and seed give byte-identical files" must hold everywhere.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>

namespace moetb {

__extension__ typedef unsigned __int128 Uint128;  // GCC/Clang extension, fine under -Wpedantic

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Mixes several integers into one seed (e.g. seed, layer, token id).
inline uint64_t mix_seed(std::initializer_list<uint64_t> parts) {
  uint64_t state = 0x6a09e667f3bcc909ull;
  uint64_t out = 0;
  for (uint64_t p : parts) {
    state ^= p + 0x9e3779b97f4a7c15ull + (state << 6) + (state >> 2);
    out = splitmix64(state);
  }
  return out;
}

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) {
    uint64_t sm = seed;
    for (auto& word : s_) word = splitmix64(sm);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // The full generator state, for checkpoints (restore continues the same stream).
  std::array<uint64_t, 4> state() const { return {s_[0], s_[1], s_[2], s_[3]}; }
  void set_state(const std::array<uint64_t, 4>& s) {
    for (int i = 0; i < 4; ++i) s_[i] = s[i];
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  // Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject).
  uint64_t below(uint64_t n) {
    Uint128 m = static_cast<Uint128>(next()) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<Uint128>(next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace moetb
