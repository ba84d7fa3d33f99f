// Resolving a run directory to its latest evaluation trace (trace_input.h): eval.json's
// "trace", else the newest traces/step-*.safetensors; the seed from eval.json or run.json and
// the validation loss from eval.json. Anything else passes through as a trace path.
#include "cli/trace_input.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace moetb::cli {
namespace {

namespace fs = std::filesystem;

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) return nlohmann::json();
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  return j.is_discarded() ? nlohmann::json() : j;
}

bool looks_like_run(const fs::path& dir) {
  return fs::is_directory(dir) && (fs::exists(dir / "eval.json") || fs::exists(dir / "run.json") || fs::exists(dir / "train_log.jsonl"));
}

}  // namespace

TraceInput resolve_trace_input(const std::string& path) {
  TraceInput in;
  in.path = path;
  in.trace = path;
  const fs::path dir(path);
  if (!looks_like_run(dir)) return in;
  in.is_run = true;
  const nlohmann::json eval = read_json(dir / "eval.json");
  if (eval.is_object() && eval.value("trace", nlohmann::json()).is_string()) {
    const fs::path t = dir / eval["trace"].get<std::string>();
    if (fs::exists(t)) in.trace = t.string();
  }
  if (in.trace == path && fs::is_directory(dir / "traces")) {  // the newest step-NNNNNN trace
    std::string newest;
    for (const auto& e : fs::directory_iterator(dir / "traces"))
      if (e.path().extension() == ".safetensors" && e.path().filename().string() > newest) newest = e.path().filename().string();
    if (!newest.empty()) in.trace = (dir / "traces" / newest).string();
  }
  if (in.trace == path)
    throw std::invalid_argument(path + ": a run directory without a routing trace (no eval.json trace, no traces/*.safetensors): "
                                "has it been evaluated?");
  if (eval.is_object() && eval.value("seed", nlohmann::json()).is_number_integer()) in.seed = eval["seed"].get<long long>();
  if (!in.seed) {
    const nlohmann::json run = read_json(dir / "run.json");
    if (run.is_object() && run.value("seed", nlohmann::json()).is_number_integer()) in.seed = run["seed"].get<long long>();
    else if (run.is_object() && run.contains("config") && run["config"].is_object() && run["config"].contains("train") &&
        run["config"]["train"].value("seed", nlohmann::json()).is_number_integer())
      in.seed = run["config"]["train"]["seed"].get<long long>();
  }
  if (eval.is_object() && eval.contains("eval") && eval["eval"].is_object() && eval["eval"].value("loss_bits", nlohmann::json()).is_number())
    in.val_bits = eval["eval"]["loss_bits"].get<double>();
  return in;
}

std::vector<std::string> resolve_trace_paths(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths) out.push_back(resolve_trace_input(p).trace);
  return out;
}

}  // namespace moetb::cli
