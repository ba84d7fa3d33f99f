// Walker's alias method: O(1) sampling from a fixed discrete distribution with one
// 64-bit draw (high half picks the column, low half the coin). Probabilities are
// quantised to 32 bits, an error below 1e-9 per outcome, far under any test tolerance.
#pragma once
#include <cstdint>
#include <vector>

#include "common/rng.h"

namespace moetb {

// Builds the table for `probs` (non-negative, positive sum) into thresholds/aliases
// of the same length; appended to the given vectors so many rows share one buffer.
void build_alias(const double* probs, uint32_t n, std::vector<uint32_t>& thresholds, std::vector<uint32_t>& aliases);

// Samples an index in [0, n) from a table built by build_alias.
inline uint32_t sample_alias(const uint32_t* thresholds, const uint32_t* aliases, uint32_t n, Rng& rng) {
  const uint64_t x = rng.next();
  const auto column = static_cast<uint32_t>(((x >> 32) * n) >> 32);
  return static_cast<uint32_t>(x) < thresholds[column] ? column : aliases[column];
}

class AliasTable {
 public:
  AliasTable() = default;
  explicit AliasTable(const std::vector<double>& probs);
  uint32_t sample(Rng& rng) const {
    return sample_alias(thresholds_.data(), aliases_.data(), static_cast<uint32_t>(thresholds_.size()), rng);
  }
  std::size_t size() const { return thresholds_.size(); }

 private:
  std::vector<uint32_t> thresholds_;
  std::vector<uint32_t> aliases_;
};

}  // namespace moetb
