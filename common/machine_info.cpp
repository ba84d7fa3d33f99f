// CPU features, the BLAS kernel choice and BLAS provenance (machine_info.h). The BLAS is
// only ever loaded in forked children here (probe and check), so the caller can still set
// OPENBLAS_CORETYPE afterwards: OpenBLAS reads it once, when it loads. OpenBLAS's core
// names and their families follow its driver/others/dynamic.c (0.3.21).
#include "common/machine_info.h"

#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <vector>

namespace moetb {
namespace {

constexpr const char* kBlasLibrary = "libblas.so.3";  // what Debian's libtorch links (alternatives)
constexpr const char* kSourceVar = "MOETB_BLAS_KERNEL_SOURCE";

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// Runs fn in a forked child and returns what it wrote to the pipe ("" on failure).
template <class Fn>
std::string in_child(Fn fn) {
  int fds[2];
  if (::pipe(fds) != 0) return "";
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return "";
  }
  if (pid == 0) {
    ::close(fds[0]);
    const std::string out = fn();
    std::size_t done = 0;
    while (done < out.size()) {
      const ssize_t w = ::write(fds[1], out.data() + done, out.size() - done);
      if (w <= 0) break;
      done += static_cast<std::size_t>(w);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[512];
  for (;;) {
    const ssize_t r = ::read(fds[0], buf, sizeof buf);
    if (r <= 0) break;
    out.append(buf, static_cast<std::size_t>(r));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return out;
}

using CoreName = char* (*)();
using SetThreads = void (*)(int);
using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                       const int*, const float*, const int*, const float*, float*, const int*);

// In a child: loads the BLAS with OPENBLAS_CORETYPE = kernel ("" = leave as is, "-" = unset).
void* load_blas_in_child(const std::string& kernel) {
  if (kernel == "-") ::unsetenv("OPENBLAS_CORETYPE");
  else if (!kernel.empty()) ::setenv("OPENBLAS_CORETYPE", kernel.c_str(), 1);
  ::setenv("OPENBLAS_NUM_THREADS", "1", 1);
  return ::dlopen(kBlasLibrary, RTLD_NOW | RTLD_LOCAL);
}

std::string probe_default_kernel() {
  return in_child([] {
    void* h = load_blas_in_child("-");
    if (!h) return std::string();
    auto core = reinterpret_cast<CoreName>(::dlsym(h, "openblas_get_corename"));
    return core ? std::string(core()) : std::string();
  });
}

}  // namespace

CpuInfo cpu_info() {
  CpuInfo c;
  __builtin_cpu_init();  // libgcc's cpuid reading; also checks the OS saves the AVX/AVX-512 state
  c.avx2 = __builtin_cpu_supports("avx2");
  c.fma = __builtin_cpu_supports("fma");
  c.avx512f = __builtin_cpu_supports("avx512f");
  c.avx512bw = __builtin_cpu_supports("avx512bw");
  c.avx512dq = __builtin_cpu_supports("avx512dq");
  c.avx512vl = __builtin_cpu_supports("avx512vl");
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) c.model = line.substr(line.find_first_not_of(" \t", colon + 1));
      break;
    }
  cpu_set_t set;
  CPU_ZERO(&set);
  c.logical_cpus = ::sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  return c;
}

std::string best_blas_kernel(const CpuInfo& cpu) {
  if (cpu.avx512f && cpu.avx512bw && cpu.avx512dq && cpu.avx512vl) return "SkylakeX";
  if (cpu.avx2 && cpu.fma) return "Haswell";
  return "";
}

int blas_kernel_rank(const std::string& core_name) {
  static const std::vector<std::pair<const char*, int>> ranks = {
      {"katmai", 0},      {"coppermine", 0}, {"northwood", 0},  {"prescott", 1},   {"banias", 1},      {"core2", 1},
      {"penryn", 1},      {"dunnington", 1}, {"nehalem", 1},    {"atom", 1},       {"opteron", 1},     {"opteron(sse3)", 1},
      {"barcelona", 1},   {"nano", 1},       {"bobcat", 1},     {"sandybridge", 2}, {"bulldozer", 2},  {"piledriver", 3},
      {"steamroller", 3}, {"excavator", 3},  {"haswell", 4},    {"zen", 4},        {"skylakex", 5},    {"cooperlake", 6},
      {"sapphirerapids", 7}};
  const std::string n = lower(core_name);
  for (const auto& [name, rank] : ranks)
    if (n == name) return rank;
  return -1;
}

BlasKernelChoice decide_blas_kernel(const CpuInfo& cpu, const std::string& openblas_default, const std::string& user_value) {
  BlasKernelChoice c;
  c.openblas_default = openblas_default;
  if (!user_value.empty()) {
    c.user_value = user_value;
    c.kernel = user_value;
    c.source = "user";
    return c;
  }
  if (openblas_default.empty()) {
    c.source = "none";
    return c;
  }
  const std::string best = best_blas_kernel(cpu);
  const int have = blas_kernel_rank(openblas_default);
  if (!best.empty() && have >= 0 && have < blas_kernel_rank(best)) {
    c.chosen = best;
    c.kernel = best;
    c.source = "moetb";
  } else {
    c.kernel = openblas_default;
    c.source = "openblas";
  }
  return c;
}

BlasKernelChoice choose_blas_kernel(const CpuInfo& cpu) {
  const std::string current = env_or_empty("OPENBLAS_CORETYPE");
  const bool ours = env_or_empty(kSourceVar) == "moetb";  // set by an outer moetb (a sweep's run)
  if (!current.empty() && !ours) return decide_blas_kernel(cpu, "", current);
  return decide_blas_kernel(cpu, probe_default_kernel(), "");
}

BlasKernelChoice apply_blas_kernel_choice() {
  BlasKernelChoice c = choose_blas_kernel(cpu_info());
  if (!c.chosen.empty()) ::setenv("OPENBLAS_CORETYPE", c.chosen.c_str(), 1);
  else if (c.source != "user") ::unsetenv("OPENBLAS_CORETYPE");  // an outer moetb's value that no longer applies
  ::setenv(kSourceVar, c.source.c_str(), 1);
  if (!c.openblas_default.empty()) ::setenv("MOETB_BLAS_KERNEL_DEFAULT", c.openblas_default.c_str(), 1);
  return c;
}

std::string apply_thread_environment() {
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);
  ::setenv("OPENBLAS_THREAD_TIMEOUT", "4", /*overwrite=*/0);  // 2^4 cycles: idle workers sleep at once
  return env_or_empty("OMP_WAIT_POLICY");
}

BlasCheck check_blas_sgemm(const std::string& kernel, int m, int n, int k, bool time_it) {
  const std::string out = in_child([&] {
    std::ostringstream r;
    void* h = load_blas_in_child(kernel);
    auto sgemm = h ? reinterpret_cast<Sgemm>(::dlsym(h, "sgemm_")) : nullptr;
    if (!sgemm) {
      r << "error\n" << kBlasLibrary << " has no sgemm_ (" << (h ? "" : ::dlerror()) << ")\n";
      return r.str();
    }
    if (auto set = reinterpret_cast<SetThreads>(::dlsym(h, "openblas_set_num_threads"))) set(1);
    auto core = reinterpret_cast<CoreName>(::dlsym(h, "openblas_get_corename"));
    std::mt19937 gen(7);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> a(static_cast<std::size_t>(m) * static_cast<std::size_t>(k)), b(static_cast<std::size_t>(k) * static_cast<std::size_t>(n));
    std::vector<float> c(static_cast<std::size_t>(m) * static_cast<std::size_t>(n), 0.0f);
    for (float& v : a) v = u(gen);
    for (float& v : b) v = u(gen);
    const float one = 1.0f, zero = 0.0f;
    sgemm("N", "N", &m, &n, &k, &one, a.data(), &m, b.data(), &k, &zero, c.data(), &m);  // column-major
    double worst = 0.0;
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        double ref = 0.0, scale = 0.0;
        for (int p = 0; p < k; ++p) {
          const double t = static_cast<double>(a[static_cast<std::size_t>(p) * static_cast<std::size_t>(m) + static_cast<std::size_t>(i)]) *
                           static_cast<double>(b[static_cast<std::size_t>(j) * static_cast<std::size_t>(k) + static_cast<std::size_t>(p)]);
          ref += t;
          scale += std::fabs(t);
        }
        const double got = c[static_cast<std::size_t>(j) * static_cast<std::size_t>(m) + static_cast<std::size_t>(i)];
        worst = std::max(worst, std::fabs(got - ref) / std::max(scale, 1e-30));
      }
    double gflops = 0.0;
    if (time_it) {
      const int s = 1024;
      std::vector<float> x(static_cast<std::size_t>(s) * s, 0.5f), y(x), z(x);
      sgemm("N", "N", &s, &s, &s, &one, x.data(), &s, y.data(), &s, &zero, z.data(), &s);  // warm-up
      int reps = 0;
      const auto t0 = std::chrono::steady_clock::now();
      double el = 0.0;
      while (el < 0.3) {
        sgemm("N", "N", &s, &s, &s, &one, x.data(), &s, y.data(), &s, &zero, z.data(), &s);
        ++reps;
        el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
      gflops = 2.0 * s * s * s * reps / el * 1e-9;
    }
    r.precision(17);
    r << "ok\n" << (core ? core() : "") << "\n" << worst << "\n" << gflops << "\n";
    return r.str();
  });
  BlasCheck res;
  std::istringstream in(out);
  std::string status;
  std::getline(in, status);
  if (status != "ok") {
    std::getline(in, res.error);
    if (res.error.empty()) res.error = "the BLAS check's child process failed";
    return res;
  }
  std::getline(in, res.kernel);
  in >> res.max_rel_error >> res.gflops;
  return res;
}

nlohmann::json blas_provenance() {
  void* sgemm = ::dlsym(RTLD_DEFAULT, "sgemm_");
  if (!sgemm) return {{"loaded", false}};
  nlohmann::json j = {{"loaded", true}};
  Dl_info info{};
  if (::dladdr(sgemm, &info) && info.dli_fname) j["library"] = info.dli_fname;
  if (auto core = reinterpret_cast<CoreName>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"))) j["kernel"] = core();
  using Config = char* (*)();
  if (auto cfg = reinterpret_cast<Config>(::dlsym(RTLD_DEFAULT, "openblas_get_config"))) j["config"] = cfg();
  using GetThreads = int (*)();
  if (auto th = reinterpret_cast<GetThreads>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"))) j["threads"] = th();
  std::string source = env_or_empty(kSourceVar);
  if (source.empty()) source = env_or_empty("OPENBLAS_CORETYPE").empty() ? "openblas" : "user";
  j["kernel_source"] = source;  // user (OPENBLAS_CORETYPE), moetb (chosen from cpuid) or openblas
  j["OMP_WAIT_POLICY"] = env_or_empty("OMP_WAIT_POLICY");
  j["OPENBLAS_THREAD_TIMEOUT"] = env_or_empty("OPENBLAS_THREAD_TIMEOUT");
  const std::string dflt = env_or_empty("MOETB_BLAS_KERNEL_DEFAULT");
  if (!dflt.empty()) j["openblas_default_kernel"] = dflt;
  return j;
}

nlohmann::json cpu_provenance(const CpuInfo& cpu) {
  nlohmann::json features = nlohmann::json::array();
  const std::pair<const char*, bool> flags[] = {{"avx2", cpu.avx2},         {"fma", cpu.fma},          {"avx512f", cpu.avx512f},
                                                {"avx512bw", cpu.avx512bw}, {"avx512dq", cpu.avx512dq}, {"avx512vl", cpu.avx512vl}};
  for (const auto& [name, on] : flags)
    if (on) features.push_back(name);
  return {{"model", cpu.model}, {"logical_cpus", cpu.logical_cpus}, {"features", features}};
}

void tune_malloc_for_training() {
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum; also stops the dynamic threshold
  ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

nlohmann::json machine_provenance() { return {{"cpu", cpu_provenance(cpu_info())}, {"blas", blas_provenance()}}; }

}  // namespace moetb
