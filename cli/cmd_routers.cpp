// `moetb routers`: every registered router and the options of the token-choice router
// (and the MoE layer's capacity), one line each with its reference (arXiv id), straight
// from the registry (routers/registry.cpp). MoE Routing Testbed arXiv 2604.07030;
// docs/routers.md has the formulas. Then the balancing scopes each method supports. --json
// prints the same as a list of objects.
#include <algorithm>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "routers/router.h"

namespace moetb::cli {

void add_routers(CLI::App& app) {
  auto* cmd = app.add_subcommand("routers", "List the routers and router options with their references");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print JSON: [{name, description, reference}..., {method, key, scopes, note}...]");
  cmd->callback([json] {
    const std::vector<RouterInfo> all = router_catalog();
    const std::vector<ScopeInfo> scopes = balancing_scopes();
    if (*json) {  // the routers and options, then one {method, key, scopes, note} per balancing method
      nlohmann::json j = nlohmann::json::array();
      for (const auto& r : all) j.push_back({{"name", r.name}, {"description", r.description}, {"reference", r.reference}});
      for (const auto& s : scopes) j.push_back({{"method", s.method}, {"key", s.key}, {"scopes", s.scopes}, {"note", s.note}});
      std::cout << j.dump(2) << "\n";
      return;
    }
    std::size_t width = 0;
    for (const auto& r : all) width = std::max(width, r.name.size());
    std::ostringstream out;
    bool options = false;
    out << "routers (router.name):\n";
    for (const auto& r : all) {
      if (!options && r.name.find('.') != std::string::npos) {
        options = true;
        out << "\noptions (training config keys; for topk unless noted):\n";
      }
      out << "  " << r.name << std::string(width - r.name.size() + 2, ' ') << r.description
          << (r.reference.empty() ? "" : " [" + r.reference + "]") << "\n";
    }
    std::size_t method_width = 0, key_width = 0;
    for (const auto& s : scopes) {
      method_width = std::max(method_width, s.method.size());
      key_width = std::max(key_width, s.key.size());
    }
    out << "\nbalancing scopes (method, key, supported values):\n";
    for (const auto& s : scopes) {
      std::string values;
      for (const auto& v : s.scopes) values += (values.empty() ? "" : ", ") + v;
      out << "  " << s.method << std::string(method_width - s.method.size() + 2, ' ') << s.key
          << std::string(key_width - s.key.size() + 2, ' ') << values << "  (" << s.note << ")\n";
    }
    std::cout << out.str();
  });
}

}  // namespace moetb::cli
