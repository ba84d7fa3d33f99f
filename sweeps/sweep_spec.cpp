// Sweep spec parsing (toml++) and expansion into runs with stable, config-derived ids.
// Keys keep the order in which the spec file wrote them (toml++ tables are sorted maps,
// so the source position decides), because axis order decides run order and columns.
#include "sweeps/sweep_spec.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <toml++/toml.h>

namespace moetb::sweeps {
namespace {

using Entry = std::pair<std::string, const toml::node*>;

[[noreturn]] void fail(const std::string& label, const std::string& what) { throw std::invalid_argument(label + ": " + what); }

const char* kind_name(ConfigValue::Kind k) {
  switch (k) {
    case ConfigValue::Kind::string: return "a string";
    case ConfigValue::Kind::integer: return "an integer";
    case ConfigValue::Kind::floating: return "a number";
    case ConfigValue::Kind::boolean: return "a boolean";
    case ConfigValue::Kind::list: return "a list";
  }
  return "a value";
}

// Integers and floats mix (0 and 0.01 both set a coefficient); other kinds must agree.
bool same_type(ConfigValue::Kind a, ConfigValue::Kind b) {
  auto numeric = [](ConfigValue::Kind k) { return k == ConfigValue::Kind::integer || k == ConfigValue::Kind::floating; };
  return a == b || (numeric(a) && numeric(b));
}

// Table entries in the order the file wrote them.
std::vector<Entry> ordered(const toml::table& table) {
  std::vector<Entry> out;
  for (const auto& [k, node] : table) out.emplace_back(std::string(k.str()), &node);
  std::stable_sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
    const auto& pa = a.second->source().begin;
    const auto& pb = b.second->source().begin;
    return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
  });
  return out;
}

std::string quote(const std::string& s) {
  std::ostringstream out;
  out << toml::toml_formatter(toml::value<std::string>(s), toml::toml_formatter::default_flags &
                                                               ~(toml::format_flags::allow_literal_strings |
                                                                 toml::format_flags::allow_multi_line_strings));
  return out.str();
}

ConfigValue scalar(const toml::node& node, const std::string& label, const std::string& key) {
  ConfigValue v;
  if (auto s = node.value<std::string>(); s && node.is_string()) return ConfigValue::of_string(*s);
  if (node.is_integer()) return ConfigValue::of_integer(*node.value<int64_t>());
  if (node.is_floating_point()) {
    char buf[64];
    const double x = *node.value<double>();
    const auto res = std::to_chars(buf, buf + sizeof buf, x);
    v.kind = ConfigValue::Kind::floating;
    v.text.assign(buf, res.ptr);
    if (v.text.find_first_of(".eEn") == std::string::npos) v.text += ".0";
    return v;
  }
  if (node.is_boolean()) {
    v.kind = ConfigValue::Kind::boolean;
    v.text = *node.value<bool>() ? "true" : "false";
    return v;
  }
  if (const toml::array* list = node.as_array()) {  // e.g. datagen shares = [2, 1, 1]
    v.kind = ConfigValue::Kind::list;
    v.text = "[";
    for (const toml::node& x : *list) {
      if (x.is_array() || x.is_table()) fail(label, "key '" + key + "': expected a list of scalars");
      v.text += (v.text.size() > 1 ? ", " : "") + scalar(x, label, key).text;
    }
    v.text += "]";
    return v;
  }
  fail(label, "key '" + key + "': expected a string, number, boolean or list");
}

// Flattens nested tables into dotted keys ("router.name" and [router] name are the same).
void flatten(const toml::table& table, const std::string& prefix, const std::string& label, FlatConfig& out) {
  for (const auto& [name, node] : ordered(table)) {
    const std::string key = prefix.empty() ? name : prefix + "." + name;
    if (const toml::table* sub = node->as_table()) {
      flatten(*sub, key, label, out);
    } else {
      if (out.count(key)) fail(label, "key '" + key + "' is given twice");
      out[key] = scalar(*node, label, key);
    }
  }
}

// Axis blocks: every key except `mode` maps to a non-empty array of scalars.
SweepSpec::Block parse_block(const toml::table& table, const std::string& label, const std::string& where) {
  SweepSpec::Block block;
  struct Walker {
    const std::string& label;
    SweepSpec::Block& block;
    void walk(const toml::table& t, const std::string& prefix) {
      for (const auto& [name, node] : ordered(t)) {
        const std::string key = prefix.empty() ? name : prefix + "." + name;
        if (prefix.empty() && name == "mode") continue;
        if (const toml::table* sub = node->as_table()) {
          walk(*sub, key);
          continue;
        }
        const toml::array* values = node->as_array();
        if (values == nullptr || values->empty()) fail(label, "axis '" + key + "': expected a non-empty list of values");
        std::vector<ConfigValue> list;
        for (const toml::node& v : *values) list.push_back(scalar(v, label, key));
        block.axes.emplace_back(key, std::move(list));
      }
    }
  } walker{label, block};
  walker.walk(table, "");
  const std::string mode = table["mode"].value_or(std::string("grid"));
  if (mode != "grid" && mode != "zip") fail(label, where + ".mode: '" + mode + "' is not grid or zip");
  block.zip = mode == "zip";
  if (block.axes.empty()) fail(label, where + ": no axes (give key = [values, ...])");
  if (block.zip)
    for (const auto& [key, values] : block.axes)
      if (values.size() != block.axes.front().second.size())
        fail(label, where + ": zipped axis '" + key + "' has " + std::to_string(values.size()) + " values but '" +
                        block.axes.front().first + "' has " + std::to_string(block.axes.front().second.size()));
  return block;
}

}  // namespace

std::string ConfigValue::display() const {
  if (kind != Kind::string) return text;
  toml::table t = toml::parse("v = " + text);
  return t["v"].value_or(std::string());
}

ConfigValue ConfigValue::of_string(const std::string& s) { return {Kind::string, quote(s)}; }
ConfigValue ConfigValue::of_integer(int64_t v) { return {Kind::integer, std::to_string(v)}; }

SweepSpec parse_spec(const std::string& toml_text, const std::string& label) {
  toml::table root;
  try {
    root = toml::parse(toml_text, label);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    fail(label + ":" + std::to_string(at.line) + ":" + std::to_string(at.column), "TOML syntax error: " + std::string(e.description()));
  }
  for (const auto& [name, node] : ordered(root))
    if (name != "sweep" && name != "base" && name != "datagen" && name != "axes")
      fail(label, "unknown table '" + name + "' (expected sweep, base, datagen, axes)");
  SweepSpec spec;
  const toml::table* sweep = root["sweep"].as_table();
  if (sweep == nullptr) fail(label, "missing [sweep] table (name, seeds)");
  for (const auto& [name, node] : ordered(*sweep))
    if (name != "name" && name != "seeds" && name != "seed_key" && name != "metrics" && name != "check_train_keys")
      fail(label, "sweep." + name + ": unknown key (expected name, seeds, seed_key, metrics, check_train_keys)");
  spec.name = (*sweep)["name"].value_or(std::string("sweep"));
  if (spec.name.empty() || spec.name.find_first_of("/ \t\n") != std::string::npos)
    fail(label, "sweep.name: '" + spec.name + "' must be non-empty without spaces or '/'");
  spec.seed_key = (*sweep)["seed_key"].value_or(spec.seed_key);
  if (const toml::node* check = sweep->get("check_train_keys")) {
    if (!check->is_boolean()) fail(label, "sweep.check_train_keys: expected true or false");
    spec.check_train_keys = *check->value<bool>();
  }
  const toml::array* seeds = (*sweep)["seeds"].as_array();
  if (seeds == nullptr || seeds->empty()) fail(label, "sweep.seeds: expected a non-empty list of integers");
  for (const toml::node& s : *seeds) {
    if (!s.is_integer() || *s.value<int64_t>() < 0) fail(label, "sweep.seeds: expected non-negative integers");
    spec.seeds.push_back(*s.value<int64_t>());
  }
  if (const toml::array* metrics = (*sweep)["metrics"].as_array())
    for (const toml::node& m : *metrics) {
      if (!m.is_string()) fail(label, "sweep.metrics: expected a list of column names");
      spec.metrics.push_back(*m.value<std::string>());
    }
  if (const toml::table* base = root["base"].as_table()) flatten(*base, "", label + " [base]", spec.base);
  if (const toml::table* dg = root["datagen"].as_table()) {
    flatten(*dg, "", label + " [datagen]", spec.datagen);
    spec.has_datagen = true;
  }
  if (spec.has_datagen && spec.base.count("data.dir"))
    fail(label, "give either base data.dir or a [datagen] table, not both");
  if (!spec.has_datagen && !spec.base.count("data.dir"))
    fail(label, "no data: set data.dir in [base] or add a [datagen] table (empty = datagen defaults)");
  if (spec.base.count(spec.seed_key)) fail(label, "base " + spec.seed_key + ": seeds come from sweep.seeds");
  if (const toml::node* axes = root.get("axes")) {
    const toml::array* list = axes->as_array();
    if (list == nullptr || !list->is_array_of_tables()) fail(label, "axes: expected [[axes]] blocks");
    std::size_t i = 0;
    for (const toml::node& b : *list) spec.blocks.push_back(parse_block(*b.as_table(), label, "axes[" + std::to_string(i++) + "]"));
  }
  std::map<std::string, ConfigValue> first_of;  // axis key -> its first value (or the base value)
  for (const auto& [key, value] : spec.base) first_of[key] = value;
  uint64_t n_runs = 0;  // counted before expanding: a grid of many axes grows as their product
  for (const auto& block : spec.blocks) {
    uint64_t combos = 1;
    for (const auto& [key, values] : block.axes) {
      combos = block.zip ? values.size() : std::min<uint64_t>(combos * values.size(), uint64_t{1} << 40);
      for (const ConfigValue& v : values) {
        const auto [it, added] = first_of.emplace(key, v);
        if (!same_type(it->second.kind, v.kind))
          fail(label, "axis '" + key + "': value " + v.text + " is " + kind_name(v.kind) + ", but " + it->second.text +
                          (spec.base.count(key) ? " in [base]" : " before it") + " is " + kind_name(it->second.kind));
      }
    }
    n_runs += combos;
  }
  n_runs = std::max<uint64_t>(n_runs, 1) * spec.seeds.size();
  if (n_runs > kMaxSweepRuns)
    fail(label, "the spec expands to " + std::to_string(n_runs) + " runs (axes x seeds), more than " +
                    std::to_string(kMaxSweepRuns) + " a sweep may plan; split it or use fewer values");
  for (const auto& block : spec.blocks)
    for (const auto& [key, values] : block.axes) {
      if (key == spec.seed_key) fail(label, "axis '" + key + "': seeds come from sweep.seeds");
      if (key == "data.dir" && spec.has_datagen) fail(label, "axis 'data.dir' cannot be combined with a [datagen] table");
      if (std::find(spec.axis_keys.begin(), spec.axis_keys.end(), key) == spec.axis_keys.end()) spec.axis_keys.push_back(key);
    }
  return spec;
}

SweepSpec load_spec(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument(path + ": cannot read the sweep spec");
  std::stringstream text;
  text << in.rdbuf();
  return parse_spec(text.str(), path);
}

std::vector<PlannedRun> expand(const SweepSpec& spec) {
  using Combo = std::vector<std::pair<std::string, ConfigValue>>;
  std::vector<Combo> combos;
  for (const auto& block : spec.blocks) {
    std::vector<Combo> local{{}};
    if (block.zip) {
      local.assign(block.axes.front().second.size(), {});
      for (std::size_t i = 0; i < local.size(); ++i)
        for (const auto& [key, values] : block.axes) local[i].emplace_back(key, values[i]);
    } else {
      for (const auto& [key, values] : block.axes) {  // earlier keys vary slowest
        std::vector<Combo> next;
        for (const Combo& c : local)
          for (const ConfigValue& v : values) {
            next.push_back(c);
            next.back().emplace_back(key, v);
          }
        local = std::move(next);
      }
    }
    combos.insert(combos.end(), local.begin(), local.end());
  }
  if (combos.empty()) combos.emplace_back();  // no axes: the base config, once per seed
  std::vector<PlannedRun> runs;
  std::set<std::string> seen;
  for (const Combo& combo : combos)
    for (int64_t seed : spec.seeds) {
      PlannedRun run;
      run.axes = combo;
      run.seed = seed;
      run.config = spec.base;
      for (const auto& [key, value] : combo) run.config[key] = value;
      run.config[spec.seed_key] = ConfigValue::of_integer(seed);
      FlatConfig hashed = run.config;  // the data's config is part of what the run depends on
      for (const auto& [key, value] : spec.datagen) hashed["datagen." + key] = value;
      run.id = config_id(hashed);
      if (seen.insert(run.id).second) runs.push_back(std::move(run));
    }
  return runs;
}

std::string canonical_text(const FlatConfig& config) {
  std::string out;
  for (const auto& [key, value] : config) out += key + " = " + value.text + "\n";
  return out;
}

std::string config_id(const FlatConfig& config) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a, 64 bit
  for (unsigned char c : canonical_text(config)) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf, 12);
}

std::string to_toml(const FlatConfig& config) {
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> tables;  // table -> (name, value)
  for (const auto& [key, value] : config) {
    const auto dot = key.rfind('.');
    tables[dot == std::string::npos ? "" : key.substr(0, dot)].emplace_back(dot == std::string::npos ? key : key.substr(dot + 1), value.text);
  }
  std::string out;
  for (const auto& [table, entries] : tables) {
    if (!table.empty()) out += (out.empty() ? "[" : "\n[") + table + "]\n";
    for (const auto& [name, text] : entries) out += name + " = " + text + "\n";
  }
  return out;
}

}  // namespace moetb::sweeps
