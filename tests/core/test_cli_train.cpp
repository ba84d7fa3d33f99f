// `moetb train` and `moetb routers` through the torch-free moetb binary, which execs
// moetb-torch: a tiny end-to-end run writes its run directory and `moetb runs` reads it;
// bad inputs fail with one line and leave no run directory. Without the LibTorch part
// (the sanitize build) the commands say so in one line.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/core/cli_test_util.h"
#include "tests/core/trace_test_util.h"

namespace fs = std::filesystem;
using ttu::TempDir;

namespace {

using Run = ctu::Result;
using ctu::one_line;

Run run_moetb(const ctu::Cli& cli, const std::string& args) { return cli.run(args); }

bool has_torch_part() { return fs::exists(fs::path(MOETB_BINARY).parent_path() / "moetb-torch"); }

}  // namespace

TEST_CASE("cli: train and routers without the LibTorch part say so", "[cli]") {
  if (has_torch_part()) return;  // covered by the cases below
  ctu::Cli cli("cli-train");
  for (const char* args : {"train --out r --data d", "routers"}) {
    const Run r = run_moetb(cli, args);
    CHECK(r.rc == 1);
    CHECK(one_line(r.err));
    CHECK(ttu::contains(r.err, "MOETB_TORCH"));
  }
}

TEST_CASE("cli: a tiny moetb train run end to end, then moetb runs", "[cli]") {
  if (!has_torch_part()) return;
  ctu::Cli cli("cli-train");
  const ttu::TempDir& work = cli.work;
  REQUIRE(run_moetb(cli, "datagen --out data --domains 2 --vocab-per-domain 16 --seq-len 16 --train-tokens 2048 "
                      "--val-tokens 256 --doc-len-mean 40").rc == 0);
  const std::string tiny = "--set model.d_model=16 --set model.n_heads=2 --set moe.n_experts=4 --set moe.d_ff=16 "
                           "--set train.micro_batch=4 --set eval.every=2 --set eval.sequences=4 -q";
  const Run r = run_moetb(cli, "train --data data --out run --router oracle --steps 2 " + tiny);
  INFO(r.err);
  REQUIRE(r.rc == 0);
  for (const char* f : {"run/eval.json", "run/config.toml", "run/run.json", "run/train_log.jsonl", "run/traces/step-000002.safetensors"})
    CHECK(fs::exists(work.file(f)));
  const Run table = run_moetb(cli, "runs run");
  CHECK(table.rc == 0);
  CHECK(ttu::contains(table.out, "oracle"));
  // A second run: `runs` labels them by what differs, router names whole; compare and metrics take run directories.
  const Run r2 = run_moetb(cli, "train --data data --out sub/dir/run2 --router expert_choice --seed 2 --steps 2 " + tiny);
  INFO(r2.err);
  REQUIRE(r2.rc == 0);
  const Run both = run_moetb(cli, "runs run sub/dir/run2");
  CHECK(both.rc == 0);
  CHECK(ttu::contains(both.out, "router=oracle seed=1"));
  CHECK(ttu::contains(both.out, "router=expert_choice seed=2 expert_choice"));
  const Run cmp = run_moetb(cli, "compare run sub/dir/run2");
  INFO(cmp.err);
  CHECK(cmp.rc == 0);
  CHECK(ttu::contains(cmp.out, "token-sampling noise"));
  CHECK(run_moetb(cli, "metrics sub/dir/run2 -o out/nested/m.txt").rc == 0);  // missing parent folders are created
  CHECK(fs::exists(work.file("out/nested/m.txt")));
  const Run help = run_moetb(cli, "train --help");
  for (const char* name : {"topk", "oracle", "hash", "random", "expert_choice", "sinkhorn"}) CHECK(ttu::contains(help.out, name));
  // The trace is measured by the ordinary metrics command.
  CHECK(run_moetb(cli, "metrics run/traces/step-000002.safetensors --json").rc == 0);
  const Run listing = run_moetb(cli, "routers");
  CHECK(listing.rc == 0);
  for (const char* name : {"topk", "oracle", "hash", "random", "expert_choice", "sinkhorn", "balanced"}) CHECK(ttu::contains(listing.out, name));
  for (const char* scope : {"balancing scopes", "router.bias_scope", "router.assign_scope", "global_batch"})
    CHECK(ttu::contains(listing.out, scope));
}

TEST_CASE("cli: bad train inputs fail in one line and leave no run directory", "[cli]") {
  if (!has_torch_part()) return;
  ctu::Cli cli("cli-train");
  const ttu::TempDir& work = cli.work;
  ttu::write_bytes(work.file("bad.toml"), "[train]\nstepz = 3\n");
  const std::pair<const char*, const char*> cases[] = {
      {"train --data nowhere --out run", "nowhere"},
      {"train --config bad.toml --data nowhere --out run", "train.stepz"},
      {"train --data nowhere --out run --set moe.top_k=0", "moe.top_k"},
      {"train --data nowhere --out run --router nope", "nope"},
      {"train --out run --resume", "run"},
  };
  for (const auto& [args, word] : cases) {
    const Run r = run_moetb(cli, args);
    INFO(args << "\n" << r.err);
    CHECK(r.rc == 1);
    CHECK(one_line(r.err));
    CHECK(ttu::contains(r.err, "moetb train: error: "));
    CHECK(ttu::contains(r.err, word));
    CHECK_FALSE(fs::exists(work.file("run")));
  }
}

TEST_CASE("cli: a checkpoint that cannot be written fails in one line and keeps the last good one", "[cli]") {
  if (!has_torch_part()) return;
  ctu::Cli cli("cli-ckpt");
  const ttu::TempDir& work = cli.work;
  REQUIRE(run_moetb(cli, "datagen --out data --domains 2 --vocab-per-domain 16 --seq-len 16 --train-tokens 2048 "
                      "--val-tokens 256 --doc-len-mean 40").rc == 0);
  // model.pt of this model is ~0.5 MB: over the 256 kB file-size limit below; logs and traces are not.
  const std::string model = "--data data --out run --router oracle --set model.d_model=64 --set model.n_heads=2 "
                            "--set moe.n_experts=4 --set moe.d_ff=128 --set train.micro_batch=4 --set eval.every=2 "
                            "--set eval.sequences=4 -q ";
  REQUIRE(run_moetb(cli, "train --steps 2 " + model).rc == 0);
  const std::string out = cli.io.file("stdout"), err = cli.io.file("stderr");
  const std::string cmd = "cd '" + work.path() + "' && ulimit -f 256 && trap '' XFSZ && '" + MOETB_BINARY + "' train --steps 4 --resume " +
                          model + ">'" + out + "' 2>'" + err + "'";
  const int status = std::system(cmd.c_str());
  const std::string text = ttu::read_bytes(err);
  INFO(text);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);  // not 134 (std::terminate on a c10::Error)
  CHECK(one_line(text));
  CHECK(ttu::contains(text, "write failed: run/checkpoints/step-000004: file too large"));
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(work.file("run/checkpoints"))) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  CHECK(left == (std::vector<std::string>{"latest", "step-000002"}));
  CHECK(ttu::read_bytes(work.file("run/checkpoints/latest")) == "step-000002\n");
}
