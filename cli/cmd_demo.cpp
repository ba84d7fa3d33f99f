// `moetb demo [NAME]` (placeholder until the demos land).
#include "cli/commands.h"

namespace moetb::cli {

void add_demo(CLI::App&) {}

}  // namespace moetb::cli
