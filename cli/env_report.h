// `moetb env`: the environment moetb trains in (CPU, vector features, the BLAS library,
// OpenBLAS's kernel and where it was chosen, threads; libtorch and CUDA when moetb-torch
// prints it). Torch-free: the torch part comes in as JSON from moetb-torch's cmd_env.
// --check multiplies with the run's kernel against a double-precision reference.
#pragma once
#include <CLI/App.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>

namespace moetb::cli {

// The environment as JSON: cpu, blas (loaded library or the kernel choice), threads,
// and `torch` as given (null = this build has no LibTorch part).
nlohmann::json env_json(const nlohmann::json& torch, bool check);
// The same as aligned "key: value" lines.
std::string env_text(const nlohmann::json& env);
// Registers `env` (--json, --check) on app; torch() gives the torch section when it runs
// (nullptr: this build has no LibTorch part).
void add_env_command(CLI::App& app, std::function<nlohmann::json()> torch);

}  // namespace moetb::cli
