// The moetb binary (MOETB_BINARY) run as a user would: bad inputs exit non-zero with one
// stderr line naming the problem and leave no output or temp file; simulate never
// overwrites without --force; validate, metrics --json and --out produce what they promise.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <regex>

#include "oracle/planted_simulator.h"
#include "tests/core/cli_test_util.h"
#include "tests/core/trace_test_util.h"

using namespace moetb;
using ttu::TempDir;

namespace {

using ctu::Result;
using ctu::one_line;

struct Cli : ctu::Cli {
  // A planted trace in the working directory (2048 tokens, 2 layers).
  std::string trace(const std::string& name, uint64_t seed = 1) const {
    SimConfig cfg;
    cfg.n_tokens = 2048;
    cfg.n_layers = 2;
    cfg.seed = seed;
    SimOutput out;
    out.path = work.file(name);
    simulate_to_disk(cfg, out);
    return out.path;
  }
};

// The command failed with one stderr line containing `word`, and the working directory
// holds exactly `left` afterwards (no output file, no *.tmp-* file).
#define CHECK_FAILS_CLEANLY(cli, args, word, left)                     \
  do {                                                                 \
    const Result r_ = (cli).run(args);                                 \
    INFO("moetb " << (args) << "\nstderr: " << r_.err);                \
    CHECK(r_.rc != 0);                                                 \
    CHECK(r_.rc < 128);                                                \
    CHECK(one_line(r_.err));                                           \
    CHECK(ttu::contains(r_.err, "error"));                             \
    CHECK(ttu::contains(r_.err, word));                                \
    CHECK(r_.out.empty());                                             \
    CHECK((cli).work.entries() == std::vector<std::string>(left));     \
  } while (false)

using Names = std::vector<std::string>;

}  // namespace

TEST_CASE("cli: simulate writes a trace and reports on stderr", "[cli]") {
  Cli cli;
  const Result r = cli.run("simulate --tokens 2048 --layers 2 -o T.safetensors");
  CHECK(r.rc == 0);
  CHECK(one_line(r.err));
  CHECK(ttu::contains(r.err, "T.safetensors"));
  CHECK(cli.work.entries() == Names{"T.safetensors"});
  const Trace t({cli.work.file("T.safetensors")});
  CHECK(t.n_tokens() == 2048);
  CHECK(t.n_layers() == 2);
}

TEST_CASE("cli: metrics on a missing file", "[cli]") {
  Cli cli;
  CHECK_FAILS_CLEANLY(cli, "metrics missing.safetensors", "missing.safetensors", Names{});
  CHECK_FAILS_CLEANLY(cli, "metrics missing.safetensors -o out.json", "missing.safetensors", Names{});
  CHECK(ttu::contains(cli.run("metrics missing.safetensors").err, "moetb metrics: error: "));
}

TEST_CASE("cli: metrics on a corrupt trace", "[cli]") {
  Cli cli;
  ttu::write_bytes(cli.work.file("corrupt.safetensors"), ttu::u64_le(16) + "{\"oops\": trunc!!");
  CHECK_FAILS_CLEANLY(cli, "metrics corrupt.safetensors -o out.json", "corrupt.safetensors", Names{"corrupt.safetensors"});
  // A structurally fine file with an out-of-range expert id: found while streaming.
  ttu::RawFile f = ttu::valid_raw_trace("I32");
  const auto begin = f.header["layers.1.experts"]["data_offsets"][0].get<std::size_t>();
  const int32_t bad = 99;
  std::memcpy(&f.data[begin], &bad, 4);
  f.write(cli.work.file("bad-id.safetensors"));
  CHECK_FAILS_CLEANLY(cli, "metrics bad-id.safetensors --json -o out.json", "layers.1.experts",
                      (Names{"bad-id.safetensors", "corrupt.safetensors"}));
  CHECK_FAILS_CLEANLY(cli, "paths bad-id.safetensors -o out.json", "99",
                      (Names{"bad-id.safetensors", "corrupt.safetensors"}));
}

TEST_CASE("cli: simulate rejects bad settings and writes nothing", "[cli]") {
  Cli cli;
  const std::string base = "simulate --tokens 2048 --layers 2 -o X.safetensors ";
  CHECK_FAILS_CLEANLY(cli, base + "--alpha 2", "alpha", Names{});
  CHECK_FAILS_CLEANLY(cli, base + "--alpha 0.5,0.5,0.5", "alpha", Names{});
  CHECK_FAILS_CLEANLY(cli, base + "--top-k 0", "top-k", Names{});
  CHECK_FAILS_CLEANLY(cli, base + "--shares 1,1", "shares", Names{});
  CHECK_FAILS_CLEANLY(cli, base + "--domains 4 --shares 1,1", "4 domains", Names{});
  CHECK_FAILS_CLEANLY(cli, base + "--load-profile foo", "foo", Names{});
  CHECK_FAILS_CLEANLY(cli, base + "--weights F64", "--weights", Names{});
  CHECK_FAILS_CLEANLY(cli, base + "--expert-dtype I8", "--expert-dtype", Names{});
  CHECK_FAILS_CLEANLY(cli, base + "--experts 40000", "I16", Names{});
  CHECK_FAILS_CLEANLY(cli, "simulate --tokens 2048 --layers 2 --shard-tokens 500 --beta 3 -o shards", "beta", Names{});
}

TEST_CASE("cli: metrics rejects bad layer and reference options", "[cli]") {
  Cli cli;
  cli.trace("T.safetensors");
  const Names left{"T.safetensors"};
  CHECK_FAILS_CLEANLY(cli, "metrics T.safetensors -o out.json --layers 9-2", "9-2", left);
  CHECK_FAILS_CLEANLY(cli, "metrics T.safetensors -o out.json --layers 99", "99", left);
  CHECK_FAILS_CLEANLY(cli, "metrics T.safetensors -o out.json --layers 1,x", "--layers", left);
  CHECK_FAILS_CLEANLY(cli, "metrics T.safetensors -o out.json --reference '[[999]]'", "999", left);
  CHECK_FAILS_CLEANLY(cli, "metrics T.safetensors -o out.json --reference '[1, 2]'", "--reference", left);
  CHECK_FAILS_CLEANLY(cli, "metrics T.safetensors -o out.json --reference no-such-file.json", "no-such-file.json", left);
  CHECK_FAILS_CLEANLY(cli, "metrics T.safetensors -o out.json --groups -1", "groups", left);
}

TEST_CASE("cli: paths rejects tau outside (0, 1]", "[cli]") {
  Cli cli;
  cli.trace("T.safetensors");
  CHECK_FAILS_CLEANLY(cli, "paths T.safetensors --tau 0 -o out.json", "tau", Names{"T.safetensors"});
  CHECK_FAILS_CLEANLY(cli, "paths T.safetensors --tau 1.5 -o out.json", "tau", Names{"T.safetensors"});
  const Result ok = cli.run("paths T.safetensors --tau 1 -o out.json");
  CHECK(ok.rc == 0);
  CHECK_NOTHROW(nlohmann::json::parse(ttu::read_bytes(cli.work.file("out.json"))));
}

TEST_CASE("cli: compare rejects traces of different tokens", "[cli]") {
  Cli cli;
  cli.trace("A.safetensors", 1);
  cli.trace("B.safetensors", 2);
  CHECK_FAILS_CLEANLY(cli, "compare A.safetensors B.safetensors -o out.json", "token",
                      (Names{"A.safetensors", "B.safetensors"}));
  CHECK_FAILS_CLEANLY(cli, "compare A.safetensors missing.safetensors", "missing.safetensors",
                      (Names{"A.safetensors", "B.safetensors"}));
  // Control: a trace against itself compares, with full saturation.
  const Result same = cli.run("compare A.safetensors A.safetensors --json");
  REQUIRE(same.rc == 0);
  const auto j = nlohmann::json::parse(same.out);
  REQUIRE(j["saturation"].size() == 2);
  for (const auto& s : j["saturation"]) CHECK(s.get<double>() == Approx(1.0));
}

TEST_CASE("cli: simulate refuses to overwrite without --force", "[cli]") {
  Cli cli;
  ttu::write_bytes(cli.work.file("X.safetensors"), "old contents");
  CHECK_FAILS_CLEANLY(cli, "simulate --tokens 2048 --layers 2 -o X.safetensors", "exists", Names{"X.safetensors"});
  CHECK(ttu::read_bytes(cli.work.file("X.safetensors")) == "old contents");
  ttu::fs::create_directory(cli.work.file("dir"));
  ttu::write_bytes(cli.work.file("dir/keep"), "k");
  CHECK_FAILS_CLEANLY(cli, "simulate --tokens 2048 --layers 2 --shard-tokens 1000 -o dir", "exists",
                      (Names{"X.safetensors", "dir"}));
  CHECK(ttu::read_bytes(cli.work.file("dir/keep")) == "k");

  const Result forced = cli.run("simulate --tokens 2048 --layers 2 -o X.safetensors --force");
  CHECK(forced.rc == 0);
  CHECK(cli.work.entries() == (Names{"X.safetensors", "dir"}));
  CHECK(Trace({cli.work.file("X.safetensors")}).n_tokens() == 2048);
}

TEST_CASE("cli: validate passes every check", "[cli]") {
  Cli cli;
  const Result r = cli.run("validate");
  CHECK(r.rc == 0);
  std::smatch m;
  REQUIRE(std::regex_search(r.out, m, std::regex("\\n(\\d+) passed, 0 failed\\n")));
  CHECK(std::stoi(m[1].str()) > 0);
  CHECK(cli.work.entries().empty());
}

TEST_CASE("cli: metrics --json is the moetb-metrics/1 document", "[cli]") {
  Cli cli;
  const std::string path = cli.trace("T.safetensors");
  const Result r = cli.run("metrics T.safetensors --json");
  REQUIRE(r.rc == 0);
  CHECK(r.err.empty());
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"format", "trace", "summary", "layers", "per_domain"}) CHECK(j.contains(key));
  CHECK(j["format"] == "moetb-metrics/1");
  CHECK(j["trace"]["tokens"] == 2048);
  CHECK(j["layers"].size() == 2);
  // The same numbers the library computes.
  CHECK(j == ttu::metrics_json(Trace({path})));
  // --layers selects.
  const auto one = nlohmann::json::parse(cli.run("metrics T.safetensors --json --layers 1").out);
  REQUIRE(one["layers"].size() == 1);
  CHECK(one["layers"][0]["layer"] == 1);
}

TEST_CASE("cli: metrics --out writes the file, not stdout", "[cli]") {
  Cli cli;
  cli.trace("T.safetensors");
  const Result table = cli.run("metrics T.safetensors --out table.txt");
  CHECK(table.rc == 0);
  CHECK(table.out.empty());
  const std::string text = ttu::read_bytes(cli.work.file("table.txt"));
  CHECK(text.size() > 100);
  CHECK(text == cli.run("metrics T.safetensors").out);
  const Result json = cli.run("metrics T.safetensors --json --out m.json");
  CHECK(json.rc == 0);
  CHECK(nlohmann::json::parse(ttu::read_bytes(cli.work.file("m.json")))["format"] == "moetb-metrics/1");
  CHECK(cli.work.entries() == (Names{"T.safetensors", "m.json", "table.txt"}));
}

// main.cpp promises "every failure ends as one line on stderr ... and exit code 1"; that
// includes CLI11's own parse errors (unknown option, missing required option, bad number).
TEST_CASE("cli: argument parse errors are one line with exit code 1", "[cli]") {
  Cli cli;
  for (const std::string args : {"metrics T.safetensors --bogus", "simulate --tokens 10", "simulate --top-k abc -o X"}) {
    const Result r = cli.run(args);
    INFO("moetb " << args << "\nrc " << r.rc << "\nstderr: " << r.err);
    CHECK(r.rc != 0);
    CHECK(r.rc == 1);
    CHECK(one_line(r.err));
    CHECK(cli.work.entries().empty());
  }
}
