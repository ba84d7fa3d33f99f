// Shared entry of the two moetb executables: parses, runs the chosen subcommand, and turns
// every failure into one stderr line ("moetb <command>: error: ...") and exit code 1.
#pragma once
#include <CLI/App.hpp>

namespace moetb::cli {

int run_app(CLI::App& app, int argc, char** argv);

}  // namespace moetb::cli
