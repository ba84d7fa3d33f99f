// Contiguous, optionally overlapping expert blocks per domain (see reference_groups.h).
#include "oracle/reference_groups.h"

#include <stdexcept>
#include <string>

namespace moetb {

std::vector<std::vector<int>> make_reference_groups(int64_t n_experts, int n_domains, int overlap, int top_k) {
  if (n_domains < 1) throw std::invalid_argument("domains must be at least 1");
  if (n_domains > n_experts)
    throw std::invalid_argument("domains (" + std::to_string(n_domains) + ") exceed experts (" +
                                std::to_string(n_experts) + "): every domain needs its own expert");
  const int64_t block = n_experts / n_domains;
  if (overlap < 0 || block + overlap > n_experts)
    throw std::invalid_argument("overlap " + std::to_string(overlap) + " must lie in [0, " +
                                std::to_string(n_experts - block) + "]");
  if (top_k > 0 && block + overlap < top_k)
    throw std::invalid_argument("top_k " + std::to_string(top_k) + " exceeds the " + std::to_string(block + overlap) +
                                " experts of each domain group (" + std::to_string(n_experts) + " experts / " +
                                std::to_string(n_domains) + " domains + overlap " + std::to_string(overlap) +
                                "): the oracle would have to route outside its group");
  std::vector<std::vector<int>> groups(n_domains);
  for (int d = 0; d < n_domains; ++d)
    for (int64_t j = 0; j < block + overlap; ++j) groups[d].push_back(static_cast<int>((d * block + j) % n_experts));
  return groups;
}

}  // namespace moetb
