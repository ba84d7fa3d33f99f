// moetb: the MoE routing testbed's command line. One subcommand per file in cli/;
// every failure ends as one line on stderr naming what is wrong, and exit code 1.
// This executable is torch-free and starts in milliseconds; `train` and `routers` need
// LibTorch (0.9 s to load) and run in moetb-torch, installed beside it, via exec, after
// choosing the BLAS kernel (common/machine_info.h: OPENBLAS_CORETYPE, never over a user's).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

#include "cli/commands.h"
#include "cli/env_report.h"
#include "cli/output.h"
#include "cli/run_app.h"
#include "common/machine_info.h"

namespace {

constexpr const char* kTorchCommands[] = {"train", "routers", "env", "finetune", "knockout"};

std::filesystem::path torch_binary_path(char** argv) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (ec ? std::filesystem::path(argv[0]) : self).parent_path() / "moetb-torch";
}

// Replaces this process with moetb-torch from the same directory; returns only on failure.
int exec_torch_binary(char** argv) {
  std::error_code ec;
  const std::filesystem::path torch_binary = torch_binary_path(argv);
  if (!std::filesystem::exists(torch_binary, ec)) {
    std::cerr << "moetb " << argv[1] << ": error: this build has no LibTorch part (" << torch_binary.string()
              << " is missing; configure with -DMOETB_TORCH=ON)" << std::endl;
    return 1;
  }
  moetb::apply_blas_kernel_choice();  // before libtorch (and with it OpenBLAS) loads
  moetb::apply_thread_environment();  // OMP_WAIT_POLICY=PASSIVE unless set
  ::execv(torch_binary.c_str(), argv);
  std::cerr << "moetb " << argv[1] << ": error: cannot run " << torch_binary.string() << ": " << std::strerror(errno) << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::error_code ec;
  const bool has_torch = std::filesystem::exists(torch_binary_path(argv), ec);
  if (argc > 1)
    for (const char* name : kTorchCommands)
      if (std::strcmp(argv[1], name) == 0 && (has_torch || std::strcmp(name, "env") != 0)) return exec_torch_binary(argv);
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
  moetb::cli::add_sweep(app);
  moetb::cli::add_report(app);
  moetb::cli::add_demo(app);
  if (!has_torch) moetb::cli::add_env_command(app, nullptr);  // else moetb-torch prints it, libtorch included
  // Listed in --help; never parsed here (main hands them to moetb-torch above).
  app.add_subcommand("train", "Train a small MoE language model and record its routing (LibTorch)");
  app.add_subcommand("routers", "List every router and router option with its reference (LibTorch)");
  if (has_torch) app.add_subcommand("env", "Print the environment moetb trains in: CPU, BLAS and its kernel, threads, libtorch, CUDA");
  app.add_subcommand("finetune", "Fine-tune a run on one domain with only chosen experts trainable (LibTorch)");
  app.add_subcommand("knockout", "Causal expert importance: loss increase per domain when each expert is removed (LibTorch)");
  return moetb::cli::run_app(app, argc, argv);
}
