// `moetb sweep` end to end through the real binary. Most cases use a stand-in trainer
// (fixtures/fake_moetb_train.sh) so they need no LibTorch and take milliseconds per run:
// failure isolation and --retry-failed, a kill -9 in the middle of a run and the rerun
// that redoes only that run (resuming it), run-one, collect; with the LibTorch part, a tiny
// real sweep (datagen + moetb train) from plan to plots.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "sweeps/sweep_dir.h"
#include "tests/core/cli_test_util.h"
#include "tests/core/trace_test_util.h"

namespace fs = std::filesystem;
using moetb::sweeps::read_text_file;
using moetb::sweeps::SweepDir;

namespace {

const std::string kFake = std::string(MOETB_TEST_FIXTURES) + "/fake_moetb_train.sh";

// [fake] keys are the stand-in trainer's, not moetb train's: plan must not check them.
std::string spec_with(const std::string& axes, const std::string& seeds = "[1, 2]") {
  return "[sweep]\nname = \"t\"\nseeds = " + seeds + "\ncheck_train_keys = false\n[base]\ndata.dir = \".\"\n" + axes;
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::size_t count_lines(const std::string& path) {
  if (!fs::exists(path)) return 0;
  std::ifstream in(path);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

bool process_gone(pid_t pid) {
  const std::string stat = "/proc/" + std::to_string(pid) + "/stat";
  if (!fs::exists(stat)) return true;
  const std::string s = ttu::read_bytes(stat);
  const auto paren = s.rfind(')');
  return paren != std::string::npos && paren + 2 < s.size() && s[paren + 2] == 'Z';  // a zombie has exited
}

template <class Pred>
bool wait_for(Pred pred, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

}  // namespace

TEST_CASE("sweep run: a failing run is recorded and does not stop the others; --retry-failed reruns it", "[sweeps]") {
  ctu::Cli cli("sweep-fail");
  write(cli.work.file("spec.toml"), spec_with("[[axes]]\nfake.fail = [false, true]\nfake.loss = [2.0, 3.0]\n"));
  REQUIRE(cli.run("sweep plan spec.toml --out sw").rc == 0);
  const ctu::Result r = cli.run("sweep run sw --jobs 2 -q --moetb " + kFake);
  INFO(r.err);
  CHECK(r.rc == 1);
  CHECK(ttu::contains(r.out, "4 ok, 4 failed"));
  const SweepDir dir(cli.work.file("sw"));
  const auto plan = dir.load();
  REQUIRE(plan.runs.size() == 8);
  int failed = 0;
  for (const auto& e : plan.runs) {
    const auto res = dir.read_result(e.id);
    REQUIRE(res);
    const bool should_fail = e.axes[0].second == "true";
    CHECK((*res)["status"] == (should_fail ? "failed" : "ok"));
    if (should_fail) {
      ++failed;
      CHECK((*res)["exit_code"] == 3);
      CHECK(ttu::contains((*res)["error"].get<std::string>(), "planted failure"));
    }
    CHECK(count_lines(dir.run_dir(e.id).string() + "/calls") == 1);
  }
  CHECK(failed == 4);
  // A rerun does nothing and still reports the failures.
  const ctu::Result again = cli.run("sweep run sw -q --moetb " + kFake);
  CHECK(again.rc == 1);
  CHECK(ttu::contains(again.out, "4 failed earlier"));
  for (const auto& e : plan.runs) CHECK(count_lines(dir.run_dir(e.id).string() + "/calls") == 1);
  // --retry-failed reruns exactly the failed ones.
  const ctu::Result retry = cli.run("sweep run sw -q --retry-failed --moetb " + kFake);
  CHECK(retry.rc == 1);
  for (const auto& e : plan.runs)
    CHECK(count_lines(dir.run_dir(e.id).string() + "/calls") == (e.axes[0].second == "true" ? 2u : 1u));
  CHECK(dir.read_result(plan.runs[4].id)->value("attempt", 0) == 2);
  CHECK(dir.read_result(plan.runs[0].id)->value("attempt", 0) == 1);
  // collect lists every run and averages the ok ones.
  const ctu::Result c = cli.run("sweep collect sw --metrics val_bits,rs");
  INFO(c.err);
  REQUIRE(c.rc == 0);
  const std::string csv = ttu::read_bytes(cli.work.file("sw/results.csv"));
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 9);
  CHECK(ttu::contains(csv, "planted failure"));
  const std::string md = ttu::read_bytes(cli.work.file("sw/summary.md"));
  CHECK(ttu::contains(md, "| false | 2.0 | 2 | 2 ± 0 |"));
  // Paired by seed: loss 3.0 against 2.0 among the runs that did not fail, +1 in both seeds.
  CHECK(ttu::contains(md, "| loss: 3.0 - 2.0 | fail=false | 2 | **+1 [+1, +1], 2 of 2 seeds** |"));
  CHECK(ttu::contains(ttu::read_bytes(cli.work.file("sw/paired.csv")), "fake.loss,fail=false,2.0,3.0,val_bits,2,1,0,0,1,1,2,0,0,true"));
  CHECK(fs::exists(cli.work.file("sw/plots/paired-val_bits.svg")));
  CHECK(ttu::contains(ttu::read_bytes(cli.work.file("sw/plots/val_bits-vs-fake_loss.svg")), "n = 2 seeds"));
  CHECK(fs::exists(cli.work.file("sw/plots/val_bits-vs-fake_fail.svg")));
  CHECK(fs::exists(cli.work.file("sw/plots/utilization-vs-rs.svg")));
  CHECK(ttu::contains(ttu::read_bytes(cli.work.file("sw/plots/utilization-vs-rs.svg")), ">loss=3.0</text>"));  // coloured by the axis that varies
  const ctu::Result bad = cli.run("sweep collect sw --metrics nope");
  CHECK(bad.rc == 1);
  CHECK(ctu::one_line(bad.err));
}

TEST_CASE("sweep run: killed with -9 in the middle of a run, the rerun redoes only that run", "[sweeps]") {
  ctu::Cli cli("sweep-kill");
  write(cli.work.file("spec.toml"),
        spec_with("[[axes]]\nmode = \"zip\"\nfake.hang = [false, false, true]\nfake.loss = [2.0, 2.5, 3.0]\n", "[1]"));
  REQUIRE(cli.run("sweep plan spec.toml --out sw").rc == 0);
  const SweepDir dir(cli.work.file("sw"));
  const auto plan = dir.load();
  REQUIRE(plan.runs.size() == 3);
  const std::string pid_file = cli.work.file("runner.pid");
  const std::string cmd = "cd '" + cli.work.path() + "' && ('" + MOETB_BINARY + "' sweep run sw --jobs 3 -q --moetb '" + kFake +
                          "' > runner.out 2>&1 & echo $! > runner.pid)";
  REQUIRE(std::system(cmd.c_str()) == 0);
  const std::string hung_pid_file = dir.run_dir(plan.runs[2].id).string() + "/hung.pid";
  REQUIRE(wait_for([&] { return fs::exists(dir.result_path(plan.runs[0].id)) && fs::exists(dir.result_path(plan.runs[1].id)) &&
                                fs::exists(hung_pid_file) && !ttu::read_bytes(hung_pid_file).empty(); },
                   30));
  const std::string done0 = read_text_file(dir.result_path(plan.runs[0].id));
  const std::string done1 = read_text_file(dir.result_path(plan.runs[1].id));
  const pid_t runner = std::stoi(ttu::read_bytes(pid_file));
  const pid_t hung = std::stoi(ttu::read_bytes(hung_pid_file));
  REQUIRE(::kill(runner, SIGKILL) == 0);
  // The run in flight dies with its runner, leaving no result.
  CHECK(wait_for([&] { return process_gone(hung); }, 10));
  CHECK_FALSE(fs::exists(dir.result_path(plan.runs[2].id)));
  const ctu::Result rerun = cli.run("sweep run sw --jobs 3 -q --moetb " + kFake);
  INFO(rerun.err);
  CHECK(rerun.rc == 0);
  CHECK(ttu::contains(rerun.out, "1 ok, 0 failed in this call; 2 were complete"));
  // Complete runs were neither redone nor rewritten; the interrupted one resumed.
  CHECK(read_text_file(dir.result_path(plan.runs[0].id)) == done0);
  CHECK(read_text_file(dir.result_path(plan.runs[1].id)) == done1);
  CHECK(count_lines(dir.run_dir(plan.runs[0].id).string() + "/calls") == 1);
  const std::string calls = read_text_file(dir.run_dir(plan.runs[2].id).string() + "/calls");
  CHECK(count_lines(dir.run_dir(plan.runs[2].id).string() + "/calls") == 2);
  CHECK(ttu::contains(calls, "resume=1"));
  CHECK((*dir.read_result(plan.runs[2].id))["status"] == "ok");
  // run-one on a complete run is a no-op; a bad index is one line.
  const ctu::Result one = cli.run("sweep run-one sw --index 2 --moetb " + kFake);
  CHECK(one.rc == 0);
  CHECK(ttu::contains(one.err, "already complete"));
  const ctu::Result bad = cli.run("sweep run-one sw --index 7");
  CHECK(bad.rc == 1);
  CHECK(ctu::one_line(bad.err));
  CHECK(ttu::contains(bad.err, "--index 7: the plan has runs 0-2"));
}

TEST_CASE("sweep: bad input is one line and a non-zero exit", "[sweeps]") {
  ctu::Cli cli("sweep-errors");
  write(cli.work.file("bad.toml"), "[sweep]\nseeds = [1]\n");
  for (const char* args : {"sweep plan bad.toml --out sw", "sweep plan missing.toml --out sw", "sweep run nowhere",
                           "sweep collect nowhere", "sweep slurm nowhere"}) {
    const ctu::Result r = cli.run(args);
    INFO(args << ": " << r.err);
    CHECK(r.rc == 1);
    CHECK(ctu::one_line(r.err));
  }
  CHECK_FALSE(fs::exists(cli.work.file("sw/sweep.json")));
}

TEST_CASE("sweep: a tiny real sweep trains, collects and plots (LibTorch part)", "[sweeps]") {
  if (!fs::exists(fs::path(MOETB_BINARY).parent_path() / "moetb-torch")) return;
  ctu::Cli cli("sweep-real");
  write(cli.work.file("spec.toml"), R"([sweep]
name = "tiny"
seeds = [1, 2]
metrics = ["val_bits", "rs"]
[datagen]
domains = 2
vocab_per_domain = 16
seq_len = 16
train_tokens = 2048
val_tokens = 256
doc_len_mean = 40
[base]
train.steps = 2
train.micro_batch = 4
model.d_model = 16
model.n_heads = 2
moe.n_experts = 4
moe.d_ff = 16
eval.every = 2
eval.sequences = 4
[[axes]]
router.name = ["oracle", "random"]
)");
  REQUIRE(cli.run("sweep plan spec.toml --out sw").rc == 0);
  const ctu::Result r = cli.run("sweep run sw --jobs 2 -q");
  INFO(r.err);
  REQUIRE(r.rc == 0);
  REQUIRE(cli.run("sweep collect sw").rc == 0);
  const std::string csv = ttu::read_bytes(cli.work.file("sw/results.csv"));
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 5);
  CHECK(ttu::contains(csv, ",oracle,ok,0,"));
  CHECK(ttu::contains(csv, ",random,ok,0,"));
  CHECK(ttu::contains(csv, "val_bits.d0"));
  const std::string md = ttu::read_bytes(cli.work.file("sw/summary.md"));
  CHECK(ttu::contains(md, "| oracle | 2 |"));
  CHECK(fs::exists(cli.work.file("sw/plots/rs-vs-router.svg")));
  // Every run's directory holds the effective config and provenance of moetb train.
  const auto plan = SweepDir(cli.work.file("sw")).load();
  for (const auto& e : plan.runs) CHECK(fs::exists(SweepDir(cli.work.file("sw")).train_dir(e.id) / "run.json"));
}
