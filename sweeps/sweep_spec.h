// A sweep spec (TOML) and its expansion into runs. A spec holds a base run config (the
// keys of `moetb train`, docs/training.md), axis blocks combined as a grid (cartesian
// product) or zipped, a list of seeds, and optionally a [datagen] table for the data.
// Each run's id is a hash of its canonical config, so re-planning gives the same ids.
// Follows the sweep design of the MoE Routing Testbed (arXiv 2604.07030): routers x
// balancing scope x coefficients x seeds. docs/sweeps.md documents the format.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace moetb::sweeps {

// A scalar config value as TOML wrote it: its canonical text is what gets hashed and
// written into a run's config.toml ("topk" with quotes, 0.01, 3, true).
struct ConfigValue {
  enum class Kind { string, integer, floating, boolean, list } kind = Kind::string;
  std::string text;  // canonical TOML text
  std::string display() const;  // without quotes for strings: for tables and CSV
  static ConfigValue of_string(const std::string& s);
  static ConfigValue of_integer(int64_t v);
};

using FlatConfig = std::map<std::string, ConfigValue>;  // dotted key -> value

struct PlannedRun {
  std::string id;                                   // 12 hex digits of the config hash
  std::vector<std::pair<std::string, ConfigValue>> axes;  // axis key -> value, spec order
  int64_t seed = 0;
  FlatConfig config;  // base + axes + seed: every key the run sets (data.dir as written)
};

struct SweepSpec {
  std::string name;                 // [sweep] name
  std::string seed_key = "train.seed";
  std::vector<int64_t> seeds;       // [sweep] seeds
  std::vector<std::string> metrics; // [sweep] metrics: columns to plot (collect)
  bool check_train_keys = true;     // [sweep] check_train_keys: plan checks run configs as moetb train reads them
  FlatConfig base;                  // [base]
  FlatConfig datagen;               // [datagen] (empty when the base names data.dir)
  bool has_datagen = false;
  std::vector<std::string> axis_keys;  // every axis key over all blocks, first-seen order
  struct Block {
    bool zip = false;
    std::vector<std::pair<std::string, std::vector<ConfigValue>>> axes;  // spec order
  };
  std::vector<Block> blocks;
};

// At most this many runs per sweep (each is a training run and a folder): checked before
// the grid is expanded.
inline constexpr uint64_t kMaxSweepRuns = 100000;

// Parses a spec; errors are one line naming the file and the key. Checks that every
// value of an axis has one type (and the [base] value's, if any), and the run count.
SweepSpec parse_spec(const std::string& toml_text, const std::string& label);
SweepSpec load_spec(const std::string& path);

// Every run of the spec (blocks in order, grid keys varying last-fastest, then seeds),
// duplicates removed (first kept).
std::vector<PlannedRun> expand(const SweepSpec& spec);

// The canonical text of a config ("key = value" lines, sorted) and its 64-bit FNV-1a hash.
std::string canonical_text(const FlatConfig& config);
std::string config_id(const FlatConfig& config);

// A run config as TOML tables ([model], [router], ...), loadable by `moetb train --config`.
std::string to_toml(const FlatConfig& config);

}  // namespace moetb::sweeps
