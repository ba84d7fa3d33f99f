// The explicit router registry: every router is listed here by name, in the order
// router_names() reports. No self-registering statics (a static library's linker drops
// them). Routers follow the MoE Routing Testbed (arXiv 2604.07030); see routers/README.md.
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "routers/router.h"
#include "routers/router_internal.h"

namespace moetb {

namespace {

struct RouterEntry {
  const char* name;
  std::unique_ptr<Router> (*make)(const RouterConfig&);
};

constexpr RouterEntry kRouters[] = {
    {"topk", make_topk_router},
    {"oracle", make_oracle_router},
    {"hash", make_hash_router},
    {"random", make_random_router},
};

}  // namespace

std::vector<std::string> router_names() {
  std::vector<std::string> names;
  for (const auto& entry : kRouters) names.emplace_back(entry.name);
  return names;
}

std::unique_ptr<Router> make_router(const RouterConfig& cfg) {
  for (const auto& entry : kRouters)
    if (cfg.name == entry.name) return entry.make(cfg);
  std::string known;
  for (const auto& entry : kRouters) known += (known.empty() ? "" : ", ") + std::string(entry.name);
  throw std::invalid_argument("unknown router '" + cfg.name + "' (known: " + known + ")");
}

}  // namespace moetb
