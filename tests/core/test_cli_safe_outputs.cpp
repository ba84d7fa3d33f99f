// What the commands do to a user's files (issue 13, docs/outputs.md), run as a user would:
// -o into a device node (mknod in the scratch folder) or over a folder tree, --force over a
// folder that is no moetb output, outputs that are inputs, locks held by another process,
// interrupted and stale temporaries, full disks, and the checks before work (duplicate
// names, a FIFO manifest, sweep specs).
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "common/safe_output.h"
#include "tests/core/cli_test_util.h"
#include "tests/core/trace_test_util.h"

namespace fs = std::filesystem;
using ctu::Cli;
using ctu::Result;
using Names = std::vector<std::string>;

namespace {

const std::string kSimBase = "simulate -L 2 -E 8 -k 2 -D 2 ";
const std::string kSim = kSimBase + "-T 2048 ";
const std::string kData = "datagen --train-tokens 4096 --val-tokens 1024 --domains 2 --vocab-per-domain 16 --seq-len 16 ";

// A failure: non-zero exit, one stderr line holding `word`, nothing on stdout.
void check_refused(const Result& r, const std::string& word) {
  INFO("stderr: " << r.err);
  CHECK(r.rc != 0);
  CHECK(r.rc < 128);
  CHECK(ctu::one_line(r.err));
  CHECK(ttu::contains(r.err, word));
}

bool is_char_device(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

}  // namespace

TEST_CASE("outputs cli: simulate --force writes into a device and never replaces it or a folder tree", "[outputs]") {
  Cli cli("cli-dev");
  const std::string dev = cli.work.file("null");
  REQUIRE(::mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
  const Result r = cli.run(kSim + "-o null --force");
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(is_char_device(dev));
  check_refused(cli.run(kSim + "--shard-tokens 1000 -o null --force"), "character device");
  CHECK(is_char_device(dev));
  fs::create_directories(cli.work.file("tree/sub"));
  ttu::write_bytes(cli.work.file("tree/sub/thesis.tex"), "precious");
  for (const std::string shards : {"", "--shard-tokens 1000 "}) {
    check_refused(cli.run(kSim + shards + "-o tree --force"), "refusing to replace it");
    CHECK(ttu::read_bytes(cli.work.file("tree/sub/thesis.tex")) == "precious");
  }
  CHECK(cli.work.entries() == (Names{"null", "tree"}));
  // A folder of shards is ours: --force replaces it (and a file by shards).
  REQUIRE(cli.run(kSim + "--shard-tokens 1000 -o shards").rc == 0);
  CHECK(cli.run(kSim + "--shard-tokens 500 -o shards --force").rc == 0);
  CHECK(cli.run(kSim + "-o shards --force").rc == 0);
  CHECK(fs::is_regular_file(cli.work.file("shards")));
}

TEST_CASE("outputs cli: datagen --force replaces only a moetb dataset", "[outputs]") {
  Cli cli("cli-home");
  fs::create_directories(cli.work.file("home/docs"));
  ttu::write_bytes(cli.work.file("home/docs/notes.txt"), "precious");
  const Result r = cli.run(kData + "--out home --force");
  check_refused(r, "not a moetb dataset");
  CHECK(ttu::contains(r.err, "notes.txt") == false);  // first entries are named: docs/
  CHECK(ttu::contains(r.err, "docs/"));
  CHECK(ttu::read_bytes(cli.work.file("home/docs/notes.txt")) == "precious");
  REQUIRE(cli.run(kData + "--out data").rc == 0);
  check_refused(cli.run(kData + "--out data"), "--force");
  const Result again = cli.run(kData + "--out data --seed 9 --force");
  INFO(again.err);
  CHECK(again.rc == 0);
  CHECK(ttu::contains(ttu::read_bytes(cli.work.file("data/manifest.json")), "\"seed\": 9"));
  CHECK(cli.work.entries() == (Names{"data", "home"}));  // no temporary, no lock file left
}

TEST_CASE("outputs cli: an output that is an input is refused, for every command with -o", "[outputs]") {
  Cli cli("cli-inout");
  REQUIRE(cli.run(kSim + "-o A.safetensors").rc == 0);
  REQUIRE(cli.run(kSim + "--seed 4 -o B.safetensors").rc == 0);
  fs::create_directories(cli.work.file("run/traces"));
  ttu::write_bytes(cli.work.file("run/eval.json"), "{\"eval\": {}, \"metrics_summary\": {}}");
  fs::create_symlink("A.safetensors", cli.work.file("link"));
  const std::string a = ttu::read_bytes(cli.work.file("A.safetensors"));
  const std::string eval = ttu::read_bytes(cli.work.file("run/eval.json"));
  for (const std::string args :
       {"metrics A.safetensors -o A.safetensors --force", "metrics A.safetensors -o link --force",
        "metrics A.safetensors --json -o ./A.safetensors", "paths A.safetensors -o A.safetensors --force",
        "compare A.safetensors B.safetensors -o B.safetensors --force", "report A.safetensors -o A.safetensors --force",
        "report run -o run/eval.json --force", "report run -o run/report.html", "runs run -o run/eval.json --force",
        "runs run -o run/traces/t.txt"}) {
    INFO(args);
    const Result r = cli.run(args);
    check_refused(r, "input");
  }
  CHECK(ttu::read_bytes(cli.work.file("A.safetensors")) == a);
  CHECK(ttu::read_bytes(cli.work.file("run/eval.json")) == eval);
  fs::create_directories(cli.work.file("text/code"));
  for (int i = 0; i < 20; ++i) ttu::write_bytes(cli.work.file("text/code/a" + std::to_string(i) + ".c"), "int main() { return 0; }\n");
  check_refused(cli.run("datagen --domain code=text/code --out text/code/data"), "inside an input folder");
  check_refused(cli.run("datagen --domain code=text/code --out text --force"), "holds an input");
  // An existing output file needs --force; then it is replaced.
  REQUIRE(cli.run("metrics A.safetensors -o m.txt").rc == 0);
  check_refused(cli.run("metrics A.safetensors -o m.txt"), "--force");
  CHECK(cli.run("metrics A.safetensors --json -o m.txt --force").rc == 0);
  CHECK(ttu::contains(ttu::read_bytes(cli.work.file("m.txt")), "moetb-metrics/1"));
}

TEST_CASE("outputs cli: a dataset or sweep in use by another process is refused with its pid", "[outputs]") {
  Cli cli("cli-locks");
  const std::string me = std::to_string(::getpid());
  {
    auto lock = moetb::OutputLock::take(moetb::OutputLock::beside(cli.work.file("data")), "data",
                                        moetb::OutputLock::Mode::exclusive, true);
    const Result r = cli.run(kData + "--out data");
    check_refused(r, "data: in use by process " + me);
  }
  CHECK(cli.work.entries().empty());
  ttu::write_bytes(cli.work.file("spec.toml"),
                   "[sweep]\nname = \"s\"\nseeds = [1]\n[base]\ntrain.steps = 2\n[datagen]\ntrain_tokens = 4096\n");
  REQUIRE(cli.run("sweep plan spec.toml --out sw").rc == 0);
  {
    auto running = moetb::OutputLock::take(cli.work.file("sw/sweep.lock"), "sw", moetb::OutputLock::Mode::shared);
    check_refused(cli.run("sweep plan spec.toml --out sw"), "in use by process " + me);
  }
  CHECK(cli.run("sweep plan spec.toml --out sw").rc == 0);
}

TEST_CASE("outputs cli: an interrupted simulate leaves no temporary; stale ones are removed by the next run", "[outputs]") {
  Cli cli("cli-signal");
  const std::string cmd = "cd '" + cli.work.path() + "' && exec '" + MOETB_BINARY + "' simulate -T 1000000 -L 32 -E 8 -k 2 -o big.safetensors";
  for (int sig : {SIGINT, SIGTERM}) {
    const pid_t kid = ::fork();
    if (kid == 0) {
      for (int s : {SIGINT, SIGTERM, SIGHUP}) ::signal(s, SIG_DFL);  // as from a terminal
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    bool seen = false;  // wait for the temporary to appear, then interrupt
    for (int i = 0; i < 2000 && !seen; ++i) {
      for (const auto& e : fs::directory_iterator(cli.work.path())) seen |= ttu::contains(e.path().filename().string(), ".tmp-");
      if (!seen) ::usleep(5000);
    }
    ::kill(kid, sig);
    int status = 0;
    ::waitpid(kid, &status, 0);
    CHECK(seen);
    CHECK(WIFSIGNALED(status));
    CHECK(cli.work.entries().empty());
  }
  // A temporary left by a dead process (kill -9 leaves one) goes with the next write there.
  const pid_t kid = ::fork();
  if (kid == 0) {
    fs::create_directories(moetb::temp_path_for(cli.work.file("data")) / "train");
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(kid, &status, 0);
  REQUIRE(cli.work.entries().size() == 1);
  REQUIRE(cli.run(kData + "--out data").rc == 0);
  CHECK(cli.work.entries() == Names{"data"});
}

TEST_CASE("outputs cli: a full disk ends with one line and no temporary", "[outputs]") {
  Cli cli("cli-full");
  // RLIMIT_FSIZE (ulimit -f, SIGXFSZ ignored) makes every large write fail, wherever it runs.
  auto limited = [&](const std::string& args) {
    const std::string out = cli.io.file("stdout"), err = cli.io.file("stderr");
    const std::string cmd = "cd '" + cli.work.path() + "' && ulimit -f 64 && trap '' XFSZ && '" + MOETB_BINARY + "' " + args +
                            " >'" + out + "' 2>'" + err + "'";
    const int status = std::system(cmd.c_str());
    Result r;
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = ttu::read_bytes(out);
    r.err = ttu::read_bytes(err);
    return r;
  };
  ttu::write_bytes(cli.work.file("t.safetensors"), "old");
  check_refused(limited(kSimBase + "-T 200000 -o t.safetensors --force"), "write failed: t.safetensors: file too large");
  CHECK(ttu::read_bytes(cli.work.file("t.safetensors")) == "old");
  check_refused(limited("datagen --train-tokens 200000 --out data"), "write failed: data: file too large");
  CHECK(cli.work.entries() == Names{"t.safetensors"});
  // A file system too small for the estimate is refused before any work.
  const std::string mnt = cli.work.file("small");
  fs::create_directories(mnt);
  if (std::system(("mount -t tmpfs -o size=64k tmpfs '" + mnt + "' 2>/dev/null").c_str()) != 0) {
    WARN("mount -t tmpfs is not permitted here: the ulimit -f checks above cover the write failures");
    return;
  }
  check_refused(cli.run(kSimBase + "-T 200000 -o small/t.safetensors"), "needs about");
  check_refused(cli.run("datagen --train-tokens 200000 --out small/data"), "needs about");
  CHECK(fs::is_empty(mnt));
  CHECK(std::system(("umount '" + mnt + "'").c_str()) == 0);
}

TEST_CASE("outputs cli: checks before work: duplicate names, a FIFO manifest, sweep specs", "[outputs]") {
  Cli cli("cli-checks");
  check_refused(cli.run(kData + "--domain-names a,a --out d"), "domain_names");
  check_refused(cli.run(kSim + "--domain-names x,x -o t.safetensors"), "twice");
  fs::create_directories(cli.work.file("fifo"));
  REQUIRE(::mkfifo(cli.work.file("fifo/manifest.json").c_str(), 0600) == 0);
  const Result fifo = cli.run("datagen --stats fifo");  // used to block forever in open()
  check_refused(fifo, "not a regular file");
  auto spec = [&](const std::string& name, const std::string& body) {
    ttu::write_bytes(cli.work.file(name), "[sweep]\nname = \"s\"\nseeds = [1, 2]\n" + body);
    return name;
  };
  check_refused(cli.run("sweep plan " + spec("a.toml", "[base]\ndata.dir = \"d\"\n[[axes]]\nrouter.aux_coef = [0.01, \"big\"]\n") + " --out s1"),
                "router.aux_coef");
  check_refused(cli.run("sweep plan " + spec("b.toml", "[base]\ndata.dir = \"d\"\nmodel.d_model = 32\n[[axes]]\nmodel.d_model = [\"wide\"]\n") + " --out s2"),
                "model.d_model");
  check_refused(cli.run("sweep plan " + spec("c.toml", "[datagen]\ntrain_tokenz = 5\n") + " --out s3"), "train_tokenz");
  check_refused(cli.run("sweep plan " + spec("d.toml", "[datagen]\ndomains = \"two\"\n") + " --out s4"), "domains");
  std::string axes = "[base]\ndata.dir = \"d\"\n[[axes]]\n", values;
  for (int v = 0; v < 20; ++v) values += (v ? ", " : "") + std::to_string(v);
  for (const char* k : {"a.x", "a.y", "a.z", "a.w"}) axes += std::string(k) + " = [" + values + "]\n";
  check_refused(cli.run("sweep plan " + spec("f.toml", axes) + " --out s5"), "320000 runs");  // 20^4 x 2 seeds
  fs::create_directories(cli.work.file("mine"));
  ttu::write_bytes(cli.work.file("mine/thesis.tex"), "precious");
  check_refused(cli.run("sweep plan " + spec("e.toml", "[base]\ndata.dir = \"d\"\n") + " --out mine"), "not a moetb sweep folder");
  CHECK(ttu::read_bytes(cli.work.file("mine/thesis.tex")) == "precious");
  for (const char* d : {"s1", "s2", "s3", "s4", "s5"}) CHECK(!fs::exists(cli.work.file(d)));
}
