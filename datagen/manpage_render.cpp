// Man page listing, reading (zlib), rendering through groff, and text normalisation
// (manpage_render.h). The formatter runs as a child process without a shell; its stdin is
// one end of a socket pair so that a formatter that exits early gives EPIPE, not SIGPIPE.
#include "datagen/manpage_render.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

extern char** environ;

namespace moetb {
namespace fs = std::filesystem;

const char* render_status_name(RenderStatus s) {
  switch (s) {
    case RenderStatus::kOk: return "ok";
    case RenderStatus::kRedirect: return "redirect";
    case RenderStatus::kNotUtf8: return "not_utf8";
    case RenderStatus::kEmpty: return "empty";
    case RenderStatus::kFailed: return "failed";
  }
  return "failed";
}

std::vector<std::string> list_manpages(const std::string& key, const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::invalid_argument(key + ": " + dir + ": not a readable folder");
  std::vector<std::string> pages;
  fs::directory_iterator top(dir, ec);
  if (ec) throw std::invalid_argument(key + ": " + dir + ": cannot read folder: " + ec.message());
  for (const auto& section : top) {
    const std::string name = section.path().filename().string();
    std::error_code e2;
    if (name.rfind("man", 0) != 0 || !section.is_directory(e2) || section.is_symlink(e2)) continue;
    for (const auto& page : fs::directory_iterator(section.path(), e2)) {
      std::error_code e3;
      if (page.is_regular_file(e3) && !page.is_symlink(e3) && page.file_size(e3) > 0)
        pages.push_back(name + "/" + page.path().filename().string());
    }
  }
  std::sort(pages.begin(), pages.end());
  if (pages.empty()) throw std::invalid_argument(key + ": " + dir + ": holds no man pages (no files in " + dir + "/man*/)");
  return pages;
}

std::string read_manpage_source(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files as they are
  if (f == nullptr) throw std::invalid_argument(path + ": cannot read file");
  std::string out;
  char buf[65536];
  int n = 0;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  int err = Z_OK;
  const std::string msg = gzerror(f, &err);  // a truncated stream reads as its end, with Z_BUF_ERROR
  gzclose(f);
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END)) throw std::invalid_argument(path + ": cannot inflate: " + msg);
  return out;
}

bool is_valid_utf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size() || (len == 2 && c < 0xC2) || (len == 4 && c > 0xF4)) return false;
    for (std::size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

std::string utf8_prefix(const std::string& s, std::size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  std::size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;  // s[end] starts a sequence
  return s.substr(0, end);
}

std::string normalize_rendered_text(const std::string& raw) {
  // Pass 1: overstrikes and control bytes.
  std::string clean;
  clean.reserve(raw.size());
  for (char ch : raw) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\b') {  // drop the previous code point: "_\bx" and "x\bx" keep x
      while (!clean.empty() && (static_cast<unsigned char>(clean.back()) & 0xC0) == 0x80) clean.pop_back();
      if (!clean.empty() && clean.back() != '\n') clean.pop_back();
      continue;
    }
    if (c == '\t') ch = ' ';
    else if ((c < 0x20 && c != '\n') || c == 0x7F) continue;
    clean.push_back(ch);
  }
  // Pass 2: lines.
  std::string out;
  out.reserve(clean.size());
  int pending_blank = 0;
  std::size_t start = 0;
  while (start <= clean.size()) {
    std::size_t end = clean.find('\n', start);
    if (end == std::string::npos) end = clean.size();
    std::string line;
    std::size_t i = start;
    while (i < end && clean[i] == ' ') line.push_back(clean[i++]);  // the indentation stays
    bool space = false;
    for (; i < end; ++i) {
      if (clean[i] == ' ') {
        space = true;
        continue;
      }
      if (space) line.push_back(' ');
      space = false;
      line.push_back(clean[i]);
    }
    if (line.find_first_not_of(' ') == std::string::npos) {
      pending_blank = out.empty() ? 0 : 1;
    } else {
      if (pending_blank) out.push_back('\n');
      pending_blank = 0;
      out += line;
      out.push_back('\n');
    }
    start = end + 1;
  }
  return out;
}

int run_program(const std::vector<std::string>& argv, const std::string& input, std::string* out, std::string* err) {
  int in_pair[2], out_pipe[2], err_pipe[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pair) != 0)
    throw std::runtime_error(std::string("socketpair: ") + std::strerror(errno));
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pair[1], 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in_pair[1]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(in_pair[0]);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    throw std::invalid_argument(argv[0] + ": cannot run: " + std::strerror(rc));
  }
  fcntl(in_pair[0], F_SETFL, O_NONBLOCK);
  std::size_t sent = 0;
  if (input.empty()) shutdown(in_pair[0], SHUT_WR);
  bool in_open = !input.empty(), out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open) {
    pollfd fds[3];
    nfds_t n = 0;
    int i_out = -1, i_err = -1, i_in = -1;
    if (out_open) fds[i_out = static_cast<int>(n++)] = {out_pipe[0], POLLIN, 0};
    if (err_open) fds[i_err = static_cast<int>(n++)] = {err_pipe[0], POLLIN, 0};
    if (in_open) fds[i_in = static_cast<int>(n++)] = {in_pair[0], POLLOUT, 0};
    if (::poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    auto drain = [&](int idx, int fd, std::string* sink, bool& open) {
      if (idx < 0 || fds[idx].revents == 0) return;
      const ssize_t got = ::read(fd, buf, sizeof buf);
      if (got > 0) {
        if (sink != nullptr) sink->append(buf, static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        open = false;
      }
    };
    drain(i_out, out_pipe[0], out, out_open);
    drain(i_err, err_pipe[0], err, err_open);
    if (i_in >= 0 && fds[i_in].revents != 0) {
      const ssize_t put = ::send(in_pair[0], input.data() + sent, input.size() - sent, MSG_NOSIGNAL);
      if (put > 0) sent += static_cast<std::size_t>(put);
      if ((put < 0 && errno != EAGAIN && errno != EINTR) || sent == input.size()) {
        in_open = false;
        shutdown(in_pair[0], SHUT_WR);
      }
    }
  }
  ::close(in_pair[0]);
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

RenderResult render_manpage(const std::string& path, const std::string& groff) {
  RenderResult r;
  const std::string source = read_manpage_source(path);
  const std::size_t first = source.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && source.compare(first, 4, ".so ") == 0 && source.size() < 512) {
    r.status = RenderStatus::kRedirect;
    return r;
  }
  if (!is_valid_utf8(source)) {
    r.status = RenderStatus::kNotUtf8;
    return r;
  }
  // -K utf8: the source is UTF-8 (else it is read as Latin-1); -t: tables; -P -cbou: no
  // overstrike or SGR sequences; -rLL=5000n: one line per paragraph (no justification
  // spaces, no hyphenation).
  std::string out, err;
  int status = 0;
  try {
    status = run_program({groff, "-K", "utf8", "-T", "utf8", "-t", "-man", "-P", "-cbou", "-rLL=5000n"}, source, &out, &err);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("groff: ") + e.what() + " (Debian: apt-get install groff-base)");
  }
  if (status != 0) {
    r.status = RenderStatus::kFailed;
    r.error = err.substr(0, err.find('\n'));
    return r;
  }
  r.text = normalize_rendered_text(out);
  r.status = r.text.empty() ? RenderStatus::kEmpty : is_valid_utf8(r.text) ? RenderStatus::kOk : RenderStatus::kNotUtf8;
  return r;
}

}  // namespace moetb
