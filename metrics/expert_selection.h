// Which experts a domain fine-tune trains (docs/finetune.md): the arms of the DBES
// expert-path intervention (arXiv 2605.18498) and the controls its review asked for.
// paths = the domain's expert path per layer (metrics/expert_paths.h, threshold tau);
// random = per layer as many experts drawn uniformly (seeded); least = as many of the
// domain's least-used experts; experts / full = every expert (full also trains the rest).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "metrics/routing_metrics.h"

namespace moetb {

// Known arms, in the order docs and summaries list them.
const std::vector<std::string>& finetune_arms();

// Per layer (one CountMatrix per MoE layer), the sorted expert ids `arm` trains for
// `domain`. random draws from a stream seeded by (seed, draw, layer), so the same draw
// gives the same subsets. Throws std::invalid_argument for an unknown arm or tau.
std::vector<std::vector<int>> select_finetune_experts(const std::vector<CountMatrix>& layers, int domain,
                                                      const std::string& arm, double tau, uint64_t seed,
                                                      uint64_t draw);

}  // namespace moetb
