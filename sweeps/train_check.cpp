// check_train_configs (train_check.h): each key set by [base], an axis or sweep.seed_key is
// loaded through a fresh ConfigBinder (unknown keys, wrong types, bad enum names), then each
// run's whole config is loaded and passed to validate_train_config, as `moetb train` does.
#include "sweeps/train_check.h"

#include <set>
#include <stdexcept>

#include "common/config_binder.h"
#include "models/train_config.h"

namespace moetb::sweeps {
namespace {

// Loads `config` into a default TrainConfig as `moetb train --config FILE` would; the binder's
// errors start with `where`.
TrainConfig load(const FlatConfig& config, const std::string& where) {
  TrainConfig cfg;
  ConfigBinder binder;
  bind_train_config(binder, cfg);
  binder.load_toml(to_toml(config), where);
  return cfg;
}

std::string describe(const PlannedRun& run, const std::string& seed_key) {
  std::string out = "run " + run.id + " (";
  for (const auto& [key, value] : run.axes) out += key + " = " + value.display() + ", ";
  return out + seed_key + " = " + std::to_string(run.seed) + ")";
}

}  // namespace

void check_train_configs(const SweepSpec& spec, const std::vector<PlannedRun>& runs, const std::string& label) {
  if (!spec.check_train_keys) return;
  const char* const generated = "(the sweep's dataset)";  // given as --data at run time
  // Each key where it is written, so that the error says which part of the spec to fix.
  TrainConfig base = load(spec.base, label + " [base]");
  if (spec.has_datagen) base.data_dir = generated;
  if (!spec.seeds.empty()) load({{spec.seed_key, ConfigValue::of_integer(spec.seeds.front())}}, label + " sweep.seed_key");
  for (std::size_t b = 0; b < spec.blocks.size(); ++b)
    for (const auto& [key, values] : spec.blocks[b].axes) {
      std::set<std::string> seen;
      for (const ConfigValue& v : values)
        if (seen.insert(v.text).second) load({{key, v}}, label + " axes[" + std::to_string(b) + "]");
    }
  // A [base] value wrong on its own is reported at [base], not at the first run.
  std::string base_error;
  try {
    validate_train_config(base);
  } catch (const std::invalid_argument& e) {
    base_error = e.what();
  }
  // Then each run as a whole, [base] then what the run sets over it (as run.config, whose keys
  // were all checked above): ranges and combinations (validate_train_config). One binder for
  // every run: its fields point into cfg.
  TrainConfig cfg;
  ConfigBinder binder;
  bind_train_config(binder, cfg);
  for (const PlannedRun& run : runs) {
    FlatConfig over = {{spec.seed_key, ConfigValue::of_integer(run.seed)}};
    for (const auto& [key, value] : run.axes) over[key] = value;
    cfg = base;
    binder.load_toml(to_toml(over), label + " run " + run.id);
    try {
      validate_train_config(cfg);
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();  // "KEY: problem"
      const std::string key = what.substr(0, what.find(':'));
      bool on_axis = false;
      for (const auto& axis : run.axes) on_axis = on_axis || axis.first == key;
      const bool at_base = !on_axis && what == base_error;
      throw std::invalid_argument((at_base ? label + " [base]" : label + ": " + describe(run, spec.seed_key)) + ": " + what);
    }
  }
}

}  // namespace moetb::sweeps
