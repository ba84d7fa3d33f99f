// Transformations of in-memory traces under which the metrics must be invariant
// (metrics.md, "Invariants every implementation must satisfy"): relabel experts or
// domains, reorder sequences or tokens inside sequences, duplicate the whole trace.
#pragma once
#include <cstdint>
#include <vector>

#include "metrics/trace.h"

namespace moetb {

// perm[e] = new id of expert e. Reference groups stay as they were (purity_ids changes).
TraceData permute_experts(const TraceData& trace, const std::vector<int>& perm);
// perm[d] = new id of domain d; names and reference groups move with their domains.
TraceData relabel_domains(const TraceData& trace, const std::vector<int>& perm);
// Sequences (runs starting at position 0) in a seeded random order.
TraceData shuffle_sequences(const TraceData& trace, uint64_t seed);
// Tokens (id, domain, routing) permuted inside each sequence; positions stay 0, 1, ...
TraceData shuffle_within_sequences(const TraceData& trace, uint64_t seed);
// The trace followed by itself.
TraceData duplicate_trace(const TraceData& trace);
// A seeded random permutation of [0, n).
std::vector<int> random_permutation(int n, uint64_t seed);

}  // namespace moetb
