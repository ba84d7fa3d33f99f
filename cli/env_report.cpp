// `moetb env` (env_report.h). In moetb (no LibTorch loaded) the BLAS section is the kernel
// the launcher would choose; in moetb-torch it is the loaded library itself. Text output
// is one aligned "key: value" line per item, plus a note when a user's OPENBLAS_CORETYPE
// pins a lower kernel than the CPU supports.
#include "cli/env_report.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>

#include "common/machine_info.h"

namespace moetb::cli {
namespace {

std::string scalar(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

}  // namespace

nlohmann::json env_json(const nlohmann::json& torch, bool check) {
  const CpuInfo cpu = cpu_info();
  nlohmann::json j = {{"cpu", cpu_provenance(cpu)}};
  nlohmann::json blas = blas_provenance();
  if (!blas.value("loaded", false)) {  // moetb itself: what `moetb train` would get
    const BlasKernelChoice c = choose_blas_kernel(cpu);
    blas = {{"loaded", false}, {"kernel", c.kernel}, {"kernel_source", c.source}};
    if (!c.openblas_default.empty()) blas["openblas_default_kernel"] = c.openblas_default;
  }
  blas["cpu_best_kernel"] = best_blas_kernel(cpu);
  const char* user = std::getenv("OPENBLAS_CORETYPE");
  blas["OPENBLAS_CORETYPE"] = user ? user : "";
  if (check) {
    const std::string kernel = blas.value("kernel", std::string());
    const BlasCheck r = check_blas_sgemm(kernel, 67, 45, 301, /*time_it=*/true);
    blas["check"] = r.error.empty() ? nlohmann::json{{"kernel", r.kernel}, {"max_rel_error", r.max_rel_error},
                                                     {"sgemm_gflops_1_thread_n1024", r.gflops}}
                                    : nlohmann::json{{"error", r.error}};
  }
  j["blas"] = blas;
  j["threads"] = {{"train_default", 1}, {"logical_cpus", cpu.logical_cpus}};
  j["torch"] = torch;
  return j;
}

std::string env_text(const nlohmann::json& env) {
  std::ostringstream out;
  const auto& cpu = env["cpu"];
  std::string features;
  for (const auto& f : cpu["features"]) features += (features.empty() ? "" : " ") + f.get<std::string>();
  out << "cpu:            " << scalar(cpu["model"]) << " (" << cpu["logical_cpus"] << " logical CPUs; " << features << ")\n";
  const auto& b = env["blas"];
  out << "blas library:   " << (b.contains("library") ? scalar(b["library"]) : std::string("libblas.so.3 (not loaded by moetb itself)")) << "\n";
  if (b.contains("config")) out << "blas config:    " << scalar(b["config"]) << "\n";
  out << "blas kernel:    " << scalar(b.value("kernel", nlohmann::json(""))) << " (source: " << scalar(b.value("kernel_source", nlohmann::json("")));
  if (b.contains("openblas_default_kernel")) out << "; OpenBLAS alone picks " << scalar(b["openblas_default_kernel"]);
  out << "; this CPU's best: " << scalar(b["cpu_best_kernel"]) << ")\n";
  const std::string kernel = scalar(b.value("kernel", nlohmann::json(""))), best = scalar(b["cpu_best_kernel"]);
  if (b.value("kernel_source", "") == "user" && blas_kernel_rank(kernel) >= 0 && blas_kernel_rank(kernel) < blas_kernel_rank(best))
    out << "note:           OPENBLAS_CORETYPE=" << kernel << " is set and kept; this CPU runs " << best
        << " kernels (about 2x faster products here): unset it to let moetb choose\n";
  if (b.contains("threads")) out << "blas threads:   " << b["threads"] << "\n";
  if (b.contains("check")) {
    const auto& c = b["check"];
    if (c.contains("error")) out << "blas check:     error: " << scalar(c["error"]) << "\n";
    else {
      char line[160];
      std::snprintf(line, sizeof line, "blas check:     %s, max relative error %.2e against double, sgemm %.1f GFLOP/s on 1 thread (n=1024)\n",
                    c["kernel"].get<std::string>().c_str(), c["max_rel_error"].get<double>(), c["sgemm_gflops_1_thread_n1024"].get<double>());
      out << line;
    }
  }
  out << "train threads:  " << env["threads"]["train_default"] << " by default (train.threads); OMP_WAIT_POLICY="
      << scalar(b.value("OMP_WAIT_POLICY", nlohmann::json(""))) << ", OPENBLAS_THREAD_TIMEOUT="
      << scalar(b.value("OPENBLAS_THREAD_TIMEOUT", nlohmann::json(""))) << "\n";
  const auto& t = env["torch"];
  if (t.is_null()) out << "libtorch:       not in this build (configure with -DMOETB_TORCH=ON)\n";
  else
    for (const auto& [k, v] : t.items()) {
      std::string label = k + ":";
      label.resize(std::max<std::size_t>(label.size() + 1, 16), ' ');
      out << label << scalar(v) << "\n";
    }
  return out.str();
}

void add_env_command(CLI::App& app, std::function<nlohmann::json()> torch) {
  auto* cmd = app.add_subcommand("env", "Print the environment moetb trains in: CPU, BLAS and its kernel, threads, libtorch, CUDA");
  auto json = std::make_shared<bool>(false), check = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print JSON");
  cmd->add_flag("--check", *check, "Multiply with the chosen kernel against a double-precision reference and time sgemm");
  cmd->callback([json, check, torch] {
    const nlohmann::json env = env_json(torch ? torch() : nlohmann::json(), *check);
    std::cout << (*json ? env.dump(2) + "\n" : env_text(env));
  });
}

}  // namespace moetb::cli
