// `moetb compare` of runs: a run directory stands for its latest evaluation trace (compare,
// metrics); two groups of runs (--a/--b, one run per seed) are paired by seed and a metric
// "differs" only when its paired 95% t interval excludes zero (planted traces of weak and strong
// specialization: RS differs in every seed; a validation loss that moves both ways: within seed
// variation); one pair says its verdicts reflect only token-sampling noise; errors are one line.
#include <catch2/catch.hpp>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "oracle/planted_simulator.h"
#include "tests/core/cli_test_util.h"
#include "tests/core/trace_test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A run directory holding an eval.json (seed, loss) and its trace: a planted model of specialization alpha.
void make_run(const ctu::Cli& cli, const std::string& name, double alpha, uint64_t seed, double loss) {
  fs::create_directories(cli.work.file(name + "/traces"));
  moetb::SimConfig c;
  c.n_tokens = 4096;
  c.n_layers = 2;
  c.n_experts = 16;
  c.top_k = 2;
  c.alpha = {alpha};
  c.vocab_per_domain = 128;
  c.seed = seed;
  moetb::SimOutput out;
  out.path = cli.work.file(name + "/traces/step-000010.safetensors");
  moetb::simulate_to_disk(c, out);
  const json eval = {{"trace", "traces/step-000010.safetensors"}, {"seed", seed}, {"step", 10}, {"eval", {{"loss_bits", loss}}}};
  ttu::write_bytes(cli.work.file(name + "/eval.json"), eval.dump());
}

}  // namespace

TEST_CASE("cli: compare groups of runs paired by seed; one pair says it reflects token noise only", "[cli]") {
  ctu::Cli cli("cmp-runs");
  const double loss_a[] = {3.0, 3.1, 2.9}, loss_b[] = {3.05, 2.95, 3.0};
  for (int s = 1; s <= 3; ++s) {
    make_run(cli, "weak" + std::to_string(s), 0.3, static_cast<uint64_t>(s), loss_a[s - 1]);
    make_run(cli, "strong" + std::to_string(s), 0.9, static_cast<uint64_t>(s), loss_b[s - 1]);
  }
  // Seeds pair the runs whatever the order given.
  const ctu::Result r = cli.run("compare --a weak1 weak2 weak3 --b strong3 strong1 strong2 --json");
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const json j = json::parse(r.out);
  CHECK(j["format"] == "moetb-compare-runs/1");
  CHECK(j["pairing"] == "seed");
  REQUIRE(j["pairs"].size() == 3);
  CHECK(j["pairs"][0]["a"] == "weak1");
  CHECK(j["pairs"][0]["b"] == "strong1");
  const auto& rs = j["summary"]["rs"];
  CHECK(rs["verdict"] == "differs");
  CHECK(rs["n"] == 3);
  CHECK(rs["agree"] == 3);
  CHECK(rs["lo"].get<double>() > 0);
  // val_bits: B - A = {+0.05, -0.15, +0.1}: mean 0, an interval around zero.
  const auto& loss = j["summary"]["val_bits"];
  CHECK(loss["verdict"] == "within seed variation");
  CHECK(loss["delta"].get<double>() == Approx(0.0).margin(1e-12));
  CHECK(loss["a_mean"].get<double>() == Approx(3.0));
  CHECK(loss["ci95"].get<double>() == Approx(4.3026527 * std::sqrt(0.0175) / std::sqrt(3.0)).epsilon(1e-6));
  CHECK(std::find(j["differs"].begin(), j["differs"].end(), "rs") != j["differs"].end());

  const ctu::Result table = cli.run("compare --a weak1 weak2 weak3 --b strong1 strong2 strong3");
  REQUIRE(table.rc == 0);
  CHECK(ttu::contains(table.out, "3 pair(s) of runs, paired by seed:"));
  CHECK(ttu::contains(table.out, "within seed variation"));
  CHECK(ttu::contains(table.out, "differ beyond the variation between seeds"));

  // A seed on one side only is left out, and said.
  const ctu::Result partial = cli.run("compare --a weak1 weak2 --b strong2 strong3 --json");
  REQUIRE(partial.rc == 0);
  const json p = json::parse(partial.out);
  CHECK(p["pairs"].size() == 1);
  CHECK(p["unpaired"].size() == 2);
  CHECK(p["summary"]["rs"]["verdict"].is_null());  // one pair: no interval

  // One run per side: the trace comparison, with the plain note on what its verdicts mean.
  const ctu::Result one = cli.run("compare weak1 strong1");
  INFO(one.err);
  REQUIRE(one.rc == 0);
  CHECK(ttu::contains(one.out, "token-sampling noise of this one pair of traces"));
  CHECK(ttu::contains(one.out, "not whether it exceeds the variation between training seeds"));
  // metrics and report take a run directory too.
  const ctu::Result m = cli.run("metrics weak1 --json");
  INFO(m.err);
  REQUIRE(m.rc == 0);
  CHECK(json::parse(m.out)["summary"].contains("rs"));

  // Errors: one line, exit 1.
  fs::create_directories(cli.work.file("empty-run"));
  ttu::write_bytes(cli.work.file("empty-run/run.json"), "{}");
  for (const std::string args : {"compare weak1 empty-run", "compare --a weak1 weak2", "compare weak1 --a weak2 --b strong2",
                                 "compare --a weak1 weak1 --b strong1 strong2 strong3", "compare --a weak1 weak2 --b strong1 strong1 strong1", "compare --a weak1 --b strong2 strong3"}) {
    INFO(args);
    const ctu::Result bad = cli.run(args);
    CHECK(bad.rc != 0);
    CHECK(ctu::one_line(bad.err));
  }
  CHECK(ttu::contains(cli.run("compare weak1 empty-run").err, "empty-run: a run directory without a routing trace"));
}
