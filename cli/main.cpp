// moetb: the MoE routing testbed's command line. One subcommand per file in cli/;
// every failure ends as one line on stderr naming what is wrong, and exit code 1.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "cli/commands.h"
#include "cli/output.h"
#include "metrics/safetensors.h"

int main(int argc, char** argv) {
  CLI::App app{"moetb: a testbed and simulator for Mixture-of-Experts routing"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("moetb 0.1.0 (") + moetb::cli::git_revision() + ")");
  moetb::cli::add_simulate(app);
  moetb::cli::add_metrics(app);
  moetb::cli::add_validate(app);
  moetb::cli::add_paths(app);
  moetb::cli::add_compare(app);
  moetb::cli::add_datagen(app);
  moetb::cli::add_runs(app);
#ifdef MOETB_WITH_TORCH
  moetb::cli::add_train(app);
#endif
  auto command_name = [&app] {
    std::string name = "moetb";
    for (const auto* sub : app.get_subcommands()) name += " " + sub->get_name();
    return name;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {  // bad usage: one line, like every other failure
    std::cerr << command_name() << ": error: " << moetb::TraceError::one_line(e.what()) << " (see --help)" << std::endl;
    return 1;
  } catch (const std::exception& e) {
    // LibTorch errors (c10::Error) append a backtrace after the message: keep the message.
    std::string what = e.what();
    what = what.substr(0, what.find("\nException raised from"));
    std::cerr << command_name() << ": error: " << moetb::TraceError::one_line(what) << std::endl;
    return 1;
  }
  return moetb::cli::exit_code();
}
