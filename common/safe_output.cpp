// The one output layer (safe_output.h): the checks before a write (inputs, existing
// targets and their format markers), atomic files and folders (temporary, fsync, rename or
// RENAME_EXCHANGE), write-through for devices and FIFOs, and guarded removal.
#include "common/safe_output.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace fs = std::filesystem;

namespace moetb {
namespace {

std::string str_error(int err) {
  std::string s = std::strerror(err);
  if (s.size() > 1 && std::isupper(static_cast<unsigned char>(s[0])) && std::islower(static_cast<unsigned char>(s[1])))
    s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

bool stat_of(const fs::path& p, struct stat& st) { return ::stat(p.c_str(), &st) == 0; }
bool same_file(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

// The JSON object in `file`, or null when it is missing, not a regular file or not JSON.
nlohmann::json read_marker(const fs::path& file) {
  struct stat st {};
  if (!stat_of(file, st) || !S_ISREG(st.st_mode) || st.st_size > (64 << 20)) return nullptr;
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, false);
  return j.is_object() ? j : nlohmann::json(nullptr);
}

bool format_starts(const nlohmann::json& j, const char* prefix) {
  return j.is_object() && j.contains("format") && j["format"].is_string() &&
         j["format"].get<std::string>().rfind(prefix, 0) == 0;
}

bool is_regular(const fs::path& p) {
  struct stat st {};
  return stat_of(p, st) && S_ISREG(st.st_mode);
}

bool is_empty_folder(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && fs::is_empty(p, ec) && !ec;
}

void fsync_folder(const fs::path& folder) {
  const int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);  // the rename is durable; a failure here loses nothing already written
  ::close(fd);
}

fs::path parent_of(const fs::path& p) { return p.has_parent_path() ? p.parent_path() : fs::path("."); }

// "out/" and "out/." name out.
fs::path normal_target(const fs::path& p) {
  fs::path t = p.lexically_normal();
  if (!t.has_filename() && t.has_relative_path()) t = t.parent_path();
  return t;
}

// Replaces `target` (a folder, or anything rename cannot replace) by `tmp`; afterwards the
// old output is gone. RENAME_EXCHANGE keeps the old one in place until the new one is.
void swap_into_place(const fs::path& tmp, const fs::path& target) {
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
    remove_tree(tmp.c_str());  // now the old output
    return;
  }
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
    throw OutputError(target.string() + ": cannot move the finished output into place: " + str_error(errno));
  const fs::path old = temp_path_for(target);  // a file system without exchange: aside, then in
  if (::rename(target.c_str(), old.c_str()) != 0)
    throw OutputError(target.string() + ": cannot move the old output aside: " + str_error(errno));
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    ::rename(old.c_str(), target.c_str());
    throw OutputError(target.string() + ": cannot move the finished output into place: " + str_error(err));
  }
  remove_tree(old.c_str());
}

int write_all(int fd, const void* data, std::size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return errno;
    if (w == 0) return ENOSPC;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return 0;
}

}  // namespace

const char* output_kind_name(OutputKind kind) {
  switch (kind) {
    case OutputKind::file: return "file";
    case OutputKind::trace: return "moetb trace";
    case OutputKind::dataset: return "moetb dataset";
    case OutputKind::run: return "moetb run directory";
    case OutputKind::sweep: return "moetb sweep folder";
    case OutputKind::checkpoint: return "moetb checkpoint";
  }
  return "output";
}

bool holds_output(const fs::path& dir, OutputKind kind) {
  struct stat st {};
  if (!stat_of(dir, st) || !S_ISDIR(st.st_mode)) return false;
  switch (kind) {
    case OutputKind::file: return false;
    case OutputKind::dataset: return format_starts(read_marker(dir / "manifest.json"), "moetb-dataset/");
    case OutputKind::sweep: return format_starts(read_marker(dir / "sweep.json"), "moetb-sweep/");
    case OutputKind::run: {
      const nlohmann::json j = read_marker(dir / "run.json");
      return format_starts(j, "moetb-run/") || (j.is_object() && j.contains("config") && j.contains("git_revision"));
    }
    case OutputKind::checkpoint: return is_regular(dir / "state.json") && is_regular(dir / "model.pt");
    case OutputKind::trace: {
      std::error_code ec;
      int n = 0;
      for (const auto& e : fs::directory_iterator(dir, ec)) {
        if (!e.is_regular_file(ec) || e.path().extension() != ".safetensors") return false;
        ++n;
      }
      return !ec && n > 0;
    }
  }
  return false;
}

std::string describe_existing(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return "nothing";
  if (S_ISLNK(st.st_mode) && !stat_of(path, st)) return "a broken symbolic link";
  if (S_ISCHR(st.st_mode)) return "a character device";
  if (S_ISBLK(st.st_mode)) return "a block device";
  if (S_ISFIFO(st.st_mode)) return "a FIFO";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  if (S_ISREG(st.st_mode)) return "a file of " + std::to_string(st.st_size) + " bytes";
  if (!S_ISDIR(st.st_mode)) return "something that is neither a file nor a folder";
  std::error_code ec;
  std::vector<std::string> names;
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    if (names.size() < 3) names.push_back(e.path().filename().string() + (e.is_directory(ec) ? "/" : ""));
    ++n;
  }
  if (ec) return "a folder that cannot be read";
  if (n == 0) return "an empty folder";
  std::string s = "a folder with " + std::to_string(n) + (n == 1 ? " entry (" : " entries (");
  for (std::size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
  return s + (n > names.size() ? ", ...)" : ")");
}

void check_not_input(const fs::path& output, const std::vector<fs::path>& inputs) {
  std::error_code ec;
  struct stat out_st {};
  const bool out_exists = stat_of(output, out_st);
  fs::path out_abs = fs::weakly_canonical(fs::absolute(output, ec), ec);
  if (ec) out_abs = fs::absolute(output, ec);
  for (const fs::path& input : inputs) {
    struct stat in_st {};
    if (input.empty() || !stat_of(input, in_st)) continue;
    const std::string where = " (" + input.string() + "); choose another output";
    if (out_exists && same_file(out_st, in_st)) throw OutputError(output.string() + ": is also an input of this command" + where);
    if (S_ISDIR(in_st.st_mode))
      for (fs::path p = out_abs.parent_path(); !p.empty(); p = p.parent_path()) {
        struct stat st {};
        if (stat_of(p, st) && same_file(st, in_st))
          throw OutputError(output.string() + ": lies inside an input folder of this command" + where);
        if (p == p.root_path()) break;
      }
    if (out_exists && S_ISDIR(out_st.st_mode)) {
      fs::path in_abs = fs::weakly_canonical(fs::absolute(input, ec), ec);
      for (fs::path p = in_abs.parent_path(); !ec && !p.empty(); p = p.parent_path()) {
        struct stat st {};
        if (stat_of(p, st) && same_file(st, out_st))
          throw OutputError(output.string() + ": holds an input of this command" + where);
        if (p == p.root_path()) break;
      }
    }
  }
}

Existing check_output(const fs::path& given, OutputKind kind, const OutputOptions& opt) {
  if (given.empty()) throw OutputError("no output path given");
  const fs::path path = normal_target(given);  // "out/" names out (and its folder is ".")
  check_not_input(path, opt.inputs);
  const std::string name = given.string();
  const fs::path parent = parent_of(path);
  struct stat pst {};
  if (!stat_of(parent, pst) || !S_ISDIR(pst.st_mode)) {
    if (!opt.create_parents) throw OutputError(name + ": the folder " + parent.string() + " does not exist");
    for (fs::path p = parent; ; p = parent_of(p)) {  // the nearest existing ancestor must be a folder
      if (stat_of(p, pst)) {
        if (!S_ISDIR(pst.st_mode)) throw OutputError(name + ": " + p.string() + " is not a folder");
        break;
      }
      if (p == parent_of(p)) break;
    }
    return Existing::none;  // nothing there to replace; the writer makes the folders
  }
  const bool folder_kind = kind != OutputKind::file && kind != OutputKind::trace;
  struct stat st {};
  if (!stat_of(path, st)) {
    struct stat lst {};
    if (::lstat(path.c_str(), &lst) != 0) return Existing::none;
    if (folder_kind) throw OutputError(name + ": is a broken symbolic link, not a " + output_kind_name(kind));
    if (!opt.force) throw OutputError(name + ": already exists (pass --force to replace it)");
    return Existing::file;  // a dangling link: the rename replaces the link itself
  }
  if (S_ISREG(st.st_mode)) {
    if (folder_kind)
      throw OutputError(name + ": exists and is a file, not a " + output_kind_name(kind) + "; refusing to replace it, even with --force");
    if (!opt.force) throw OutputError(name + ": already exists (pass --force to replace it)");
    return Existing::file;
  }
  if (!S_ISDIR(st.st_mode)) {
    if (folder_kind)
      throw OutputError(name + ": exists and is " + describe_existing(path) + ", not a " + output_kind_name(kind) + " folder; refusing to replace it");
    return Existing::special;  // a device or FIFO: written through, never replaced
  }
  if (kind == OutputKind::file)
    throw OutputError(name + ": exists and is " + describe_existing(path) + ", not a file; refusing to replace it");
  if (is_empty_folder(path)) return Existing::folder;
  if (!holds_output(path, kind))
    throw OutputError(name + ": exists and is " + describe_existing(path) + ", not a " + output_kind_name(kind) +
                      "; refusing to replace it, even with --force");
  if (!opt.force) throw OutputError(name + ": already exists (pass --force to replace it)");
  return Existing::folder;
}

std::string format_bytes(uint64_t bytes) {
  const char* units[] = {"bytes", "kB", "MB", "GB", "TB", "PB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 5) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

void check_space_for(const fs::path& target, uint64_t bytes, const std::string& what) {
  struct stat st {};
  if (stat_of(target, st) && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) return;  // a device or FIFO
  const fs::path folder = parent_of(normal_target(target));
  struct statvfs vfs {};
  if (::statvfs(folder.c_str(), &vfs) != 0) return;  // the write itself will say what is wrong
  const uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  if (bytes > free_bytes)
    throw OutputError(target.string() + ": " + what + " needs about " + format_bytes(bytes) + ", but its file system has " +
                      format_bytes(free_bytes) + " free");
}

std::string write_failed_message(const fs::path& path, int err) { return "write failed: " + path.string() + ": " + str_error(err); }

namespace {
// After check_output accepted a missing parent (opt.create_parents): make it.
void make_parents(const fs::path& target, const OutputOptions& opt) {
  if (!opt.create_parents) return;
  std::error_code ec;
  const fs::path parent = parent_of(target);
  if (fs::is_directory(parent, ec)) return;
  fs::create_directories(parent, ec);
  if (ec) throw OutputError(target.string() + ": cannot create the folder " + parent.string() + ": " + ec.message());
}
}  // namespace

// --- OutputFile -------------------------------------------------------------------------

OutputFile::OutputFile(fs::path path, const OutputOptions& opt, OutputKind kind) : path_(normal_target(path)) {
  existing_ = check_output(path_, kind, opt);
  make_parents(path_, opt);
  if (existing_ == Existing::special) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd_ < 0) throw OutputError(path_.string() + ": cannot open for writing: " + str_error(errno));
    return;
  }
  clean_stale_temps(parent_of(path_));
  tmp_ = temp_path_for(path_);
  register_temp(tmp_);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    const int err = errno;
    unregister_temp(tmp_);
    tmp_.clear();
    if (err == ENOSPC || err == EDQUOT) throw OutputError(write_failed_message(path_, err));
    throw OutputError(path_.string() + ": cannot create: " + str_error(err));
  }
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) {
    ::unlink(tmp_.c_str());
    unregister_temp(tmp_);
  }
}

void OutputFile::fail(int err) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!tmp_.empty()) {
    ::unlink(tmp_.c_str());
    unregister_temp(tmp_);
    tmp_.clear();
  }
  throw OutputError(write_failed_message(path_, err));
}

void OutputFile::write(const void* data, std::size_t n_bytes) {
  if (fd_ < 0) throw OutputError(path_.string() + ": written after commit or failure");
  if (const int err = write_all(fd_, data, n_bytes)) fail(err);
}

void OutputFile::commit() {
  if (fd_ < 0) throw OutputError(path_.string() + ": committed twice or after a failure");
  if (existing_ == Existing::special) {
    const int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0 && errno != EINTR) fail(errno);
    committed_ = true;
    return;
  }
  if (::fsync(fd_) != 0) fail(errno);
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) fail(errno);
  if (existing_ == Existing::folder) {
    swap_into_place(tmp_, path_);
  } else if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    throw OutputError(path_.string() + ": cannot move the finished file into place: " + str_error(err));  // ~ removes tmp_
  }
  unregister_temp(tmp_);
  committed_ = true;
  fsync_folder(parent_of(path_));
}

void write_output_file(const fs::path& path, std::string_view text, const OutputOptions& opt, OutputKind kind) {
  OutputFile f(path, opt, kind);
  f.write(text);
  f.commit();
}

void replace_owned_file(const fs::path& path, std::string_view text) {
  OutputOptions opt;
  opt.force = true;
  write_output_file(path, text, opt);
}

// --- OutputDir --------------------------------------------------------------------------

OutputDir::OutputDir(fs::path path, OutputKind kind, const OutputOptions& opt) : path_(normal_target(path)), kind_(kind) {
  const Existing e = check_output(path_, kind, opt);
  if (e == Existing::special)
    throw OutputError(path_.string() + ": is " + describe_existing(path_) + "; a " + output_kind_name(kind) +
                      " is written as a folder, so it cannot go there");
  make_parents(path_, opt);
  clean_stale_temps(parent_of(path_));
  tmp_ = temp_path_for(path_);
  register_temp(tmp_);
  if (::mkdir(tmp_.c_str(), 0777) != 0) {
    const int err = errno;
    unregister_temp(tmp_);
    tmp_.clear();
    if (err == ENOSPC || err == EDQUOT) throw OutputError(write_failed_message(path_, err));
    throw OutputError(path_.string() + ": cannot create a folder beside it: " + str_error(err));
  }
}

OutputDir::~OutputDir() {
  if (!committed_ && !tmp_.empty()) {
    remove_tree(tmp_.c_str());
    unregister_temp(tmp_);
  }
}

void OutputDir::write_file(const fs::path& file, const void* data, std::size_t n_bytes) const {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    if (errno == ENOSPC || errno == EDQUOT) throw OutputError(write_failed_message(path_, errno));
    throw OutputError(path_.string() + ": cannot create " + file.filename().string() + ": " + str_error(errno));
  }
  int err = write_all(fd, data, n_bytes);
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) throw OutputError(write_failed_message(path_, err));
}

void OutputDir::make_folder(const fs::path& folder) const {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (!ec) return;
  const int err = ec.value();
  if (err == ENOSPC || err == EDQUOT) throw OutputError(write_failed_message(path_, err));
  throw OutputError(path_.string() + ": cannot create " + folder.filename().string() + ": " + str_error(err));
}

void OutputDir::commit() {
  if (committed_ || tmp_.empty()) throw OutputError(path_.string() + ": committed twice");
  fsync_folder(tmp_);
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    swap_into_place(tmp_, path_);
  } else if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    throw OutputError(path_.string() + ": cannot move the finished " + output_kind_name(kind_) + " into place: " + str_error(errno));
  }
  unregister_temp(tmp_);
  committed_ = true;
  fsync_folder(parent_of(path_));
}

// --- removal ----------------------------------------------------------------------------

void remove_output(const fs::path& path, OutputKind kind) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;  // already gone
  const bool file_kind = kind == OutputKind::file || kind == OutputKind::trace;
  const bool removable = (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) ? file_kind
                         : S_ISDIR(st.st_mode)                         ? is_empty_folder(path) || holds_output(path, kind)
                                                                       : false;
  if (!removable)
    throw OutputError(path.string() + ": is " + describe_existing(path) + ", not a " + output_kind_name(kind) + "; not removed");
  if (const int err = remove_tree(path.c_str())) throw OutputError(path.string() + ": cannot remove: " + str_error(err));
}

}  // namespace moetb
