// Shipped `moetb datagen` presets: TOML configs kept in datagen/presets/NAME.toml and
// compiled into the binary, so `moetb datagen --preset languages --out DIR` works from
// any folder. The "languages" preset is the eight-language manual-page mix for the MoE
// Routing Testbed's language experiment (arXiv 2604.07030).
#pragma once
#include <string>
#include <vector>

namespace moetb {

std::vector<std::string> datagen_preset_names();
// The preset's TOML text; throws std::invalid_argument("--preset NAME: ...") when unknown.
std::string datagen_preset(const std::string& name);

}  // namespace moetb
