// The trainer's run directory and its guards (runs/, models/checkpoint.h, train_config.h):
// a damaged latest checkpoint (or a damaged `latest` pointer) falls back to the newest valid
// checkpoint and the resumed run still ends exactly as an uninterrupted one; a run whose only
// checkpoint is damaged fails naming it; --resume with --force is refused; settings that can
// only give NaN at step 1 are config errors naming the key; bounds before work refuse a run
// whose memory estimate exceeds the machine (with the estimate) and warn about more threads
// than cores, before any run directory exists.
#include "tests/torch/torch_catch.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "models/trainer.h"
#include "tests/torch/training_test_util.h"

using namespace moetb;
using namespace training_test;
namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

void overwrite(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary | std::ios::trunc) << text; }

}  // namespace

TEST_CASE("a damaged latest checkpoint falls back to the newest valid one, and the run ends as an uninterrupted one", "[training]") {
  ScratchDir dir;
  TrainConfig cfg = tiny_config(tiny_dataset(dir));
  cfg.checkpoint_every = 2;
  const fs::path whole = dir.path / "whole";
  train_model(cfg, quiet_options(whole));
  for (const char* damage : {"model", "latest"}) {
    const fs::path split = dir.path / (std::string("split-") + damage);
    TrainOptions first = quiet_options(split);
    first.stop_after = 4;  // checkpoints at steps 2 and 4
    REQUIRE_FALSE(train_model(cfg, first).finished);
    REQUIRE(fs::exists(split / "checkpoints" / "step-000002" / "model.pt"));
    if (std::string(damage) == "model") overwrite(split / "checkpoints" / "step-000004" / "model.pt", "not a torch archive");
    else overwrite(split / "checkpoints" / "latest", "garbage\n");
    TrainOptions rest = quiet_options(split);
    rest.resume = true;
    const TrainResult r = train_model(cfg, rest);
    REQUIRE(r.finished);
    const nlohmann::json a = read_json(whole / "eval.json"), b = read_json(split / "eval.json");
    CHECK(a["eval"] == b["eval"]);
    CHECK(a["metrics"] == b["metrics"]);
  }
}

TEST_CASE("a run whose only checkpoint is damaged fails naming it; --resume --force is refused", "[training]") {
  ScratchDir dir;
  TrainConfig cfg = tiny_config(tiny_dataset(dir));
  const fs::path run = dir.path / "run";
  TrainOptions first = quiet_options(run);
  first.stop_after = 2;
  train_model(cfg, first);
  overwrite(run / "checkpoints" / "step-000002" / "optimizer.pt", "x");
  TrainOptions rest = quiet_options(run);
  rest.resume = true;
  CHECK_THROWS_WITH(train_model(cfg, rest), Catch::Contains("step-000002: cannot load checkpoint"));
  rest.force = true;
  CHECK_THROWS_WITH(train_model(cfg, rest), Catch::Contains("--resume and --force cannot be combined"));
}

TEST_CASE("settings that can only give NaN at step 1 are config errors naming the key", "[training]") {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  TrainConfig good = tiny_config("data");
  CHECK_NOTHROW(validate_train_config(good));
  for (double v : {0.0, -1.0, nan, inf}) {
    TrainConfig c = good;
    c.rope_theta = v;
    CHECK_THROWS_WITH(validate_train_config(c), Catch::StartsWith("model.rope_theta:"));
  }
  for (double v : {0.0, nan, inf}) {
    TrainConfig c = good;
    c.lr = v;
    CHECK_THROWS_WITH(validate_train_config(c), Catch::StartsWith("train.lr:"));
  }
  TrainConfig c = good;
  c.weight_decay = inf;
  CHECK_THROWS_WITH(validate_train_config(c), Catch::StartsWith("train.weight_decay:"));
  c = good;
  c.n_layers = 100000;
  CHECK_THROWS_WITH(validate_train_config(c), Catch::StartsWith("model.n_layers:"));
}

TEST_CASE("bounds before work: a run that cannot fit is refused with an estimate, extra threads are warned about", "[training]") {
  TrainConfig c = tiny_config("data");
  TrainingMachine m;
  m.vocab_size = 64;
  m.seq_len = 16;
  m.train_sequences = 100;
  m.cores = 2;
  m.memory_bytes = 1024.0 * 1024 * 1024;  // 1 GiB
  CHECK(check_training_bounds(c, m).empty());
  const double small = training_memory_bytes(c, m.vocab_size, m.seq_len);
  c.micro_batch = 1000000;
  CHECK(training_memory_bytes(c, m.vocab_size, m.seq_len) > 1000 * small);
  try {
    check_training_bounds(c, m);
    FAIL("no error");
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    CHECK(msg.rfind("train.micro_batch: about ", 0) == 0);
    CHECK(msg.find("GiB") != std::string::npos);
    CHECK(msg.find("1.0 GiB") != std::string::npos);  // the machine's
  }
  c = tiny_config("data");
  c.threads = 8;
  const auto warnings = check_training_bounds(c, m);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].rfind("train.threads: 8 threads on 2 cores", 0) == 0);
  m.train_sequences = 0;
  CHECK_THROWS_WITH(check_training_bounds(c, m), Catch::StartsWith("data.dir:"));

  // Through the trainer: refused before the run directory exists.
  ScratchDir dir;
  TrainConfig big = tiny_config(tiny_dataset(dir));
  big.micro_batch = 100000000;
  CHECK_THROWS_WITH(train_model(big, quiet_options(dir.path / "run")), Catch::Contains("train.micro_batch: about "));
  CHECK_FALSE(fs::exists(dir.path / "run"));
}
