// Binds the fields of a plain config struct to dotted keys, once, so that TOML files,
// `--set key=value` overrides, the effective config written beside every result, and
// the docs' key list all come from one table. Unknown keys and wrong types are errors
// with one line naming the source and the key ("cfg.toml: key 'seq_len': expected an integer").
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace moetb {

class ConfigBinder {
 public:
  // A field with a fixed set of names (an enum): written and read as a string.
  struct Choice {
    std::function<std::string()> get;
    std::function<void(const std::string&)> set;  // throws std::invalid_argument("'x' is not one of: a, b")
  };
  using Target = std::variant<int64_t*, double*, bool*, std::string*, std::vector<double>*,
                              std::vector<std::string>*, std::map<std::string, std::string>*, Choice>;
  struct Field {
    std::string key;   // dotted: "model.d_model" is d_model in the TOML table [model]
    Target target;
    std::string help;
  };

  void add(std::string key, Target target, std::string help);

  // Applies a TOML document; `label` names it in errors (usually the file path).
  void load_toml(const std::string& text, const std::string& label);
  void load_file(const std::string& path);
  // "key=value": value in TOML-ish syntax for its field (numbers, true/false, a,b,c lists).
  // A map field takes "key.name=value" (e.g. text_domains.code=/usr/include).
  void set(const std::string& assignment);

  std::string to_toml() const;      // the effective config, every key, tables for dotted keys
  nlohmann::json to_json() const;   // the same as a nested JSON object
  const std::vector<Field>& fields() const { return fields_; }

 private:
  const Field* find(const std::string& key) const;
  std::vector<Field> fields_;
};

}  // namespace moetb
