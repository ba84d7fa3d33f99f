// The one output layer (design.md, "common/"): every file or folder moetb writes goes
// through here. Outputs are built under a short temporary name in the same folder, fsynced
// and renamed into place; devices and FIFOs are written through, never replaced; an output
// that is one of the command's inputs is refused; --force replaces a file, or a folder only
// when it holds a moetb output of the same kind; locks say "PATH: in use by process N".
// Temporaries are removed on failure, on SIGINT/SIGTERM/SIGHUP, and (when left by a dead
// process) by the next write in their folder. docs/outputs.md gives the rules.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace moetb {

// A refused or failed output. what() is one line naming the path.
class OutputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What an output is; decides which existing folder --force may replace (its format marker):
//   file        any single file (JSON, HTML, CSV, ...); never replaces a folder
//   trace       a .safetensors file, or a folder of shard-*.safetensors files (simulate)
//   dataset     a folder with manifest.json whose "format" is moetb-dataset/*
//   run         a folder with run.json: "format" moetb-run/*, or (older runs) an object
//               with "config" and "git_revision"
//   sweep       a folder with sweep.json whose "format" is moetb-sweep/*
//   checkpoint  a folder with state.json and model.pt (models/checkpoint.cpp)
enum class OutputKind { file, trace, dataset, run, sweep, checkpoint };
const char* output_kind_name(OutputKind kind);  // "file", "moetb dataset", ...

// True when `dir` is a folder holding a moetb output of this kind (see OutputKind).
bool holds_output(const std::filesystem::path& dir, OutputKind kind);
// "a character device", "a FIFO", "a folder with 3 entries (a.txt, b/, c)", "a file", ...
std::string describe_existing(const std::filesystem::path& path);

struct OutputOptions {
  bool force = false;                            // replace an existing output (see OutputKind)
  std::vector<std::filesystem::path> inputs;     // the command's inputs (files or folders)
  bool create_parents = false;                   // missing parent folders are made (a CLI's -o/--out);
                                                 // otherwise a missing parent is an error
};

// Throws OutputError when `output` is one of `inputs` (same st_dev/st_ino, so symlinks and
// hard links count), lies inside an input folder (`report RUN -o RUN/eval.json`), or is a
// folder that holds an input. Inputs that do not exist are skipped (their reader reports them).
void check_not_input(const std::filesystem::path& output, const std::vector<std::filesystem::path>& inputs);

// What check_output found at the target.
enum class Existing { none, file, special, folder };
// All the checks before anything is written: inputs, the parent folder exists, and the
// rules for an existing target (a file needs force; a device/FIFO is written through by a
// file output and refused by a folder output; a folder is replaced only when empty or, with
// force, when it holds an output of `kind`). Throws OutputError with one line otherwise.
Existing check_output(const std::filesystem::path& path, OutputKind kind, const OutputOptions& opt);

// Bounds before work: refuses (one line, with the estimate) an output of about `bytes` that
// cannot fit the free space of the file system that will hold `target`. Devices and FIFOs
// pass. format_bytes(12345678) = "12.3 MB".
void check_space_for(const std::filesystem::path& target, uint64_t bytes, const std::string& what);
std::string format_bytes(uint64_t bytes);

// The one-line message of a failed write: "write failed: PATH: no space left on device".
std::string write_failed_message(const std::filesystem::path& path, int err);

// A file written through a temporary name beside it ("." + short name + ".tmp-HOST-PID-N"):
// write(), then commit() fsyncs and renames it into place. Without commit() (an exception,
// a failed write) the temporary is removed; a signal removes it too. A device or FIFO target
// is opened and written directly. Every write error throws OutputError(write_failed_message).
//   OutputFile f("m.json", {force, {trace_path}});
//   f.write(text);
//   f.commit();
class OutputFile {
 public:
  OutputFile(std::filesystem::path path, const OutputOptions& opt, OutputKind kind = OutputKind::file);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(const void* data, std::size_t n_bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  void commit();
  const std::filesystem::path& path() const { return path_; }
  bool writes_through() const { return existing_ == Existing::special; }

 private:
  void fail(int err);
  std::filesystem::path path_, tmp_;
  Existing existing_ = Existing::none;
  int fd_ = -1;
  bool committed_ = false;
};

// Writes a whole file with OutputFile.
void write_output_file(const std::filesystem::path& path, std::string_view text, const OutputOptions& opt,
                       OutputKind kind = OutputKind::file);
// A file inside a folder moetb owns and rewrites (sweep.json, result.json, latest, ...):
// replaced without asking (force), still through a temporary, fsync and rename.
void replace_owned_file(const std::filesystem::path& path, std::string_view text);

// A folder output built under a temporary folder beside it; commit() swaps it into place
// (renameat2 RENAME_EXCHANGE, so the old output is never missing) and removes the old one.
// Stale temporaries of dead processes in the parent folder are removed first.
//   OutputDir d("data", OutputKind::dataset, {force});
//   d.write_file(d.tmp() / "manifest.json", text);   // or any writer into d.tmp()
//   d.commit();
class OutputDir {
 public:
  OutputDir(std::filesystem::path path, OutputKind kind, const OutputOptions& opt);
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  const std::filesystem::path& tmp() const { return tmp_; }
  const std::filesystem::path& path() const { return path_; }
  // Creates `file` (inside tmp()) with these bytes and fsyncs it; errors name path().
  void write_file(const std::filesystem::path& file, const void* data, std::size_t n_bytes) const;
  void write_file(const std::filesystem::path& file, std::string_view text) const {
    write_file(file, text.data(), text.size());
  }
  // Creates a folder (and its parents) inside tmp(); errors name path().
  void make_folder(const std::filesystem::path& folder) const;
  void commit();

 private:
  std::filesystem::path path_, tmp_;
  OutputKind kind_;
  bool committed_ = false;
};

// Removes `path` when it is a moetb output of `kind` (a regular file for OutputKind::file
// or trace; an empty folder for any kind); throws OutputError naming what it found
// otherwise. Nothing outside common/ removes files: this is how a sweep drops a stale
// result, the trainer prunes checkpoints, `demo --force` clears its folder.
void remove_output(const std::filesystem::path& path, OutputKind kind);

// An exclusive (or shared) flock on a lock file, created if missing. The holder writes its
// pid into the file; a second taker fails at once with "WHAT: in use by process N". The
// kernel releases it when the holder dies. A target that --force may replace should be
// locked beside it (lock_file_beside), since a lock file inside moves away with the old
// folder; remove_when_released removes the file on release (exclusive locks only).
//   auto lock = OutputLock::take(OutputLock::beside("data"), "data");
class OutputLock {
 public:
  enum class Mode { exclusive, shared };
  static OutputLock take(const std::filesystem::path& lock_file, const std::string& what, Mode mode = Mode::exclusive,
                         bool remove_when_released = false);
  // nullopt when someone else holds it; *holder (if given) = their pid, or 0 when unknown.
  static std::optional<OutputLock> try_take(const std::filesystem::path& lock_file, Mode mode = Mode::exclusive,
                                            bool remove_when_released = false, pid_t* holder = nullptr);
  static std::filesystem::path beside(const std::filesystem::path& target);  // PARENT/.NAME.lock
  OutputLock(OutputLock&& other) noexcept;
  OutputLock& operator=(OutputLock&&) = delete;
  OutputLock(const OutputLock&) = delete;
  ~OutputLock();

 private:
  OutputLock(int fd, std::filesystem::path path, bool remove) : fd_(fd), path_(std::move(path)), remove_(remove) {}
  int fd_ = -1;
  std::filesystem::path path_;
  bool remove_ = false;
};

// Temporary names and clean-up (temp_registry.cpp).
// "." + NAME (shortened to fit: names up to NAME_MAX always work) + ".tmp-HOST-PID-N".
std::filesystem::path temp_path_for(const std::filesystem::path& target);
// Removes temporaries in `folder` left by dead processes of this host; returns how many.
int clean_stale_temps(const std::filesystem::path& folder);
// Paths removed (recursively) if SIGINT, SIGTERM or SIGHUP arrives; the signal is then
// re-raised with its previous disposition. Installs the handlers on first use.
void register_temp(const std::filesystem::path& path);
// Installs those handlers now (register_temp does it once); call again after changing the
// signal dispositions (a forked test child), it keeps the previous ones otherwise.
void install_cleanup_handlers();
void unregister_temp(const std::filesystem::path& path);
// Removes a file or folder tree (no symlinks followed); async-signal-safe. 0 or errno.
int remove_tree(const char* path);

}  // namespace moetb
