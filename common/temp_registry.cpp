// Temporary names, their clean-up on signals, and the removal of stale ones (safe_output.h).
// Names are "." + NAME + ".tmp-HOST-PID-N": HOST a 6-hex hash of the host name (a sweep on
// a shared file system never takes another node's live temporary for a stale one), PID the
// writer's pid (kill(pid, 0) tells whether it still lives). The signal path uses only
// async-signal-safe calls: a fixed table of paths, openat/getdents64/unlinkat, sigaction.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include "common/safe_output.h"

namespace fs = std::filesystem;

namespace moetb {
namespace {

constexpr std::size_t kMaxStem = 200;  // "." + 200 + ".tmp-" + 6 + "-" + 10 + "-" + 10 < NAME_MAX (255)
constexpr int kSlots = 128;
constexpr std::size_t kSlotPath = 4096;

struct Slot {
  std::atomic<int> state{0};  // 0 free, 1 being filled, 2 active
  char path[kSlotPath];
};
Slot g_slots[kSlots];
struct sigaction g_previous[3];
constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};
std::once_flag g_install;

uint32_t fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

const std::string& host_tag() {
  static const std::string tag = [] {
    char name[256] = {0};
    ::gethostname(name, sizeof name - 1);
    char buf[8];
    std::snprintf(buf, sizeof buf, "%06x", fnv1a(name) & 0xffffffu);
    return std::string(buf);
  }();
  return tag;
}

// Returns the pid when `name` is a temporary of this host, else 0.
pid_t temp_owner(const std::string& name) {
  if (name.empty() || name[0] != '.') return 0;
  const auto at = name.rfind(".tmp-");
  if (at == std::string::npos) return 0;
  const std::string rest = name.substr(at + 5);  // HOST-PID-N
  if (rest.size() < 10 || rest.compare(0, 6, host_tag()) != 0 || rest[6] != '-') return 0;
  const auto dash = rest.find('-', 7);
  if (dash == std::string::npos || dash == 7 || dash + 1 == rest.size()) return 0;
  const std::string pid = rest.substr(7, dash - 7), n = rest.substr(dash + 1);
  if (pid.size() > 10 || pid.find_first_not_of("0123456789") != std::string::npos ||
      n.find_first_not_of("0123456789") != std::string::npos)
    return 0;
  return static_cast<pid_t>(std::stoll(pid));
}

// Removes the contents of the open folder `dfd` (closed by the caller).
int remove_contents(int dfd, int depth) {
  if (depth > 64) return ELOOP;
  alignas(8) char buf[4096];
  int err = 0;
  for (bool again = true; again;) {
    again = false;
    if (::lseek(dfd, 0, SEEK_SET) < 0) return errno;
    for (;;) {
      const long n = ::syscall(SYS_getdents64, dfd, buf, sizeof buf);
      if (n < 0) return errno;
      if (n == 0) break;
      for (long off = 0; off < n;) {
        auto* d = reinterpret_cast<struct dirent64*>(buf + off);
        off += d->d_reclen;
        const char* name = d->d_name;
        if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
        if (d->d_type != DT_DIR && ::unlinkat(dfd, name, 0) == 0) {
          again = true;
          continue;
        }
        if (d->d_type != DT_DIR && errno == ENOENT) continue;
        if (d->d_type != DT_DIR && errno != EISDIR && errno != EPERM) {
          err = errno;
          continue;
        }
        const int sub = ::openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
          err = errno;
          continue;
        }
        const int e = remove_contents(sub, depth + 1);
        ::close(sub);
        if (e != 0) err = e;
        if (::unlinkat(dfd, name, AT_REMOVEDIR) == 0) again = true;
        else err = errno;
      }
    }
    if (err != 0) break;  // no progress to hope for
  }
  return err;
}

void on_signal(int sig) {
  const int saved = errno;
  for (auto& slot : g_slots) {
    int active = 2;
    if (slot.state.compare_exchange_strong(active, 1)) remove_tree(slot.path);
  }
  int i = 0;
  while (i < 3 && kSignals[i] != sig) ++i;
  if (i < 3) {
    ::sigaction(sig, &g_previous[i], nullptr);
    const struct sigaction& p = g_previous[i];
    if ((p.sa_flags & SA_SIGINFO) == 0 && p.sa_handler != SIG_DFL && p.sa_handler != SIG_IGN) {
      p.sa_handler(sig);  // someone else's handler: let it decide
    } else if ((p.sa_flags & SA_SIGINFO) == 0 && p.sa_handler == SIG_DFL) {
      ::raise(sig);  // pending until we return, then the default action (terminate)
    }
  }
  errno = saved;
}

}  // namespace

void install_cleanup_handlers() {
  for (int i = 0; i < 3; ++i) {
    struct sigaction old {};
    ::sigaction(kSignals[i], nullptr, &old);
    if ((old.sa_flags & SA_SIGINFO) == 0 && old.sa_handler == on_signal) continue;  // already ours
    g_previous[i] = old;
    if ((old.sa_flags & SA_SIGINFO) == 0 && old.sa_handler == SIG_IGN) continue;  // nohup: stays ignored
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int s : kSignals) sigaddset(&sa.sa_mask, s);
    sa.sa_flags = 0;
    ::sigaction(kSignals[i], &sa, nullptr);
  }
}

int remove_tree(const char* path) {
  if (::unlinkat(AT_FDCWD, path, 0) == 0) return 0;
  if (errno == ENOENT) return 0;
  if (errno != EISDIR && errno != EPERM) return errno;
  const int dfd = ::openat(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return errno;
  const int err = remove_contents(dfd, 0);
  ::close(dfd);
  if (::unlinkat(AT_FDCWD, path, AT_REMOVEDIR) != 0) return err != 0 ? err : errno;
  return 0;
}

fs::path temp_path_for(const fs::path& target) {
  static std::atomic<unsigned> counter{0};
  std::string name = target.filename().string();
  if (name.empty() || name == "." || name == "..") name = "out";
  if (name.size() > kMaxStem) {  // keep it unique: a prefix and a hash of the whole name
    char hash[12];
    std::snprintf(hash, sizeof hash, "~%08x", fnv1a(name));
    name = name.substr(0, kMaxStem - 9) + hash;
  }
  const std::string tmp = "." + name + ".tmp-" + host_tag() + "-" + std::to_string(::getpid()) + "-" +
                          std::to_string(counter.fetch_add(1));
  return target.parent_path() / tmp;
}

int clean_stale_temps(const fs::path& folder) {
  std::error_code ec;
  int removed = 0;
  fs::directory_iterator it(folder.empty() ? fs::path(".") : folder, ec);
  if (ec) return 0;
  std::vector<fs::path> stale;
  for (const auto& e : it) {
    const pid_t pid = temp_owner(e.path().filename().string());
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to signal): keep
    stale.push_back(e.path());
  }
  for (const auto& p : stale) removed += remove_tree(p.c_str()) == 0 ? 1 : 0;
  return removed;
}

void register_temp(const fs::path& path) {
  std::call_once(g_install, install_cleanup_handlers);
  std::error_code ec;
  const std::string abs = fs::absolute(path, ec).string();
  if (ec || abs.size() >= kSlotPath) return;  // still removed on every non-signal path
  for (auto& slot : g_slots) {
    int free = 0;
    if (!slot.state.compare_exchange_strong(free, 1)) continue;
    std::memcpy(slot.path, abs.c_str(), abs.size() + 1);
    slot.state.store(2);
    return;
  }
}

void unregister_temp(const fs::path& path) {
  std::error_code ec;
  const std::string abs = fs::absolute(path, ec).string();
  for (auto& slot : g_slots) {
    if (slot.state.load() != 2 || abs != slot.path) continue;  // an active slot's path never changes
    int active = 2;
    if (slot.state.compare_exchange_strong(active, 0)) return;
  }
}

}  // namespace moetb
