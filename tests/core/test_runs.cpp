// Tests of runs/ (moetb-run/1): the records round-trip through JSON with the keys the trainer
// has always written; the writer creates a run with its marker, refuses a folder that is not
// a run, locks the run against a second writer (another process), truncates its log on
// resume; the reader tolerates a torn last log line but not a damaged one before it, reads
// runs from before the marker with a note, refuses newer formats, and finds the final
// metrics and trace; the resume check names the key that changed.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "runs/run_reader.h"
#include "runs/run_writer.h"
#include "tests/core/trace_test_util.h"

namespace fs = std::filesystem;
using namespace moetb::runs;
using ttu::TempDir;

namespace {

RunInfo sample_info() {
  RunInfo i;
  i.seed = 3;
  i.git_revision = "abc";
  i.dataset = "/data/d";
  i.config = {{"data", {{"dir", "/data/d"}}}, {"model", {{"d_model", 16}}}, {"router", {{"name", "topk"}}},
              {"train", {{"seed", 3}, {"steps", 10}, {"lr", 0.01}, {"threads", 1}}}};
  return i;
}

StepRecord sample_step(int64_t step) {
  StepRecord s;
  s.step = step;
  s.lr = 0.001;
  s.loss_bits = 4.5;
  s.aux_loss = 0.02;
  s.aux_terms = {{"balance", 1.01}};
  s.load = {{0.3, 0.1, 0.2, 0.0}};
  s.max_load_violation = 0.2;
  s.tokens_per_s = 1000;
  return s;
}

EvalRecord sample_eval(int64_t step) {
  EvalRecord e;
  e.step = step;
  e.eval.loss_bits = 3.0;
  e.eval.n_tokens = 30;
  e.eval.domains = {{"a", 30, 3.0, 2.0, 1.0}, {"b", 0, std::nullopt, 2.5, std::nullopt}};
  e.trace = trace_name(step);
  e.metrics_summary = {{"rs", 0.5}};
  return e;
}

}  // namespace

TEST_CASE("runs: records keep the keys the trainer writes, and a domain without tokens has a null loss", "[runs]") {
  const nlohmann::json s = sample_step(2).to_json();
  for (const char* k : {"step", "lr", "loss_bits", "aux_loss", "aux_terms", "load", "max_load_violation", "tokens_per_s"})
    CHECK(s.contains(k));
  CHECK(s.size() == 8);
  CHECK(s["load"][0].size() == 4);
  const StepRecord back = StepRecord::from_json(s);
  CHECK(back.step == 2);
  CHECK(back.aux_terms.at("balance") == 1.01);
  CHECK(back.load.at(0).violation == 0.2);
  CHECK(std::isnan(StepRecord::from_json({{"step", 1}}).lr));  // absent reads as NaN, not 0

  const nlohmann::json e = sample_eval(4).to_json();
  CHECK(e["trace"] == "traces/step-000004.safetensors");
  CHECK(e["eval"]["domains"][1]["loss_bits"].is_null());
  CHECK(e["eval"]["domains"][1]["n_tokens"] == 0);
  const EvalRecord eb = EvalRecord::from_json(e);
  CHECK_FALSE(eb.eval.domains.at(1).loss_bits.has_value());
  CHECK(eb.eval.domains.at(0).loss_bits == 3.0);
  CHECK(e["eval"].size() == 7);  // loss, floor, unigram, gap, gap_closed, n_tokens, domains

  const nlohmann::json r = sample_info().to_json();
  CHECK(r["format"] == "moetb-run/1");
  CHECK(RunInfo::from_json(r, "x").dataset == "/data/d");
  CHECK_THROWS_WITH(RunInfo::from_json({{"format", "moetb-run/2"}}, "R/run.json"), Catch::Contains("newer than this moetb"));
  CHECK_THROWS_WITH(RunInfo::from_json({{"format", "moetb-sweep/1"}}, "R/run.json"), Catch::Contains("not a moetb run"));
  CHECK_THROWS_WITH(RunInfo::from_json({{"x", 1}}, "R/run.json"), Catch::Contains("not a run.json"));
  CHECK_THROWS_WITH(FinalEval::from_json({{"x", 1}}, "R/eval.json"), Catch::Contains("not an eval.json written by moetb train"));
}

TEST_CASE("runs: the writer creates a marked run, appends, truncates; the reader reads it back", "[runs]") {
  TempDir tmp("runs-writer");
  const fs::path run = fs::path(tmp.path()) / "a" / "run";  // missing parents are made
  {
    RunWriter w = RunWriter::create(run, sample_info(), "# config\n", false);
    CHECK(fs::is_directory(run / "traces"));
    CHECK(ttu::read_bytes((run / "config.toml").string()) == "# config\n");
    for (int64_t s = 1; s <= 4; ++s) w.append_step(sample_step(s));
    w.append_eval(sample_eval(4));
    w.append_step(sample_step(5));
    w.truncate_log(4);
    FinalEval f;
    f.record = sample_eval(4);
    f.router = "topk";
    w.write_final_eval(f);
  }
  std::vector<std::string> notes;
  const auto info = read_run_info(run, &notes);
  REQUIRE(info);
  CHECK(info->format == "moetb-run/1");
  CHECK(notes.empty());
  const TrainLog log = read_train_log(run);
  CHECK(log.steps.size() == 4);
  CHECK(log.evals.size() == 1);
  CHECK_FALSE(log.torn_tail);
  const auto final_eval = read_final_eval(run);
  REQUIRE(final_eval);
  CHECK(final_eval->router == "topk");
  CHECK(metrics_summary(run)["rs"] == 0.5);
  CHECK(final_trace(run).empty());  // eval.json names a trace that is not there, and traces/ is empty
  ttu::write_bytes((run / "traces/step-000004.safetensors").string(), "x");
  CHECK(final_trace(run) == run / "traces/step-000004.safetensors");
  CHECK_FALSE(read_final_eval(fs::path(tmp.path()) / "nope").has_value());

  // Without --force an existing run is refused; with it, it is replaced.
  CHECK_THROWS_WITH(RunWriter::create(run, sample_info(), "", false), Catch::Contains("pass --force"));
  { RunWriter::create(run, sample_info(), "# new\n", true); }
  CHECK_FALSE(fs::exists(run / "train_log.jsonl"));
  CHECK(ttu::read_bytes((run / "config.toml").string()) == "# new\n");
  { RunWriter::resume(run).append_step(sample_step(1)); }
  CHECK(read_train_log(run).steps.size() == 1);
}

TEST_CASE("runs: --force never replaces a folder that is not a run, and resume needs a run", "[runs]") {
  TempDir tmp("runs-force");
  const fs::path home = fs::path(tmp.path()) / "home";
  fs::create_directories(home / "docs");
  ttu::write_bytes((home / "notes.txt").string(), "keep me");
  try {
    RunWriter::create(home, sample_info(), "", true);
    FAIL("no error");
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    CHECK(msg.find('\n') == std::string::npos);
    CHECK(ttu::contains(msg, "not a moetb run directory"));
  }
  CHECK(ttu::read_bytes((home / "notes.txt").string()) == "keep me");
  CHECK(fs::is_directory(home / "docs"));
  CHECK_THROWS_WITH(RunWriter::resume(home), Catch::Contains("needs a moetb run directory"));
  CHECK_THROWS_WITH(RunWriter::resume(fs::path(tmp.path()) / "missing"), Catch::Contains("needs an existing run directory"));
  // An empty folder is fine to start a run in.
  fs::create_directories(fs::path(tmp.path()) / "empty");
  { RunWriter::create(fs::path(tmp.path()) / "empty", sample_info(), "", false); }
  CHECK(fs::exists(fs::path(tmp.path()) / "empty" / "run.json"));
}

TEST_CASE("runs: a second writer of one run, in another process, is refused naming the holder", "[runs]") {
  TempDir tmp("runs-lock");
  const fs::path run = fs::path(tmp.path()) / "run";
  RunWriter w = RunWriter::create(run, sample_info(), "", false);
  int pipe_fd[2];
  REQUIRE(::pipe(pipe_fd) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    std::string msg = "no error";
    try {
      RunWriter::resume(run);
    } catch (const std::exception& e) {
      msg = e.what();
    }
    (void)!::write(pipe_fd[1], msg.data(), msg.size());
    ::_exit(0);
  }
  ::close(pipe_fd[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = ::read(pipe_fd[0], buf, sizeof buf)) > 0;) msg.append(buf, static_cast<std::size_t>(n));
  ::close(pipe_fd[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(ttu::contains(msg, "in use by process " + std::to_string(::getpid())));
  CHECK_THROWS_WITH(RunWriter::create(run, sample_info(), "", true), Catch::Contains("in use by process"));
}

TEST_CASE("runs: a torn last log line (a killed run) is skipped; a damaged earlier line is an error", "[runs]") {
  TempDir tmp("runs-torn");
  const fs::path run = fs::path(tmp.path());
  const std::string a = sample_step(1).to_json().dump(), b = sample_step(2).to_json().dump();
  ttu::write_bytes((run / "train_log.jsonl").string(), a + "\n" + b + "\n" + b.substr(0, b.size() / 2));
  TrainLog log = read_train_log(run);
  CHECK(log.steps.size() == 2);
  CHECK(log.torn_tail);
  ttu::write_bytes((run / "train_log.jsonl").string(), a + "\n" + b.substr(0, 10) + "\n" + b + "\n");
  CHECK_THROWS_WITH(read_train_log(run), Catch::Contains("line 2 is not a JSON object"));
  ttu::write_bytes((run / "train_log.jsonl").string(), a + "\n\n" + b + "\n\n");
  CHECK(read_train_log(run).steps.size() == 2);
  CHECK(read_train_log(fs::path(tmp.path()) / "none").steps.empty());
}

TEST_CASE("runs: a run from before the marker is read with a note", "[runs]") {
  TempDir tmp("runs-legacy");
  const fs::path run = fs::path(tmp.path());
  ttu::write_bytes((run / "run.json").string(), R"({"seed": 1, "git_revision": "x", "dataset": "/d", "config": {}})");
  std::vector<std::string> notes;
  const auto info = read_run_info(run, &notes);
  REQUIRE(info);
  CHECK(info->format.empty());
  REQUIRE(notes.size() == 1);
  CHECK(ttu::contains(notes[0], "no format marker"));
  ttu::write_bytes((run / "run.json").string(), "[1]");
  CHECK_THROWS_WITH(read_run_info(run), Catch::Contains("run.json: not a run.json"));
}

TEST_CASE("runs: resume refuses a changed data folder, model, router or seed, naming the key", "[runs]") {
  const RunInfo stored = sample_info();
  nlohmann::json now = stored.config;
  CHECK_NOTHROW(check_resume(stored, now));
  now["train"]["steps"] = 20;  // more steps and other threads may change
  now["train"]["threads"] = 2;
  now["eval"] = {{"every", 5}};  // a key the stored run lacks is skipped
  CHECK_NOTHROW(check_resume(stored, now));
  nlohmann::json data = now;
  data["data"]["dir"] = "/data/other";
  CHECK_THROWS_WITH(check_resume(stored, data), "data.dir cannot change on resume: was /data/d, now /data/other");
  data["data"]["dir"] = "/data/./d/";
  CHECK_NOTHROW(check_resume(stored, data));
  nlohmann::json model = now;
  model["model"]["d_model"] = 32;
  CHECK_THROWS_WITH(check_resume(stored, model), "model.d_model cannot change on resume: was 16, now 32");
  nlohmann::json router = now;
  router["router"]["name"] = "hash";
  CHECK_THROWS_WITH(check_resume(stored, router), "router.name cannot change on resume: was topk, now hash");
  nlohmann::json seed = now;
  seed["train"]["seed"] = 4;
  CHECK_THROWS_WITH(check_resume(stored, seed), "train.seed cannot change on resume: was 3, now 4");
}
