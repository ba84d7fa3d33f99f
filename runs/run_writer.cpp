// The run-directory writer (run_writer.h). Log lines are appended with one write(2) each on an
// O_APPEND descriptor, so a kill leaves at most a torn last line (which the reader skips);
// run.json, config.toml and eval.json are whole files through the output layer.
#include "runs/run_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "runs/run_reader.h"

namespace moetb::runs {
namespace fs = std::filesystem;

OutputLock lock_run(const fs::path& dir) {
  const fs::path target = dir.lexically_normal();
  const fs::path name = target.filename().empty() ? target.parent_path() : target;
  return OutputLock::take(OutputLock::beside(name), dir.string(), OutputLock::Mode::exclusive, /*remove_when_released=*/true);
}

RunWriter RunWriter::create(const fs::path& dir, const RunInfo& info, const std::string& config_toml, bool force) {
  std::error_code ec;
  const fs::path parent = fs::absolute(dir, ec).lexically_normal().parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);  // as before: --out a/b/run makes a/b
  OutputLock lock = lock_run(dir);
  if (!force && fs::is_directory(dir, ec) && !fs::is_empty(dir, ec) && holds_output(dir, OutputKind::run))
    throw std::invalid_argument(dir.string() + ": already exists (pass --force to replace it, or --resume)");
  OutputOptions opt;
  opt.force = force;
  OutputDir out(dir, OutputKind::run, opt);
  if (!fs::create_directory(out.tmp() / kTracesDir, ec) || ec)
    throw OutputError(dir.string() + ": cannot create " + kTracesDir + "/: " + ec.message());
  out.write_file(out.tmp() / kConfigFile, config_toml);
  out.write_file(out.tmp() / kRunFile, info.to_json().dump(2) + "\n");  // the marker, last
  out.commit();
  return RunWriter(dir, std::move(lock));
}

RunWriter RunWriter::resume(const fs::path& dir) {
  OutputLock lock = lock_run(dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::invalid_argument(dir.string() + ": --resume needs an existing run directory");
  if (!holds_output(dir, OutputKind::run))
    throw std::invalid_argument(dir.string() + ": --resume needs a moetb run directory (no run.json with " + kFormat + ")");
  return RunWriter(dir, std::move(lock));
}

void RunWriter::append_line(const std::string& line) const {
  const fs::path path = dir_ / kLogFile;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (fd < 0) throw OutputError(write_failed_message(path, errno));
  const std::string text = line + "\n";
  const char* p = text.data();
  std::size_t n = text.size();
  int err = 0;
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      err = w < 0 ? errno : ENOSPC;
      break;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) throw OutputError(write_failed_message(path, err));
}

void RunWriter::append_step(const StepRecord& step) const { append_line(step.to_json().dump()); }
void RunWriter::append_eval(const EvalRecord& eval) const { append_line(eval.to_json().dump()); }

void RunWriter::write_final_eval(const FinalEval& eval) const {
  replace_owned_file(dir_ / kEvalFile, eval.to_json().dump(2) + "\n");
}

void RunWriter::truncate_log(int64_t step) const {
  const fs::path path = dir_ / kLogFile;
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  std::ifstream in(path);
  std::string kept;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.value("step", int64_t{0}) <= step) kept += line + "\n";
  }
  replace_owned_file(path, kept);
}

}  // namespace moetb::runs
