// The run directory under `moetb train` (runs/, docs/run-format.md), through the real binary:
// a second trainer or a concurrent --resume of a run in training exits non-zero naming the
// holder's pid; --force never replaces a folder that is not a moetb run; --resume --force is an
// error; a resume with other data or another model shape is refused naming the key; the run
// records its dataset as an absolute path and its format marker; a domain with no evaluation
// tokens has a null loss (not 0) in eval.json and stays blank in `moetb runs`.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/core/cli_test_util.h"
#include "tests/core/trace_test_util.h"

namespace fs = std::filesystem;

namespace {

bool has_torch_part() { return fs::exists(fs::path(MOETB_BINARY).parent_path() / "moetb-torch"); }

const std::string kTiny = "--set model.d_model=16 --set model.n_heads=2 --set moe.n_experts=4 --set moe.d_ff=16 "
                          "--set train.micro_batch=4 --set eval.sequences=4 -q";

void make_data(const ctu::Cli& cli, const std::string& name, int seed = 1) {
  REQUIRE(cli.run("datagen --out " + name + " --domains 2 --vocab-per-domain 16 --seq-len 16 --train-tokens 2048 "
                  "--val-tokens 256 --doc-len-mean 40 --seed " + std::to_string(seed)).rc == 0);
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(ttu::read_bytes(path)); }

}  // namespace

TEST_CASE("cli: a run in training is locked: a second train or --resume names the holder", "[cli]") {
  if (!has_torch_part()) return;
  ctu::Cli cli("cli-rundir-lock");
  make_data(cli, "data");
  // The first trainer runs (many steps) in the background; its pid is the lock holder.
  const std::string pid_file = cli.io.file("pid");
  const std::string cmd = "cd '" + cli.work.path() + "' && { '" + MOETB_BINARY + "' train --data data --out run --steps 1000000 " +
                          kTiny + " --set eval.every=1000000 --set checkpoint.every=1 >/dev/null 2>'" + cli.io.file("bg.err") +
                          "' & echo $! >'" + pid_file + "'; }";
  REQUIRE(std::system(cmd.c_str()) == 0);
  const pid_t pid = static_cast<pid_t>(std::stol(ttu::read_bytes(pid_file)));
  // Wait until it trains: the run and a first checkpoint are there.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(cli.work.file("run/checkpoints/latest")) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const bool started = fs::exists(cli.work.file("run/checkpoints/latest"));
  ctu::Result second, forced, resumed;
  if (started) {
    second = cli.run("train --data data --out run --steps 2 " + kTiny);
    forced = cli.run("train --data data --out run --steps 2 --force " + kTiny);
    resumed = cli.run("train --out run --resume -q");
  }
  ::kill(pid, SIGTERM);  // the process this test started
  int status = 0;
  ::waitpid(pid, &status, 0);  // not our child (started by the shell): poll until it is gone
  for (int i = 0; i < 200 && ::kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  INFO(ttu::read_bytes(cli.io.file("bg.err")));
  REQUIRE(started);
  const std::string holder = "in use by process " + std::to_string(pid);
  for (const ctu::Result* r : {&second, &forced, &resumed}) {
    INFO(r->err);
    CHECK(r->rc == 1);
    CHECK(ctu::one_line(r->err));
    CHECK(ttu::contains(r->err, holder));
  }
  // Killed mid-run, the run resumes from its checkpoint (the lock went with the process).
  const std::string latest = ttu::read_bytes(cli.work.file("run/checkpoints/latest"));
  const long next = std::stol(latest.substr(5)) + 1;
  const ctu::Result after = cli.run("train --out run --resume --stop-after " + std::to_string(next) + " -q");
  INFO(after.err);
  CHECK(after.rc == 0);
  CHECK(ttu::contains(after.err, "stopped after step " + std::to_string(next)));
}

TEST_CASE("cli: --force replaces only a moetb run, and --resume --force is an error", "[cli]") {
  if (!has_torch_part()) return;
  ctu::Cli cli("cli-rundir-force");
  make_data(cli, "data");
  fs::create_directories(cli.work.file("home/docs"));
  ttu::write_bytes(cli.work.file("home/notes.txt"), "mine");
  const ctu::Result r = cli.run("train --data data --out home --force --steps 2 " + kTiny);
  INFO(r.err);
  CHECK(r.rc == 1);
  CHECK(ctu::one_line(r.err));
  CHECK(ttu::contains(r.err, "not a moetb run directory"));
  CHECK(ttu::read_bytes(cli.work.file("home/notes.txt")) == "mine");
  CHECK(fs::is_directory(cli.work.file("home/docs")));
  CHECK_FALSE(fs::exists(cli.work.file("home/run.json")));

  REQUIRE(cli.run("train --data data --out run --steps 2 " + kTiny).rc == 0);
  const ctu::Result both = cli.run("train --out run --resume --force");
  CHECK(both.rc == 1);
  CHECK(ctu::one_line(both.err));
  CHECK(ttu::contains(both.err, "--resume and --force cannot be combined"));
  const ctu::Result again = cli.run("train --data data --out run --steps 2 " + kTiny);
  CHECK(again.rc == 1);
  CHECK(ttu::contains(again.err, "pass --force"));
  // A moetb run is replaced with --force; the new one has the marker and absolute paths.
  const ctu::Result replaced = cli.run("train --data data --out run --steps 2 --force " + kTiny);
  INFO(replaced.err);
  CHECK(replaced.rc == 0);
  const nlohmann::json run = read_json(cli.work.file("run/run.json"));
  CHECK(run["format"] == "moetb-run/1");
  CHECK(fs::path(run["dataset"].get<std::string>()).is_absolute());
  CHECK(fs::path(run["config"]["data"]["dir"].get<std::string>()).is_absolute());
  CHECK(ttu::contains(ttu::read_bytes(cli.work.file("run/config.toml")), "dir = '" + fs::absolute(cli.work.file("data")).string()));
}

TEST_CASE("cli: a resume cannot mix runs: other data or another model shape is refused naming the key", "[cli]") {
  if (!has_torch_part()) return;
  ctu::Cli cli("cli-rundir-resume");
  make_data(cli, "data");
  make_data(cli, "other", 2);
  REQUIRE(cli.run("train --data data --out run --steps 4 --stop-after 2 " + kTiny).rc == 0);
  const std::string log_before = ttu::read_bytes(cli.work.file("run/train_log.jsonl"));
  const ctu::Result data = cli.run("train --out run --resume --data other -q");
  INFO(data.err);
  CHECK(data.rc == 1);
  CHECK(ctu::one_line(data.err));
  CHECK(ttu::contains(data.err, "data.dir cannot change on resume: was " + fs::absolute(cli.work.file("data")).string() +
                                    ", now " + fs::absolute(cli.work.file("other")).string()));
  const ctu::Result model = cli.run("train --out run --resume --set model.d_model=32 -q");
  CHECK(model.rc == 1);
  CHECK(ttu::contains(model.err, "model.d_model cannot change on resume: was 16, now 32"));
  const ctu::Result seed = cli.run("train --out run --resume --seed 9 -q");
  CHECK(seed.rc == 1);
  CHECK(ttu::contains(seed.err, "train.seed cannot change on resume: was 1, now 9"));
  CHECK(ttu::read_bytes(cli.work.file("run/train_log.jsonl")) == log_before);  // nothing trained or rewritten
  // The same run resumes (more threads may change).
  const ctu::Result ok = cli.run("train --out run --resume --threads 2 -q");
  INFO(ok.err);
  CHECK(ok.rc == 0);
  CHECK(fs::exists(cli.work.file("run/eval.json")));
}

TEST_CASE("cli: a domain with no evaluation tokens has a null loss, not 0", "[cli]") {
  if (!has_torch_part()) return;
  ctu::Cli cli("cli-rundir-null");
  // 4 domains, 8 evaluation sequences: some domain gets no evaluated token.
  REQUIRE(cli.run("datagen --out data --set train_tokens=20000 --set val_tokens=4096").rc == 0);
  const ctu::Result r = cli.run("train --data data --out run --steps 2 --set eval.every=2 --set eval.sequences=8 "
                                "--set model.d_model=16 --set model.n_heads=2 --set moe.n_experts=4 --set moe.d_ff=16 "
                                "--set train.micro_batch=4 -q");
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const nlohmann::json ev = read_json(cli.work.file("run/eval.json"))["eval"];
  int empty = 0;
  for (const auto& d : ev["domains"]) {
    if (d["n_tokens"] != 0) continue;
    ++empty;
    CHECK(d["loss_bits"].is_null());
    CHECK(d["gap_bits"].is_null());
  }
  CHECK(empty > 0);
  CHECK(ev["loss_bits"].is_number());
  const ctu::Result table = cli.run("runs run");
  CHECK(table.rc == 0);
}
