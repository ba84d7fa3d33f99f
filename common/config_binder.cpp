// ConfigBinder (config_binder.h): TOML via toml++, overrides, and the effective config.
#include "common/config_binder.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <toml++/toml.h>
#include <type_traits>

namespace moetb {
namespace {

[[noreturn]] void fail(const std::string& label, const std::string& key, const std::string& what) {
  throw std::invalid_argument(label + ": key '" + key + "': " + what);
}

const char* type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

double number_of(const toml::node& node, const std::string& label, const std::string& key) {
  if (auto i = node.as_integer()) return static_cast<double>(i->get());
  if (auto f = node.as_floating_point()) return f->get();
  fail(label, key, std::string("expected a number, got ") + type_name(node));
}

void assign(const ConfigBinder::Field& field, const toml::node& node, const std::string& label) {
  const std::string& key = field.key;
  struct Visitor {
    const toml::node& node;
    const std::string& label;
    const std::string& key;
    void operator()(int64_t* v) const {
      if (auto i = node.as_integer()) *v = i->get();
      else fail(label, key, std::string("expected an integer, got ") + type_name(node));
    }
    void operator()(double* v) const { *v = number_of(node, label, key); }
    void operator()(bool* v) const {
      if (auto b = node.as_boolean()) *v = b->get();
      else fail(label, key, std::string("expected true or false, got ") + type_name(node));
    }
    void operator()(std::string* v) const {
      if (auto s = node.as_string()) *v = s->get();
      else fail(label, key, std::string("expected a string, got ") + type_name(node));
    }
    void operator()(std::vector<double>* v) const {
      const toml::array* a = node.as_array();
      if (a == nullptr) fail(label, key, std::string("expected an array of numbers, got ") + type_name(node));
      v->clear();
      for (const toml::node& x : *a) v->push_back(number_of(x, label, key));
    }
    void operator()(std::vector<std::string>* v) const {
      const toml::array* a = node.as_array();
      if (a == nullptr) fail(label, key, std::string("expected an array of strings, got ") + type_name(node));
      v->clear();
      for (const toml::node& x : *a) {
        if (auto s = x.as_string()) v->push_back(s->get());
        else fail(label, key, std::string("expected strings in the array, got ") + type_name(x));
      }
    }
    void operator()(const ConfigBinder::Choice& c) const {
      const auto s = node.as_string();
      if (!s) fail(label, key, std::string("expected a string, got ") + type_name(node));
      try {
        c.set(s->get());
      } catch (const std::invalid_argument& e) {
        fail(label, key, e.what());
      }
    }
    void operator()(std::map<std::string, std::string>* v) const {
      const toml::table* t = node.as_table();
      if (t == nullptr) fail(label, key, std::string("expected a table of strings, got ") + type_name(node));
      v->clear();
      for (const auto& [name, x] : *t) {
        if (auto s = x.as_string()) (*v)[std::string(name.str())] = s->get();
        else fail(label, key + "." + std::string(name.str()), std::string("expected a string, got ") + type_name(x));
      }
    }
  };
  std::visit(Visitor{node, label, key}, field.target);
}

bool is_table_field(const ConfigBinder::Field& f) {
  return std::holds_alternative<std::map<std::string, std::string>*>(f.target);
}

std::string toml_quote(const std::string& s) {
  std::ostringstream out;
  const toml::value<std::string> v(s);
  if (s.find('\n') == std::string::npos) {
    out << v;
  } else {  // toml++ would print a multi-line string, whose leading newline a reader drops: escape instead
    out << toml::toml_formatter(v, toml::toml_formatter::default_flags & ~(toml::format_flags::allow_literal_strings |
                                                                          toml::format_flags::allow_multi_line_strings));
  }
  return out.str();
}

std::string toml_number(double x) {
  // Shortest text that reads back to the same double; always with a '.' or exponent.
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, x);
  std::string s(buf, res.ptr);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

void ConfigBinder::add(std::string key, Target target, std::string help) {
  if (find(key) != nullptr) throw std::logic_error("config key bound twice: " + key);
  fields_.push_back({std::move(key), target, std::move(help)});
}

const ConfigBinder::Field* ConfigBinder::find(const std::string& key) const {
  for (const auto& f : fields_)
    if (f.key == key) return &f;
  return nullptr;
}

void ConfigBinder::load_toml(const std::string& text, const std::string& label) {
  toml::table root;
  try {
    root = toml::parse(text, label);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    throw std::invalid_argument(label + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) +
                                ": TOML syntax error: " + std::string(e.description()));
  }
  // Walks the tables; a key is either a field, a table holding fields, or unknown.
  struct Walker {
    const ConfigBinder& binder;
    const std::string& label;
    void walk(const toml::table& table, const std::string& prefix) const {
      for (const auto& [name, node] : table) {
        const std::string key = prefix + std::string(name.str());
        if (const Field* f = binder.find(key)) {
          assign(*f, node, label);
        } else if (const toml::table* sub = node.as_table(); sub != nullptr && has_prefix(key + ".")) {
          walk(*sub, key + ".");
        } else {
          throw std::invalid_argument(label + ": unknown key '" + key + "'");
        }
      }
    }
    bool has_prefix(const std::string& p) const {
      for (const auto& f : binder.fields())
        if (f.key.compare(0, p.size(), p) == 0) return true;
      return false;
    }
  };
  Walker{*this, label}.walk(root, "");
}

void ConfigBinder::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument(path + ": cannot read config file");
  std::ostringstream text;
  text << in.rdbuf();
  load_toml(text.str(), path);
}

void ConfigBinder::set(const std::string& assignment) {
  const std::string label = "--set " + assignment;
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) throw std::invalid_argument(label + ": expected key=value");
  const std::string key = assignment.substr(0, eq);
  const std::string value = assignment.substr(eq + 1);
  const Field* f = find(key);
  if (f == nullptr) {  // "table.name=value" for a map field
    const auto dot = key.rfind('.');
    const Field* table = dot == std::string::npos ? nullptr : find(key.substr(0, dot));
    if (table == nullptr || !is_table_field(*table)) throw std::invalid_argument(label + ": unknown key '" + key + "'");
    (*std::get<std::map<std::string, std::string>*>(table->target))[key.substr(dot + 1)] = value;
    return;
  }
  if (is_table_field(*f)) throw std::invalid_argument(label + ": '" + key + "' is a table: use " + key + ".NAME=VALUE");
  // Strings go in bare; everything else is parsed as a TOML value.
  std::string toml_value = value;
  if (std::holds_alternative<std::string*>(f->target) || std::holds_alternative<Choice>(f->target))
    toml_value = toml_quote(value);
  else if ((std::holds_alternative<std::vector<double>*>(f->target) ||
            std::holds_alternative<std::vector<std::string>*>(f->target)) && (value.empty() || value.front() != '[')) {
    if (std::holds_alternative<std::vector<std::string>*>(f->target)) {
      std::string list = "[";
      std::size_t begin = 0;
      while (begin <= value.size() && !value.empty()) {
        const auto comma = value.find(',', begin);
        const std::string item = value.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin);
        list += (list.size() > 1 ? "," : "") + toml_quote(item);
        if (comma == std::string::npos) break;
        begin = comma + 1;
      }
      toml_value = list + "]";
    } else {
      toml_value = "[" + value + "]";
    }
  }
  toml::table doc;
  try {
    doc = toml::parse("v = " + toml_value, label);
  } catch (const toml::parse_error& e) {
    throw std::invalid_argument(label + ": cannot parse value '" + value + "' for key '" + key + "'");
  }
  assign(*f, *doc.get("v"), label);
}

std::string ConfigBinder::to_toml() const {
  // Top-level keys first, then one [table] per dotted prefix in first-seen order.
  std::vector<std::string> tables;
  std::map<std::string, std::vector<const Field*>> by_table;
  for (const auto& f : fields_) {
    const auto dot = f.key.rfind('.');
    std::string table = dot == std::string::npos ? "" : f.key.substr(0, dot);
    if (is_table_field(f)) table = f.key;
    if (!by_table.count(table)) tables.push_back(table);
    by_table[table].push_back(&f);
  }
  std::stable_partition(tables.begin(), tables.end(), [](const std::string& t) { return t.empty(); });
  std::ostringstream out;
  for (const auto& table : tables) {
    if (!table.empty()) out << "\n[" << table << "]\n";
    for (const Field* f : by_table[table]) {
      const std::string name = f->key.substr(table.empty() || is_table_field(*f) ? 0 : table.size() + 1);
      struct Printer {
        std::ostream& out;
        const std::string& name;
        void operator()(int64_t* v) const { out << name << " = " << *v << "\n"; }
        void operator()(double* v) const { out << name << " = " << toml_number(*v) << "\n"; }
        void operator()(bool* v) const { out << name << " = " << (*v ? "true" : "false") << "\n"; }
        void operator()(std::string* v) const { out << name << " = " << toml_quote(*v) << "\n"; }
        void operator()(const Choice& c) const { out << name << " = " << toml_quote(c.get()) << "\n"; }
        void operator()(std::vector<double>* v) const {
          out << name << " = [";
          for (std::size_t i = 0; i < v->size(); ++i) out << (i ? ", " : "") << toml_number((*v)[i]);
          out << "]\n";
        }
        void operator()(std::vector<std::string>* v) const {
          out << name << " = [";
          for (std::size_t i = 0; i < v->size(); ++i) out << (i ? ", " : "") << toml_quote((*v)[i]);
          out << "]\n";
        }
        void operator()(std::map<std::string, std::string>* v) const {
          for (const auto& [k, x] : *v) out << toml_quote(k) << " = " << toml_quote(x) << "\n";
        }
      };
      std::visit(Printer{out, name}, f->target);
    }
  }
  return out.str();
}

nlohmann::json ConfigBinder::to_json() const {
  nlohmann::json root = nlohmann::json::object();
  for (const auto& f : fields_) {
    nlohmann::json* node = &root;
    std::size_t begin = 0;
    for (auto dot = f.key.find('.'); dot != std::string::npos; dot = f.key.find('.', begin)) {
      node = &(*node)[f.key.substr(begin, dot - begin)];
      begin = dot + 1;
    }
    nlohmann::json& slot = (*node)[f.key.substr(begin)];
    if (const auto* c = std::get_if<Choice>(&f.target)) slot = c->get();
    else std::visit([&slot](const auto& v) { if constexpr (std::is_pointer_v<std::decay_t<decltype(v)>>) slot = *v; }, f.target);
  }
  return root;
}

}  // namespace moetb
