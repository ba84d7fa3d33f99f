// Subcommands of the moetb binary; one file each. Each add_* registers its CLI11
// subcommand and a callback that does the work through the libraries.
#pragma once
#include <CLI/App.hpp>

namespace moetb::cli {

void add_simulate(CLI::App& app);
void add_metrics(CLI::App& app);
void add_validate(CLI::App& app);
void add_paths(CLI::App& app);
void add_compare(CLI::App& app);
void add_datagen(CLI::App& app);
void add_runs(CLI::App& app);
void add_sweep(CLI::App& app);
void add_report(CLI::App& app);
void add_demo(CLI::App& app);
void add_train(CLI::App& app);
void add_routers(CLI::App& app);
void add_env(CLI::App& app);  // moetb-torch's `env` (cli/cmd_env.cpp)
void add_finetune(CLI::App& app);
void add_knockout(CLI::App& app);

}  // namespace moetb::cli
