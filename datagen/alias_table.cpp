// Walker's alias method (alias_table.h), Vose's stable construction.
#include "datagen/alias_table.h"

#include <cmath>
#include <stdexcept>

namespace moetb {

void build_alias(const double* probs, uint32_t n, std::vector<uint32_t>& thresholds, std::vector<uint32_t>& aliases) {
  if (n == 0) throw std::invalid_argument("alias table: no outcomes");
  double sum = 0.0;
  for (uint32_t i = 0; i < n; ++i) sum += probs[i];
  if (!(sum > 0.0) || !std::isfinite(sum)) throw std::invalid_argument("alias table: probabilities must have a positive sum");
  std::vector<double> scaled(n);
  std::vector<uint32_t> small, large;
  for (uint32_t i = 0; i < n; ++i) {
    scaled[i] = probs[i] / sum * n;
    (scaled[i] < 1.0 ? small : large).push_back(i);
  }
  const std::size_t base = thresholds.size();
  thresholds.resize(base + n, 0);
  aliases.resize(base + n, 0);
  auto set = [&](uint32_t i, double p, uint32_t alias) {
    const double t = std::ldexp(p, 32);  // P(keep column i) in 1/2^32 units
    thresholds[base + i] = t >= 4294967295.0 ? 0xffffffffu : static_cast<uint32_t>(std::llround(t));
    aliases[base + i] = alias;
  };
  while (!small.empty() && !large.empty()) {
    const uint32_t s = small.back();
    small.pop_back();
    const uint32_t l = large.back();
    set(s, scaled[s], l);
    scaled[l] -= 1.0 - scaled[s];
    if (scaled[l] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
  // Leftovers are 1 up to rounding: always keep (threshold 2^32 - 1 misses 1 in 4e9,
  // so alias them to themselves).
  for (uint32_t i : large) set(i, 1.0, i);
  for (uint32_t i : small) set(i, 1.0, i);
}

AliasTable::AliasTable(const std::vector<double>& probs) {
  build_alias(probs.data(), static_cast<uint32_t>(probs.size()), thresholds_, aliases_);
}

}  // namespace moetb
