// `moetb sweep plan` checks each planned run's training config as `moetb train` reads it
// (sweeps/train_check.h): a misspelt key, a bad enum name, a bad number or a bad combination
// is refused with one line naming the spec, where the key is set and the key, and nothing is
// written; every example spec (sweeps/examples/) and every demo spec still plans.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "demos/demos.h"
#include "sweeps/sweep_dir.h"
#include "sweeps/sweep_spec.h"
#include "sweeps/train_check.h"
#include "tests/core/cli_test_util.h"
#include "tests/core/trace_test_util.h"

using namespace moetb::sweeps;
namespace fs = std::filesystem;

namespace {

const std::string kHead = "[sweep]\nname = \"t\"\nseeds = [1, 2]\n[base]\ndata.dir = \"data\"\ntrain.steps = 10\n";

// The error of planning `text` (written as DIR/spec.toml) into DIR/sw, or "no error".
std::string plan_error(const ttu::TempDir& tmp, const std::string& text) {
  const std::string spec = tmp.file("spec.toml");
  std::ofstream(spec) << text;
  try {
    SweepDir(tmp.file("sw")).plan(spec);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("sweep plan: training keys are checked as moetb train checks them, before anything is written", "[sweeps]") {
  ttu::TempDir tmp("sweep-train-check");
  const std::string spec = tmp.file("spec.toml");
  struct Case {
    std::string body, expect;
  };
  const std::vector<Case> cases = {
      // A misspelt key in [base] and in an axis (eval.every is the key).
      {"train.eval_every = 5\n", spec + " [base]: unknown key 'train.eval_every'"},
      {"[[axes]]\nrouter.name = [\"topk\"]\n[[axes]]\ntrain.eval_every = [5, 10]\n", spec + " axes[1]: unknown key 'train.eval_every'"},
      // A bad enum name, a wrong type, an unknown router.
      {"[[axes]]\nrouter.balance_scope = [\"micro_batch\", \"micro\"]\n",
       spec + " axes[0]: key 'router.balance_scope': 'micro' is not one of: sequence, micro_batch, global_batch"},
      {"[[axes]]\nmodel.d_model = [\"wide\"]\n", "key 'model.d_model': expected an integer, got a string"},
      {"[[axes]]\nrouter.name = [\"topk\", \"topq\"]\n", "router.name: unknown router 'topq' (known: topk, oracle, hash"},
      // A bad number in [base] is reported at [base]; on an axis, at the run with its values.
      {"train.lr = -1\n", spec + " [base]: train.lr: must be finite and > 0"},
      {"[[axes]]\ntrain.lr = [0.01, -1.0]\n", ": run "},
      {"[[axes]]\ntrain.lr = [0.01, -1.0]\n", " (train.lr = -1.0, train.seed = 1): train.lr: must be finite and > 0"},
      // A combination: global_batch assignment needs accum_steps = 1.
      {"train.accum_steps = 4\n[[axes]]\nrouter.name = [\"sinkhorn\"]\nrouter.assign_scope = [\"micro_batch\", \"global_batch\"]\n",
       "router.assign_scope = global_batch, train.seed = 1): router.assign_scope: global_batch needs train.accum_steps = 1"},
  };
  for (const Case& c : cases) {
    INFO(c.body);
    const std::string e = plan_error(tmp, kHead + c.body);
    INFO(e);
    CHECK(ttu::contains(e, c.expect));
    CHECK(e.find('\n') == std::string::npos);
    CHECK_FALSE(fs::exists(tmp.file("sw")));  // nothing written
  }
  // A seed key moetb train does not know.
  CHECK(ttu::contains(plan_error(tmp, "[sweep]\nseeds = [1]\nseed_key = \"train.sed\"\n[base]\ndata.dir = \"d\"\n"),
                      spec + " sweep.seed_key: unknown key 'train.sed'"));
  // With a [datagen] table the runs get --data at run time: no data.dir needed.
  CHECK(plan_error(tmp, "[sweep]\nseeds = [1]\n[datagen]\n[base]\ntrain.steps = 3\n") == "no error");
  CHECK(fs::exists(tmp.file("sw/sweep.json")));
}

TEST_CASE("sweep plan: check_train_keys = false leaves the keys to a stand-in trainer", "[sweeps]") {
  ttu::TempDir tmp("sweep-train-check-off");
  const std::string body = "[[axes]]\nfake.loss = [2.0, 3.0]\n";
  CHECK(ttu::contains(plan_error(tmp, kHead + body), "axes[0]: unknown key 'fake'"));
  std::string off = kHead;
  off.insert(off.find("[base]"), "check_train_keys = false\n");
  CHECK(plan_error(tmp, off + body) == "no error");
  CHECK(SweepDir(tmp.file("sw")).load().runs.size() == 4);
  std::string bad = kHead;
  bad.insert(bad.find("[base]"), "check_train_keys = \"no\"\n");
  CHECK(ttu::contains(plan_error(tmp, bad), "sweep.check_train_keys: expected true or false"));
}

TEST_CASE("sweep plan: every example spec and every demo spec passes the training-key check", "[sweeps]") {
  ttu::TempDir tmp("sweep-train-check-examples");
  std::size_t examples = 0;
  for (const auto& e : fs::directory_iterator(fs::path(MOETB_SOURCE_DIR) / "sweeps" / "examples")) {
    if (e.path().extension() != ".toml") continue;
    INFO(e.path().string());
    // Planned from a copy: a relative data.dir resolves next to the copy, and plan does not read the data.
    const std::string copy = tmp.file(e.path().filename().string());
    fs::copy_file(e.path(), copy);
    const SweepDir dir(tmp.file("out-" + e.path().stem().string()));
    CHECK_NOTHROW(dir.plan(copy));
    CHECK(dir.load().runs.size() > 1);
    ++examples;
  }
  CHECK(examples >= 2);
  for (const auto& d : moetb::demos::demo_catalogue()) {
    INFO(d.name);
    const SweepSpec spec = parse_spec(d.spec, "demo " + d.name);
    CHECK(spec.check_train_keys);
    CHECK_NOTHROW(check_train_configs(spec, expand(spec), "demo " + d.name));
  }
}

TEST_CASE("sweep plan: the CLI refuses a bad training key with one line, exit 1 and no sweep folder", "[sweeps]") {
  ctu::Cli cli("sweep-train-check-cli");
  std::ofstream(cli.work.file("spec.toml")) << kHead << "[[axes]]\nrouter.name = [\"topk\", \"topq\"]\n";
  const ctu::Result r = cli.run("sweep plan spec.toml --out sw");
  INFO(r.err);
  CHECK(r.rc == 1);
  CHECK(ctu::one_line(r.err));
  CHECK(ttu::contains(r.err, "spec.toml: run "));
  CHECK(ttu::contains(r.err, "router.name: unknown router 'topq'"));
  CHECK_FALSE(fs::exists(cli.work.file("sw")));
}
