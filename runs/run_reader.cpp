// The run-directory reader (run_reader.h). Files are read whole (run directories hold small
// JSON files; traces are opened by metrics/ from the path returned here).
#include "runs/run_reader.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace moetb::runs {
namespace fs = std::filesystem;
namespace {

std::optional<std::string> read_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  if (!fs::is_regular_file(path, ec)) throw std::invalid_argument(path.string() + ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument(path.string() + ": cannot read");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

nlohmann::json parse_object(const std::string& text, const fs::path& path, const char* what) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw std::invalid_argument(path.string() + ": not " + what + " (not a JSON object)");
  return j;
}

}  // namespace

bool looks_like_run(const fs::path& dir) {
  std::error_code ec;
  for (const char* f : {kRunFile, kEvalFile, kLogFile})
    if (fs::exists(dir / f, ec)) return true;
  return false;
}

std::string legacy_note(const fs::path& dir) {
  return dir.string() + ": run.json has no format marker (a run from before " + kFormat + "); read as " + kFormat;
}

std::optional<RunInfo> read_run_info(const fs::path& dir, std::vector<std::string>* notes) {
  const fs::path path = dir / kRunFile;
  const auto text = read_file(path);
  if (!text) return std::nullopt;
  RunInfo info = RunInfo::from_json(parse_object(*text, path, "a run.json"), path.string());
  if (info.format.empty() && notes) notes->push_back(legacy_note(dir));
  return info;
}

TrainLog read_train_log(const fs::path& dir_or_file) {
  std::error_code ec;
  const fs::path path = fs::is_directory(dir_or_file, ec) ? dir_or_file / kLogFile : dir_or_file;
  TrainLog log;
  const auto text = read_file(path);
  if (!text) return log;
  std::vector<std::string> lines;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::size_t last = lines.size();  // the last non-blank line
  while (last > 0 && lines[last - 1].find_first_not_of(" \t\r") == std::string::npos) --last;
  for (std::size_t n = 0; n < last; ++n) {
    if (lines[n].find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(lines[n], nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      if (n + 1 == last) {  // cut short by a kill: everything before it is whole
        log.torn_tail = true;
        break;
      }
      throw std::runtime_error(path.string() + ": line " + std::to_string(n + 1) + " is not a JSON object");
    }
    if (j.contains("eval")) log.evals.push_back(EvalRecord::from_json(j));
    else if (j.contains("step") && j["step"].is_number()) log.steps.push_back(StepRecord::from_json(j));
  }
  return log;
}

std::optional<FinalEval> read_final_eval(const fs::path& dir) {
  const fs::path path = dir / kEvalFile;
  const auto text = read_file(path);
  if (!text) return std::nullopt;
  const nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded()) throw std::invalid_argument(path.string() + ": not an eval.json written by moetb train (not JSON)");
  return FinalEval::from_json(j, path.string());
}

nlohmann::json metrics_summary(const fs::path& dir) {
  if (const auto final_eval = read_final_eval(dir)) return final_eval->record.metrics_summary;
  const TrainLog log = read_train_log(dir);
  for (auto it = log.evals.rbegin(); it != log.evals.rend(); ++it)
    if (!it->metrics_summary.empty()) return it->metrics_summary;
  return nullptr;
}

fs::path final_trace(const fs::path& dir) {
  std::error_code ec;
  auto existing = [&](const std::string& name) { return !name.empty() && fs::exists(dir / name, ec) ? dir / name : fs::path(); };
  if (const auto final_eval = read_final_eval(dir))
    if (fs::path p = existing(final_eval->record.trace); !p.empty()) return p;
  const TrainLog log = read_train_log(dir);
  if (!log.evals.empty())
    if (fs::path p = existing(log.evals.back().trace); !p.empty()) return p;
  std::vector<fs::path> traces;
  for (const auto& e : fs::directory_iterator(dir / kTracesDir, ec))
    if (e.path().extension() == ".safetensors") traces.push_back(e.path());
  std::sort(traces.begin(), traces.end());
  return traces.empty() ? fs::path() : traces.back();
}

}  // namespace moetb::runs
