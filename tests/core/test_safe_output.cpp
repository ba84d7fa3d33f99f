// The one output layer (common/safe_output.h, docs/outputs.md): devices (mknod in a scratch
// folder) and FIFOs written through, folders refused unless they hold a moetb output of the
// same kind, inputs never overwritten, locks raced by forked processes, temporaries removed
// on signals and when stale, and full file systems (a 64 KiB tmpfs, and RLIMIT_FSIZE).
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "common/safe_output.h"
#include "tests/core/trace_test_util.h"

namespace fs = std::filesystem;
using moetb::OutputDir;
using moetb::OutputError;
using moetb::OutputFile;
using moetb::OutputKind;
using moetb::OutputLock;
using moetb::OutputOptions;

namespace {

OutputOptions forced(bool force = true) {
  OutputOptions o;
  o.force = force;
  return o;
}

bool has_temp(const std::string& folder) {
  for (const auto& e : fs::directory_iterator(folder))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) return true;
  return false;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const OutputError& e) {
    return e.what();
  }
  return "";
}

void make_dataset_marker(const fs::path& dir) {
  fs::create_directories(dir);
  ttu::write_bytes((dir / "manifest.json").string(), R"({"format": "moetb-dataset/1"})");
  ttu::write_bytes((dir / "shard.tokens").string(), "old");
}

}  // namespace

TEST_CASE("outputs: a file is written atomically and replaced only with --force", "[outputs]") {
  ttu::TempDir dir("out-file");
  const std::string p = dir.file("a.json");
  moetb::write_output_file(p, "one\n", forced(false));
  CHECK(ttu::read_bytes(p) == "one\n");
  const std::string e = error_of([&] { moetb::write_output_file(p, "two\n", forced(false)); });
  CHECK(ttu::contains(e, "already exists (pass --force"));
  CHECK(ttu::read_bytes(p) == "one\n");
  moetb::write_output_file(p, "two\n", forced());
  CHECK(ttu::read_bytes(p) == "two\n");
  {
    OutputFile f(p, forced());
    f.write("half");
  }  // never committed: the old file stays, no temporary is left
  CHECK(ttu::read_bytes(p) == "two\n");
  CHECK(dir.entries() == std::vector<std::string>{"a.json"});
  CHECK(ttu::contains(error_of([&] { moetb::write_output_file(dir.file("no/such/x"), "x", forced()); }), "does not exist"));
}

TEST_CASE("outputs: a device node is written through, never replaced", "[outputs]") {
  ttu::TempDir dir("out-dev");
  const std::string dev = dir.file("null");
  REQUIRE(::mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);  // a null device, in the scratch folder
  moetb::write_output_file(dev, "into the device\n", forced(false));
  moetb::write_output_file(dev, "again, forced\n", forced());
  struct stat st {};
  REQUIRE(::stat(dev.c_str(), &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
  CHECK(dir.entries() == std::vector<std::string>{"null"});
  // A folder output (a dataset, sharded trace) cannot go there at all.
  for (OutputKind kind : {OutputKind::dataset, OutputKind::trace, OutputKind::run}) {
    const std::string e = error_of([&] { OutputDir d(dev, kind, forced()); });
    CHECK(ttu::contains(e, "character device"));
  }
  REQUIRE(::stat(dev.c_str(), &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
}

TEST_CASE("outputs: a FIFO is written through", "[outputs]") {
  ttu::TempDir dir("out-fifo");
  const std::string fifo = dir.file("pipe");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const pid_t reader = ::fork();
  if (reader == 0) {
    const int fd = ::open(fifo.c_str(), O_RDONLY);
    char buf[64] = {0};
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::_exit(n == 6 && std::string(buf) == "hello\n" ? 0 : 1);
  }
  moetb::write_output_file(fifo, "hello\n", forced());
  int status = 0;
  ::waitpid(reader, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(fs::is_fifo(fifo));
  CHECK(!has_temp(dir.path()));
}

TEST_CASE("outputs: folders are replaced only when they hold a moetb output of the same kind", "[outputs]") {
  ttu::TempDir dir("out-dirs");
  const fs::path tree = dir.file("home");
  fs::create_directories(tree / "docs");
  ttu::write_bytes((tree / "docs" / "thesis.tex").string(), "precious");
  ttu::write_bytes((tree / "notes.txt").string(), "precious");
  // A file output never replaces a folder; a dataset output refuses a folder that is no dataset.
  std::string e = error_of([&] { moetb::write_output_file(tree, "x", forced()); });
  CHECK(ttu::contains(e, "a folder with 2 entries"));
  e = error_of([&] { OutputDir d(tree, OutputKind::dataset, forced()); });
  CHECK(ttu::contains(e, "not a moetb dataset"));
  CHECK(ttu::contains(e, "even with --force"));
  CHECK(ttu::contains(e, "notes.txt"));
  e = error_of([&] { OutputDir d(tree, OutputKind::run, forced()); });
  CHECK(ttu::contains(e, "not a moetb run directory"));
  e = error_of([&] { moetb::remove_output(tree, OutputKind::sweep); });
  CHECK(ttu::contains(e, "not removed"));
  CHECK(ttu::read_bytes((tree / "docs" / "thesis.tex").string()) == "precious");
  // A folder that is a moetb dataset is replaced with --force, and only with it.
  const fs::path data = dir.file("data");
  make_dataset_marker(data);
  CHECK(ttu::contains(error_of([&] { OutputDir d(data, OutputKind::dataset, forced(false)); }), "--force"));
  CHECK(ttu::contains(error_of([&] { OutputDir d(data, OutputKind::sweep, forced()); }), "not a moetb sweep folder"));
  {
    OutputDir d(data, OutputKind::dataset, forced());
    d.write_file(d.tmp() / "manifest.json", std::string(R"({"format": "moetb-dataset/1", "new": true})"));
    d.commit();
  }
  CHECK(ttu::contains(ttu::read_bytes((data / "manifest.json").string()), "new"));
  CHECK(!fs::exists(data / "shard.tokens"));
  // An empty folder is replaced without asking; a regular file never by a folder output.
  fs::create_directories(dir.file("empty"));
  {
    OutputDir d(dir.file("empty"), OutputKind::dataset, forced(false));
    d.write_file(d.tmp() / "manifest.json", std::string("{}"));
    d.commit();
  }
  CHECK(fs::exists(dir.file("empty/manifest.json")));
  ttu::write_bytes(dir.file("plain"), "x");
  CHECK(ttu::contains(error_of([&] { OutputDir d(dir.file("plain"), OutputKind::dataset, forced()); }), "is a file"));
  // An uncommitted folder leaves nothing behind.
  { OutputDir d(dir.file("never"), OutputKind::dataset, forced()); }
  CHECK(!has_temp(dir.path()));
  CHECK(!fs::exists(dir.file("never")));
  // Traces: a folder of shards is replaced by a file with --force, and a file by shards.
  fs::create_directories(dir.file("shards"));
  ttu::write_bytes(dir.file("shards/shard-00000.safetensors"), "x");
  moetb::write_output_file(dir.file("shards"), "single", forced(), OutputKind::trace);
  CHECK(ttu::read_bytes(dir.file("shards")) == "single");
  moetb::remove_output(data, OutputKind::dataset);
  CHECK(!fs::exists(data));
}

TEST_CASE("outputs: an output that is an input is refused", "[outputs]") {
  ttu::TempDir dir("out-inputs");
  const std::string in = dir.file("A.safetensors");
  ttu::write_bytes(in, "input");
  REQUIRE(::link(in.c_str(), dir.file("hard").c_str()) == 0);
  fs::create_symlink(in, dir.file("soft"));
  fs::create_directories(dir.file("run/traces"));
  ttu::write_bytes(dir.file("run/eval.json"), "{}");
  OutputOptions o = forced();
  o.inputs = {in, dir.file("run")};
  for (const std::string& out : {in, dir.file("hard"), dir.file("soft"), dir.path() + "/./A.safetensors"}) {
    const std::string e = error_of([&] { moetb::write_output_file(out, "x", o); });
    CHECK(ttu::contains(e, "is also an input"));
  }
  CHECK(ttu::contains(error_of([&] { moetb::write_output_file(dir.file("run/eval.json"), "x", o); }), "inside an input folder"));
  CHECK(ttu::contains(error_of([&] { moetb::write_output_file(dir.file("run/traces/new.json"), "x", o); }), "inside an input folder"));
  o.inputs = {dir.file("run/traces")};
  CHECK(ttu::contains(error_of([&] { OutputDir d(dir.file("run"), OutputKind::run, o); }), "holds an input"));
  CHECK(ttu::read_bytes(in) == "input");
  CHECK(ttu::read_bytes(dir.file("run/eval.json")) == "{}");
  o.inputs = {in, dir.file("missing")};
  moetb::write_output_file(dir.file("other.json"), "ok", o);
  CHECK(ttu::read_bytes(dir.file("other.json")) == "ok");
}

TEST_CASE("outputs: names up to NAME_MAX work (short temporary names)", "[outputs]") {
  ttu::TempDir dir("out-long");
  const std::string name(255, 'n');
  moetb::write_output_file(dir.file(name), "x", forced());
  CHECK(ttu::read_bytes(dir.file(name)) == "x");
  const std::string dname(254, 'd');
  {
    OutputDir d(dir.file(dname), OutputKind::dataset, forced());
    d.commit();
  }
  CHECK(fs::is_directory(dir.file(dname)));
  { auto lock = OutputLock::take(OutputLock::beside(dir.file(name)), name, OutputLock::Mode::exclusive, true); }
  CHECK(moetb::temp_path_for(dir.file(name)).filename().string().size() < 255);
  CHECK(dir.entries().size() == 2);
}

TEST_CASE("outputs: two processes race for one lock; the second says who holds it", "[outputs]") {
  ttu::TempDir dir("out-lock");
  const fs::path lock_file = OutputLock::beside(dir.file("data"));
  for (bool remove : {false, true}) {
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t kids[2];
    for (pid_t& kid : kids) {
      kid = ::fork();
      if (kid == 0) {
        char go;
        (void)!::read(ready[0], &go, 1);
        int code = 1;
        try {
          auto lock = OutputLock::take(lock_file, "data", OutputLock::Mode::exclusive, remove);
          ::usleep(300000);  // hold it while the other one tries
          code = 0;
        } catch (const OutputError& e) {
          code = std::string(e.what()).find("data: in use by process ") == 0 ? 2 : 3;
        }
        ::_exit(code);
      }
    }
    REQUIRE(::write(ready[1], "gg", 2) == 2);
    int codes[2];
    for (int i = 0; i < 2; ++i) {
      int status = 0;
      ::waitpid(kids[i], &status, 0);
      REQUIRE(WIFEXITED(status));
      codes[i] = WEXITSTATUS(status);
    }
    ::close(ready[0]);
    ::close(ready[1]);
    std::sort(codes, codes + 2);
    CHECK(codes[0] == 0);
    CHECK(codes[1] == 2);
    CHECK(fs::exists(lock_file) == !remove);
  }
  // Held here: a child names this process; shared holders coexist, an exclusive taker waits for none.
  auto mine = OutputLock::take(lock_file, "data");
  const pid_t kid = ::fork();
  if (kid == 0) {
    const std::string e = error_of([&] { OutputLock::take(lock_file, "data"); });
    ::_exit(e == "data: in use by process " + std::to_string(::getppid()) ? 0 : 1);
  }
  int status = 0;
  ::waitpid(kid, &status, 0);
  CHECK(WEXITSTATUS(status) == 0);
  const fs::path sweep_lock = dir.file("sweep.lock");
  auto a = OutputLock::take(sweep_lock, "sweep", OutputLock::Mode::shared);
  auto b = OutputLock::take(sweep_lock, "sweep", OutputLock::Mode::shared);
  CHECK(!OutputLock::try_take(sweep_lock, OutputLock::Mode::exclusive));
}

namespace {

// Forks a child that starts an output (a folder with a file in it, or a file half written),
// reports ready and waits; kills it with `sig` and returns the child's wait status.
int killed_while_writing(const std::string& folder, bool as_dir, int sig) {
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t kid = ::fork();
  if (kid == 0) {
    for (int s : {SIGINT, SIGTERM, SIGHUP}) ::signal(s, SIG_DFL);  // not Catch's handlers
    moetb::install_cleanup_handlers();
    try {
      if (as_dir) {
        OutputDir d(folder + "/data", OutputKind::dataset, forced());
        fs::create_directories(d.tmp() / "train");
        d.write_file(d.tmp() / "train" / "shard.tokens", std::string(1000, 'x'));
        (void)!::write(ready[1], "r", 1);
        for (;;) ::pause();
      } else {
        OutputFile f(folder + "/out.json", forced());
        f.write(std::string(1000, 'x'));
        (void)!::write(ready[1], "r", 1);
        for (;;) ::pause();
      }
    } catch (...) {
    }
    ::_exit(7);
  }
  char r = 0;
  REQUIRE(::read(ready[0], &r, 1) == 1);
  ::close(ready[0]);
  ::close(ready[1]);
  CHECK(has_temp(folder));
  ::kill(kid, sig);
  int status = 0;
  ::waitpid(kid, &status, 0);
  return status;
}

}  // namespace

TEST_CASE("outputs: SIGINT, SIGTERM and SIGHUP remove the temporaries, then the signal kills", "[outputs]") {
  for (int sig : {SIGINT, SIGTERM, SIGHUP})
    for (bool as_dir : {true, false}) {
      ttu::TempDir dir("out-signal");
      const int status = killed_while_writing(dir.path(), as_dir, sig);
      CHECK(WIFSIGNALED(status));
      CHECK(WTERMSIG(status) == sig);
      CHECK(dir.entries().empty());
    }
}

TEST_CASE("outputs: temporaries of dead processes are removed by the next write there", "[outputs]") {
  ttu::TempDir dir("out-stale");
  // A child makes a temporary folder and a temporary file, then dies without cleaning up.
  const pid_t kid = ::fork();
  if (kid == 0) {
    const fs::path t = moetb::temp_path_for(dir.file("data"));
    fs::create_directories(t / "train");
    ttu::write_bytes((t / "train" / "x").string(), "x");
    ttu::write_bytes(moetb::temp_path_for(dir.file("m.json")).string(), "x");
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(kid, &status, 0);
  // A live process's temporary (this one's sleeping child) and a user's dot file stay.
  const pid_t alive = ::fork();
  if (alive == 0) {
    ttu::write_bytes(moetb::temp_path_for(dir.file("live")).string(), "x");
    ::pause();
    ::_exit(0);
  }
  for (int i = 0; i < 200 && dir.entries().size() < 3; ++i) ::usleep(5000);
  ttu::write_bytes(dir.file(".user.tmp-notes"), "mine");
  REQUIRE(dir.entries().size() == 4);
  moetb::write_output_file(dir.file("m.json"), "{}", forced());
  ::kill(alive, SIGKILL);
  ::waitpid(alive, &status, 0);
  std::vector<std::string> left = dir.entries();
  CHECK(left.size() == 3);  // .live temporary, the user's file, m.json
  CHECK(std::count_if(left.begin(), left.end(), [](const std::string& n) { return n.rfind(".live.tmp-", 0) == 0; }) == 1);
  CHECK(fs::exists(dir.file(".user.tmp-notes")));
  CHECK(moetb::clean_stale_temps(dir.path()) == 1);  // the live one has died now
}

TEST_CASE("outputs: a full file system ends with one line and no temporary (tmpfs of 64 KiB)", "[outputs]") {
  ttu::TempDir dir("out-full");
  const std::string mnt = dir.file("small");
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) {
    WARN("mount -t tmpfs is not permitted here (" << std::strerror(errno) << "): the RLIMIT_FSIZE test covers the failure path");
    return;
  }
  struct Unmount {
    std::string p;
    ~Unmount() { ::umount(p.c_str()); }
  } unmount{mnt};
  const std::string big(1 << 20, 'x');
  moetb::write_output_file(mnt + "/keep.json", "old", forced());
  std::string e = error_of([&] { moetb::write_output_file(mnt + "/keep.json", big, forced()); });
  CHECK(e == "write failed: " + mnt + "/keep.json: no space left on device");
  CHECK(ttu::read_bytes(mnt + "/keep.json") == "old");
  e = error_of([&] {
    OutputDir d(mnt + "/data", OutputKind::dataset, forced());
    d.write_file(d.tmp() / "a.tokens", big);
    d.commit();
  });
  CHECK(e == "write failed: " + mnt + "/data: no space left on device");
  std::vector<std::string> left;
  for (const auto& x : fs::directory_iterator(mnt)) left.push_back(x.path().filename().string());
  CHECK(left == std::vector<std::string>{"keep.json"});
}

TEST_CASE("outputs: a write over RLIMIT_FSIZE fails with one line and no temporary", "[outputs]") {
  ttu::TempDir dir("out-fsize");
  const pid_t kid = ::fork();
  if (kid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim {65536, 65536};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    const std::string big(1 << 20, 'x');
    const std::string p = dir.file("t.safetensors");
    const std::string e1 = error_of([&] { moetb::write_output_file(p, big, forced()); });
    const std::string e2 = error_of([&] {
      OutputDir d(dir.file("data"), OutputKind::dataset, forced());
      d.write_file(d.tmp() / "a.tokens", big);
    });
    const bool ok = e1 == "write failed: " + p + ": file too large" && e2 == "write failed: " + dir.file("data") + ": file too large";
    ::_exit(ok && dir.entries().empty() ? 0 : 1);
  }
  int status = 0;
  ::waitpid(kid, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
