// moetb-torch: the LibTorch half of the moetb command line (`train`, `routers`, `env`,
// `finetune`, `knockout`). Users
// call it through `moetb train ...` / `moetb routers`, which exec it; it parses the same
// arguments and reports failures the same way (one line, exit code 1).
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/run_app.h"
#include "common/machine_info.h"

int main(int argc, char** argv) {
  moetb::tune_malloc_for_training();  // common/machine_info.h
  CLI::App app{"moetb: a testbed and simulator for Mixture-of-Experts routing (LibTorch commands)"};
  app.name("moetb");
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("moetb 0.1.0 (") + moetb::cli::git_revision() + ")");
  moetb::cli::add_train(app);
  moetb::cli::add_routers(app);
  moetb::cli::add_env(app);
  moetb::cli::add_finetune(app);
  moetb::cli::add_knockout(app);
  return moetb::cli::run_app(app, argc, argv);
}
