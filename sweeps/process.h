// Child processes and locks for the sweep runner (POSIX): start a command with its output
// appended to a log file, tied to the runner's life (it dies with a kill -9'd runner, so a
// rerun never races an orphan), wait for it, and per-run file locks (flock) that the kernel
// releases when their holder dies. Torch-free.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace moetb::sweeps {

// Starts argv[0] (a path) with stdin from /dev/null and stdout+stderr appended to log_path.
pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log_path);
// Non-blocking (block = false) or blocking wait: the exit code, 128 + signal for a
// killed child, nullopt while it still runs.
std::optional<int> wait_child(pid_t pid, bool block);
// Runs argv to completion and returns (exit code, stdout); stderr passes through.
std::pair<int, std::string> run_capture(const std::vector<std::string>& argv);

// An exclusive lock on a file (created if missing); released by the destructor or death.
class FileLock {
 public:
  static std::optional<FileLock> try_acquire(const std::string& path);
  static FileLock acquire(const std::string& path);  // waits for it
  FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileLock& operator=(FileLock&&) = delete;
  FileLock(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// The absolute path of the running executable (/proc/self/exe).
std::string self_executable();
// CPU cores this process may use (its affinity mask).
int usable_cores();

}  // namespace moetb::sweeps
