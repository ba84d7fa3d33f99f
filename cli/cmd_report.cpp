// `moetb report PATH --out FILE.html` (placeholder until the report command lands).
#include "cli/commands.h"

namespace moetb::cli {

void add_report(CLI::App&) {}

}  // namespace moetb::cli
