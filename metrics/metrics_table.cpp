// Plain-text table of the metrics JSON (see metrics_table.h).
#include "metrics/metrics_table.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

namespace moetb {
namespace {

struct Column {
  const char* title;
  std::vector<const char*> path;  // key path inside a layer / summary object
};

const nlohmann::json* lookup(const nlohmann::json& obj, const std::vector<const char*>& path) {
  const nlohmann::json* cur = &obj;
  for (const char* key : path) {
    if (!cur->is_object() || !cur->contains(key)) return nullptr;
    cur = &(*cur)[key];
  }
  return cur;
}

}  // namespace

std::string format_number(const nlohmann::json& value, int decimals) {
  if (!value.is_number()) return "-";
  if (value.is_number_integer()) return std::to_string(value.get<int64_t>());
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value.get<double>());
  return buf;
}

std::string metrics_table(const nlohmann::json& m) {
  std::vector<Column> cols = {{"layer", {"layer"}},       {"RS", {"rs"}},
                              {"RS_mm", {"rs_mm"}},       {"NER", {"ner"}},
                              {"DI", {"di"}},             {"RSS", {"rss"}},
                              {"NE2", {"ne", "2"}},       {"NE4", {"ne", "4"}},
                              {"NE10", {"ne", "10"}},     {"util", {"load", "utilization"}},
                              {"H(load)", {"load", "entropy"}}, {"MaxVio", {"load", "max_vio"}},
                              {"dead", {"load", "dead_experts"}}};
  const bool purity = !m["layers"].empty() && m["layers"][0].contains("purity");
  if (purity) {
    cols.push_back({"purity", {"purity"}});
    cols.push_back({"pur_ids", {"purity_ids"}});
  }
  std::ostringstream out;
  const auto& tr = m["trace"];
  out << "trace: " << tr["tokens"] << " tokens, " << tr["layers"] << " layers, " << tr["num_experts"]
      << " experts, top-" << tr["top_k"] << ", " << tr["domains"].size() << " domains\n\n";
  auto row = [&](const nlohmann::json& obj, const std::string& first) {
    for (std::size_t c = 0; c < cols.size(); ++c) {
      std::string cell;
      if (c == 0) {
        cell = first;
      } else {
        const nlohmann::json* v = lookup(obj, cols[c].path);
        cell = v ? format_number(*v) : "-";
      }
      char buf[32];
      std::snprintf(buf, sizeof buf, c == 0 ? "%-8s" : "%8s", cell.c_str());
      out << buf;
    }
    out << '\n';
  };
  for (std::size_t c = 0; c < cols.size(); ++c) {
    char buf[32];
    std::snprintf(buf, sizeof buf, c == 0 ? "%-8s" : "%8s", cols[c].title);
    out << buf;
  }
  out << '\n';
  for (const auto& layer : m["layers"]) row(layer, std::to_string(layer["layer"].get<int>()));
  row(m["summary"], "mean");
  out << "\nRS routing specialization, RS_mm its bias-corrected value, NER normalized effective rank, DI domain\n"
         "isolation (all 1 = domains use disjoint experts, 0 = all route alike); RSS routing stiffness (1 = a token\n"
         "id always gets the same experts, 0 = chance); NEn share of n-token windows one expert holds; util, H(load),\n"
         "MaxVio, dead: load balance; purity against the reference groups. Definitions: docs/metrics.md\n";
  out << "\nper domain (RS averaged over layers):\n";
  for (auto it = m["per_domain"].begin(); it != m["per_domain"].end(); ++it)
    out << "  " << it.key() << ": RS " << format_number(it.value()["rs"]) << ", " << it.value()["tokens"]
        << " tokens\n";
  return out.str();
}

}  // namespace moetb
