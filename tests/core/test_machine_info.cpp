// The BLAS kernel choice (common/machine_info.h) and `moetb env`: the kernel the launcher
// picks computes a product to fp32 accuracy against a double-precision reference; a
// user's OPENBLAS_CORETYPE is never overridden; the rank table orders kernel families;
// a training run's run.json names the kernel it ran with.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/machine_info.h"
#include "tests/core/cli_test_util.h"

namespace {

// Sets or clears an environment variable for one scope.
struct EnvGuard {
  EnvGuard(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~EnvGuard() {
    if (had_) ::setenv(name_, old_.c_str(), 1);
    else ::unsetenv(name_);
  }
  const char* name_;
  std::string old_;
  bool had_ = false;
};

}  // namespace

TEST_CASE("blas kernel: families rank and the CPU's best kernel follows its features", "[cli]") {
  CHECK(moetb::blas_kernel_rank("Prescott") < moetb::blas_kernel_rank("Haswell"));
  CHECK(moetb::blas_kernel_rank("Zen") == moetb::blas_kernel_rank("Haswell"));
  CHECK(moetb::blas_kernel_rank("Haswell") < moetb::blas_kernel_rank("SkylakeX"));
  CHECK(moetb::blas_kernel_rank("SkylakeX") < moetb::blas_kernel_rank("Cooperlake"));
  CHECK(moetb::blas_kernel_rank("SomethingNew") == -1);
  moetb::CpuInfo cpu;
  CHECK(moetb::best_blas_kernel(cpu).empty());
  cpu.avx2 = cpu.fma = true;
  CHECK(moetb::best_blas_kernel(cpu) == "Haswell");
  cpu.avx512f = cpu.avx512bw = cpu.avx512dq = true;
  CHECK(moetb::best_blas_kernel(cpu) == "Haswell");  // VL missing
  cpu.avx512vl = true;
  CHECK(moetb::best_blas_kernel(cpu) == "SkylakeX");
}

TEST_CASE("blas kernel: the decision upgrades only a lower-ranked OpenBLAS pick and keeps a user's value", "[cli]") {
  moetb::CpuInfo avx512;
  avx512.avx2 = avx512.fma = avx512.avx512f = avx512.avx512bw = avx512.avx512dq = avx512.avx512vl = true;
  moetb::CpuInfo avx2;
  avx2.avx2 = avx2.fma = true;
  const auto prescott = moetb::decide_blas_kernel(avx512, "Prescott", "");  // the unrecognised Xeon
  CHECK(prescott.chosen == "SkylakeX");
  CHECK(prescott.source == "moetb");
  CHECK(moetb::decide_blas_kernel(avx512, "Haswell", "").chosen == "SkylakeX");
  CHECK(moetb::decide_blas_kernel(avx2, "Prescott", "").chosen == "Haswell");
  for (const char* kept : {"Cooperlake", "SkylakeX", "SapphireRapids", "SomethingNew"}) {
    const auto c = moetb::decide_blas_kernel(avx512, kept, "");
    CHECK(c.chosen.empty());
    CHECK(c.kernel == kept);
    CHECK(c.source == "openblas");
  }
  CHECK(moetb::decide_blas_kernel(avx2, "Haswell", "").chosen.empty());
  const auto user = moetb::decide_blas_kernel(avx512, "Prescott", "Prescott");
  CHECK(user.chosen.empty());
  CHECK(user.source == "user");
  CHECK(moetb::decide_blas_kernel(avx512, "", "").source == "none");
}

TEST_CASE("blas kernel: the chosen kernel multiplies to fp32 accuracy against a double reference", "[cli]") {
  const EnvGuard clear("OPENBLAS_CORETYPE", nullptr), source("MOETB_BLAS_KERNEL_SOURCE", nullptr);
  const moetb::CpuInfo cpu = moetb::cpu_info();
  const moetb::BlasKernelChoice c = moetb::choose_blas_kernel(cpu);
  if (c.source == "none") {
    WARN("no OpenBLAS as libblas.so.3 here: nothing to choose");
    return;
  }
  CHECK(c.source != "user");
  CHECK(!c.kernel.empty());
  if (c.source == "moetb") CHECK(moetb::blas_kernel_rank(c.chosen) > moetb::blas_kernel_rank(c.openblas_default));
  for (const std::string& kernel : {c.kernel, c.openblas_default}) {
    const moetb::BlasCheck r = moetb::check_blas_sgemm(kernel, 67, 45, 301, false);  // odd sizes: edge kernels too
    INFO("kernel " << kernel << ": " << r.error);
    REQUIRE(r.error.empty());
    CHECK(r.kernel == kernel);
    CHECK(r.max_rel_error < 1e-5);  // fp32 rounding of a 301-term sum, relative to sum |a b|
  }
}

TEST_CASE("blas kernel: a user's OPENBLAS_CORETYPE is kept", "[cli]") {
  const EnvGuard user("OPENBLAS_CORETYPE", "Prescott"), source("MOETB_BLAS_KERNEL_SOURCE", nullptr);
  const moetb::BlasKernelChoice c = moetb::choose_blas_kernel(moetb::cpu_info());
  CHECK(c.source == "user");
  CHECK(c.kernel == "Prescott");
  CHECK(c.chosen.empty());
  ctu::Cli cli;
  const ctu::Result r = cli.run("env --json");
  REQUIRE(r.rc == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["blas"]["kernel_source"] == "user");
  CHECK(j["blas"]["OPENBLAS_CORETYPE"] == "Prescott");
  if (j["blas"].value("loaded", false)) CHECK(j["blas"]["kernel"] == "Prescott");  // moetb-torch's loaded OpenBLAS
}

TEST_CASE("moetb env: names the CPU, the kernel and its source", "[cli]") {
  const EnvGuard clear("OPENBLAS_CORETYPE", nullptr), source("MOETB_BLAS_KERNEL_SOURCE", nullptr);
  ctu::Cli cli;
  const ctu::Result r = cli.run("env --json --check");
  REQUIRE(r.rc == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["cpu"]["logical_cpus"].get<int>() >= 1);
  const auto& b = j["blas"];
  CHECK(b["kernel_source"] != "user");
  if (b["kernel_source"] == "none") return;
  CHECK(b["check"]["kernel"] == b["kernel"]);
  CHECK(b["check"]["max_rel_error"].get<double>() < 1e-5);
  const ctu::Result text = cli.run("env");
  REQUIRE(text.rc == 0);
  CHECK(text.out.find("blas kernel:") != std::string::npos);
}

TEST_CASE("moetb train: run.json records the CPU and the BLAS kernel the run used", "[cli]") {
  if (!std::filesystem::exists(std::filesystem::path(MOETB_BINARY).parent_path() / "moetb-torch")) return;
  const moetb::CpuInfo cpu = moetb::cpu_info();
  if (!cpu.avx2 || !cpu.fma) return;  // the Haswell kernel needs them
  const EnvGuard user("OPENBLAS_CORETYPE", "Haswell"), source("MOETB_BLAS_KERNEL_SOURCE", nullptr), omp("OMP_WAIT_POLICY", nullptr);
  const EnvGuard timeout("OPENBLAS_THREAD_TIMEOUT", nullptr);
  ctu::Cli cli("machine-train");
  REQUIRE(cli.run("datagen --out data --domains 2 --vocab-per-domain 16 --seq-len 16 --train-tokens 2048 --val-tokens 256 "
                  "--doc-len-mean 40").rc == 0);
  const ctu::Result r = cli.run("train --data data --out run --steps 1 --set model.d_model=16 --set model.n_heads=2 "
                                "--set moe.n_experts=4 --set moe.d_ff=16 --set train.micro_batch=4 --set eval.sequences=4 -q");
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const auto info = nlohmann::json::parse(ttu::read_bytes(cli.work.file("run/run.json")));
  const auto& m = info.at("machine");
  CHECK(m["cpu"]["logical_cpus"].get<int>() >= 1);
  CHECK(m["blas"]["kernel"] == "Haswell");  // the user's value, kept and loaded
  CHECK(m["blas"]["kernel_source"] == "user");
  CHECK(m["blas"]["threads"] == 1);         // train.threads also sizes OpenBLAS's pool
  CHECK(m["blas"]["OMP_WAIT_POLICY"] == "PASSIVE");
  CHECK(m["blas"]["OPENBLAS_THREAD_TIMEOUT"] == "4");  // set by the launcher: idle OpenBLAS workers sleep at once
}
