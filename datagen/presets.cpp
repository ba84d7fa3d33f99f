// The compiled-in datagen presets (presets.h). The table is generated at configure time
// from datagen/presets/*.toml (datagen/CMakeLists.txt), so the TOML files stay the one
// source: `moetb datagen --config datagen/presets/languages.toml` is the same build.
#include "datagen/presets.h"

#include <stdexcept>

#include "datagen/presets_table.h"

namespace moetb {

std::vector<std::string> datagen_preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, text] : presets_table::kPresets) names.push_back(name);
  return names;
}

std::string datagen_preset(const std::string& name) {
  for (const auto& [n, text] : presets_table::kPresets)
    if (name == n) return text;
  std::string known;
  for (const auto& n : datagen_preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("--preset " + name + ": unknown preset (known: " + known + ")");
}

}  // namespace moetb
