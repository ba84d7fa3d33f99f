// select_finetune_experts (expert_selection.h): the fine-tune arms of docs/finetune.md over
// per-layer domain x expert counts: DBES's expert paths (arXiv 2605.18498) and the controls
// of equal size (seeded random draws, least-used experts).
#include "metrics/expert_selection.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "common/rng.h"
#include "metrics/expert_paths.h"

namespace moetb {

namespace {
constexpr uint64_t kDrawSalt = 0x46494e4554554e45ull;  // separates the draws from other seed users
}

const std::vector<std::string>& finetune_arms() {
  static const std::vector<std::string> arms = {"paths", "random", "least", "experts", "full"};
  return arms;
}

std::vector<std::vector<int>> select_finetune_experts(const std::vector<CountMatrix>& layers, int domain,
                                                      const std::string& arm, double tau, uint64_t seed,
                                                      uint64_t draw) {
  const auto& arms = finetune_arms();
  if (std::find(arms.begin(), arms.end(), arm) == arms.end())
    throw std::invalid_argument("--arm: unknown arm '" + arm + "' (known: paths, random, least, experts, full)");
  if (!(tau > 0.0 && tau <= 1.0)) throw std::invalid_argument("--tau " + std::to_string(tau) + " is not in (0, 1]");
  std::vector<std::vector<int>> out;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const CountMatrix& c = layers[l];
    const int n_experts = static_cast<int>(c.n_experts);
    std::vector<int> all(static_cast<std::size_t>(n_experts));
    std::iota(all.begin(), all.end(), 0);
    if (arm == "experts" || arm == "full") {
      out.push_back(all);
      continue;
    }
    std::vector<int> chosen = expert_path(c, domain, tau);
    const std::size_t n = chosen.size();
    if (arm == "random") {
      Rng rng(mix_seed({kDrawSalt, seed, draw, static_cast<uint64_t>(l)}));
      for (std::size_t i = 0; i < n; ++i)  // partial Fisher-Yates: the first n of a permutation
        std::swap(all[i], all[i + rng.below(all.size() - i)]);
      chosen.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n));
    } else if (arm == "least") {
      auto count = [&](int e) { return domain < c.n_domains ? c.at(domain, e) : int64_t{0}; };
      std::stable_sort(all.begin(), all.end(), [&](int a, int b) { return count(a) < count(b); });
      chosen.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n));
    }
    std::sort(chosen.begin(), chosen.end());
    out.push_back(chosen);
  }
  return out;
}

}  // namespace moetb
