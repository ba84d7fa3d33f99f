// `moetb env` in moetb-torch: the torch-free report (cli/env_report.h) with the loaded
// BLAS itself and the LibTorch part: version, CUDA, intra-op threads, parallel backend, and
// the JIT kernels of the fused paths' products (models/blas_gemm.h).
// moetb execs it for `env` when the build has the LibTorch part (after choosing the
// kernel, so what it prints is what `moetb train` gets).
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include "cli/commands.h"
#include "cli/env_report.h"
#include "models/blas_gemm.h"

namespace moetb::cli {
namespace {

// "libxsmm 1.17, target hsw (matches OpenBLAS's Haswell kernel)", or why it is off.
std::string gemm_jit_line() {
  const nlohmann::json j = blas::jit_gemm_info();
  const std::string lib = j.value("library", std::string("none")), why = j.value("why", std::string());
  if (!j.value("enabled", false)) return lib == "none" ? "none (" + why + ")" : lib + ", off (" + why + ")";
  return lib + ", target " + j.value("target", std::string("?")) + " (" + why + ")";
}

}  // namespace

void add_env(CLI::App& app) {
  add_env_command(app, [] {
    return nlohmann::json{{"libtorch", TORCH_VERSION},
                          {"cuda", torch::cuda::is_available() ? std::to_string(torch::cuda::device_count()) + " device(s)"
                                                               : std::string("not available")},
                          {"intra_op_threads", at::get_num_threads()},
                          {"parallel", at::get_parallel_info().find("OpenMP") != std::string::npos ? "OpenMP" : "native"},
                          {"gemm_jit", gemm_jit_line()}};
  });
}

}  // namespace moetb::cli
