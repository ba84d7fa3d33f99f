// Human-readable rendering of `moetb metrics`: one row per layer, then the summary
// (mean over layers), then per-domain RS. Built from the same JSON as --json, so the
// table can never disagree with the machine-readable output.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace moetb {

std::string metrics_table(const nlohmann::json& metrics_json);
std::string format_number(const nlohmann::json& value, int decimals = 3);  // "-" for null

}  // namespace moetb
