// run_app (run_app.h).
#include "cli/run_app.h"

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "cli/output.h"
#include "metrics/safetensors.h"

namespace moetb::cli {

int run_app(CLI::App& app, int argc, char** argv) {
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
    std::cerr << command_name() << ": error: " << TraceError::one_line(e.what()) << " (see --help)" << std::endl;
    return 1;
  } catch (const std::exception& e) {
    // LibTorch errors (c10::Error) append a backtrace after the message: keep the message.
    std::string what = e.what();
    what = what.substr(0, what.find("\nException raised from"));
    std::cerr << command_name() << ": error: " << TraceError::one_line(what) << std::endl;
    return 1;
  }
  return exit_code();
}

}  // namespace moetb::cli
