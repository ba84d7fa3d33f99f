// Comparing two traces over the same tokens (metrics.md §9): per-layer router
// saturation mean_t |S_t^A ∩ S_t^B| / |S_t^B| (OLMoE, arXiv 2409.02060, when A is an
// early checkpoint and B the final one) and the change of every summary metric, with a
// verdict "differs"/"same" per metric from a paired delete-one-block jackknife (the two
// traces hold the same tokens, so their blocks line up). The traces may come from
// different models: layers, experts and top-k may differ; what needs them equal is skipped.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "metrics/trace_metrics.h"

namespace moetb {

constexpr int kCompareBlocks = 16;        // jackknife blocks (CLI default)
constexpr double kCompareTol = 0.01;      // absolute floor of a difference (CLI default)
constexpr double kCompareZ = 2.0;         // multiple of the paired standard error

// What check_same_tokens learnt on the way.
struct TokenCheck {
  int64_t tokens = 0;
  bool labelled_a = false, labelled_b = false;  // some domain id >= 0
};
// Checks both traces hold the same tokens: count, token_ids and positions, and domain_ids
// where both traces label any token (a trace with no labels at all is exempt). Throws
// TraceError with one line naming the first differing token. Reads only the token arrays.
TokenCheck check_same_tokens(const ShardSource& a, const ShardSource& b);

// Why router saturation cannot be computed (different layer or expert counts), or "".
std::string saturation_skip_reason(const ShardSource& a, const ShardSource& b);

// Per layer (min of both traces' layer counts): saturation, null if B routes no token.
// Throws TraceError if token_ids or positions differ, naming the first differing token.
// Mapped pages are given back every 64 Ki tokens, so memory stays bounded on large traces.
std::vector<std::optional<double>> router_saturation(const ShardSource& a, const ShardSource& b);

struct CompareOptions {
  double tol = kCompareTol;         // a difference must exceed this absolute floor ...
  double z = kCompareZ;             // ... and z paired jackknife standard errors
  std::vector<std::string> notes;   // added to the output's "notes" (e.g. why saturation is empty)
  bool verdicts = false;            // add the standard errors and verdicts (moetb compare does)
};

// {"format": "moetb-compare/1", "a": {...}, "b": {...}, "saturation": [...], "notes": [...],
//  "summary": {key: {"a": x, "b": y, "delta": y - x}}} over the flattened summary keys.
// With options.verdicts, each summary entry also has "se_a", "se_b", "se_delta", "threshold" and
// "verdict" ("differs", "same", or null when not comparable, with a "note"), and the document has
// "criterion" and "differs" (keys, in order). The errors need both metrics computed with the same
// jackknife_blocks >= 2; without them they are null and the threshold is tol alone.
// The note every single-pair comparison carries (its verdicts reflect token-sampling noise only).
extern const char* const kOnePairNote;
nlohmann::json compare_json(const TraceMetrics& a, const TraceMetrics& b,
                            const std::vector<std::optional<double>>& saturation,
                            const CompareOptions& options = {});

}  // namespace moetb
