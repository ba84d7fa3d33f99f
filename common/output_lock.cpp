// Exclusive and shared flock-based locks with the holder's pid in the lock file
// (safe_output.h): a second taker fails at once with "WHAT: in use by process N". A lock
// file removed on release is re-checked after locking (same inode as the path), so a
// taker that locked a file just unlinked by its previous holder tries again.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "common/safe_output.h"

namespace fs = std::filesystem;

namespace moetb {
namespace {

pid_t read_holder(int fd) {
  for (int attempt = 0; attempt < 50; ++attempt) {  // the holder writes its pid right after locking
    char buf[32] = {0};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n > 0) {
      const long pid = std::strtol(buf, nullptr, 10);
      if (pid > 0) return static_cast<pid_t>(pid);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return 0;
}

}  // namespace

std::optional<OutputLock> OutputLock::try_take(const fs::path& lock_file, Mode mode, bool remove_when_released, pid_t* holder) {
  if (holder != nullptr) *holder = 0;
  const bool remove = remove_when_released && mode == Mode::exclusive;
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) throw OutputError(lock_file.string() + ": cannot open the lock file: " + std::strerror(errno));
    const int op = (mode == Mode::exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB;
    int rc;
    while ((rc = ::flock(fd, op)) != 0 && errno == EINTR) {
    }
    if (rc != 0) {
      const int err = errno;
      if (err == EWOULDBLOCK) {
        if (holder != nullptr) *holder = read_holder(fd);
        ::close(fd);
        return std::nullopt;
      }
      ::close(fd);
      throw OutputError(lock_file.string() + ": cannot lock: " + std::strerror(err));
    }
    struct stat a {}, b {};
    if (::fstat(fd, &a) != 0 || ::stat(lock_file.c_str(), &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
      ::close(fd);  // its previous holder removed it meanwhile: lock the new one
      continue;
    }
    char buf[16];
    std::snprintf(buf, sizeof buf, "%-11d\n", static_cast<int>(::getpid()));  // fixed width: shared holders overwrite
    if (mode == Mode::exclusive) (void)!::ftruncate(fd, 0);
    (void)!::pwrite(fd, buf, 12, 0);  // the pid is for the message only
    return OutputLock(fd, lock_file, remove);
  }
  throw OutputError(lock_file.string() + ": cannot lock (the lock file keeps being replaced)");
}

OutputLock OutputLock::take(const fs::path& lock_file, const std::string& what, Mode mode, bool remove_when_released) {
  pid_t holder = 0;
  auto lock = try_take(lock_file, mode, remove_when_released, &holder);
  if (!lock)
    throw OutputError(what + ": in use by " + (holder > 0 ? "process " + std::to_string(holder) : std::string("another process")));
  return std::move(*lock);
}

fs::path OutputLock::beside(const fs::path& target) {
  fs::path t = target.lexically_normal();
  if (!t.has_filename() && t.has_relative_path()) t = t.parent_path();  // "out/" names out
  std::string name = t.filename().string();
  if (name.empty() || name == "." || name == "..") name = "out";
  if (name.size() > 200) {
    uint32_t h = 2166136261u;
    for (unsigned char c : name) h = (h ^ c) * 16777619u;
    char hash[12];
    std::snprintf(hash, sizeof hash, "~%08x", h);
    name = name.substr(0, 191) + hash;
  }
  return t.parent_path() / ("." + name + ".lock");
}

OutputLock::OutputLock(OutputLock&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)), remove_(other.remove_) {
  other.fd_ = -1;
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  if (remove_) ::unlink(path_.c_str());  // before unlocking: a waiter then finds a new file
  ::close(fd_);
}

}  // namespace moetb
