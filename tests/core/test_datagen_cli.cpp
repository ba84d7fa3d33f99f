// `moetb datagen` run as a user would (MOETB_BINARY): it writes a dataset with manifest.json
// and a config.toml that regenerates the same bytes; --stats prints a table naming every
// domain and --json parses; bad inputs exit non-zero with one stderr line and leave no
// dataset and no hidden temporary directory; an existing --out survives without --force.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "tests/core/cli_test_util.h"
#include "tests/core/trace_test_util.h"

using ttu::TempDir;
namespace fs = std::filesystem;

namespace {

using ctu::Result;
using ctu::one_line;
struct Cli : ctu::Cli {
  Cli() : ctu::Cli("dgcli") {}
};

std::map<std::string, std::string> all_files(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).generic_string()] = ttu::read_bytes(e.path().string());
  return out;
}

using Names = std::vector<std::string>;

// Failed with one stderr line holding "error" and `word`, printed nothing on stdout, and
// the working directory holds exactly `left` (entries() lists hidden .NAME.tmp-* too).
#define CHECK_DATAGEN_FAILS(cli, args, word, left)                   \
  do {                                                               \
    const Result r_ = (cli).run(args);                               \
    INFO("moetb " << (args) << "\nstderr: " << r_.err);              \
    CHECK(r_.rc != 0);                                               \
    CHECK(r_.rc < 128);                                              \
    CHECK(one_line(r_.err));                                         \
    CHECK(ttu::contains(r_.err, "moetb datagen: error: "));          \
    CHECK(ttu::contains(r_.err, word));                              \
    CHECK(r_.out.empty());                                           \
    CHECK((cli).work.entries() == Names(left));                      \
  } while (false)

const std::string kSmall = "--train-tokens 20000 --val-tokens 4096";

}  // namespace

TEST_CASE("datagen cli: writes a dataset, its stats, and a config that regenerates it", "[datagen]") {
  Cli cli;
  const Result r = cli.run("datagen --out D " + kSmall + " --domain-names code,math,law,web");
  INFO("stderr: " << r.err);
  REQUIRE(r.rc == 0);
  CHECK(r.out.empty());
  CHECK(ttu::contains(r.err, "wrote D"));
  CHECK(cli.work.entries() == Names{"D"});
  const auto files = all_files(cli.work.file("D"));
  CHECK(files.count("manifest.json") == 1);
  CHECK(files.count("config.toml") == 1);
  CHECK(files.count("train/shard-00000.tokens") == 1);
  const auto m = nlohmann::json::parse(files.at("manifest.json"));
  CHECK(m["format"] == "moetb-dataset/1");
  CHECK(m["splits"]["train"]["n_tokens"] == 157 * 128);  // 20000 rounded up to whole sequences of 128
  CHECK(m["splits"]["val"]["n_tokens"] == 4096);
  CHECK(m["config"]["train_tokens"] == 20000);
  CHECK(m["domains"].size() == 4);

  const Result table = cli.run("datagen --stats D");
  REQUIRE(table.rc == 0);
  for (const char* name : {"code", "math", "law", "web"}) CHECK(ttu::contains(table.out, name));
  CHECK(ttu::contains(table.out, "separability"));
  const Result json = cli.run("datagen --stats D --json");
  REQUIRE(json.rc == 0);
  const auto j = nlohmann::json::parse(json.out);
  REQUIRE(j["domains"].size() == 4);
  CHECK(j["domains"][3]["name"] == "web");
  int64_t train = 0;
  for (const auto& d : j["domains"]) train += d["tokens"]["train"].get<int64_t>();
  CHECK(train == 157 * 128);

  // The written config.toml is a complete config: it regenerates the very same bytes.
  const Result again = cli.run("datagen --config D/config.toml --out E/");  // a trailing slash names E
  INFO("stderr: " << again.err);
  REQUIRE(again.rc == 0);
  CHECK(cli.work.entries() == (Names{"D", "E"}));
  CHECK(all_files(cli.work.file("E")) == files);
  // A flag after the config changes the data (control for the comparison above).
  REQUIRE(cli.run("datagen --config D/config.toml --seed 7 --out F").rc == 0);
  CHECK(all_files(cli.work.file("F")).at("train/shard-00000.tokens") != files.at("train/shard-00000.tokens"));
}

TEST_CASE("datagen cli: bad settings fail cleanly and write nothing", "[datagen]") {
  Cli cli;
  ttu::write_bytes(cli.work.file("bad.toml"), "seed = 3\nbogus_key = 1\n");
  fs::create_directory(cli.work.file("empty"));
  fs::create_directory(cli.work.file("tiny"));
  for (int i = 0; i < 12; ++i) ttu::write_bytes(cli.work.file("tiny/f" + std::to_string(i)), "abc");
  const Names left{"bad.toml", "empty", "tiny"};
  const std::string out = "datagen --out D " + kSmall + " ";
  CHECK_DATAGEN_FAILS(cli, out + "--shares 0,0,0,0", "shares", left);
  CHECK_DATAGEN_FAILS(cli, out + "--shares 1,1", "shares", left);
  CHECK_DATAGEN_FAILS(cli, out + "--config bad.toml", "bogus_key", left);
  CHECK(ttu::contains(cli.run(out + "--config bad.toml").err, "bad.toml"));
  CHECK_DATAGEN_FAILS(cli, out + "--config missing.toml", "missing.toml", left);
  CHECK_DATAGEN_FAILS(cli, out + "--vocab-per-domain 40000", "token_dtype", left);
  CHECK_DATAGEN_FAILS(cli, out + "--seq-len abc", "seq_len", left);
  CHECK_DATAGEN_FAILS(cli, out + "--set no_such_key=1", "no_such_key", left);
  CHECK_DATAGEN_FAILS(cli, out + "--packing loose", "packing", left);
  CHECK_DATAGEN_FAILS(cli, out + "--domain x=/nonexistent", "text_domains.x", left);
  CHECK(ttu::contains(cli.run(out + "--domain x=/nonexistent").err, "/nonexistent"));
  CHECK_DATAGEN_FAILS(cli, out + "--domain x=empty", "text_domains.x", left);
  CHECK_DATAGEN_FAILS(cli, out + "--domain x", "NAME=DIR", left);
  CHECK_DATAGEN_FAILS(cli, "datagen " + kSmall, "--out", left);
  // Missing parent folders are created only once the settings are valid: a bad one leaves none.
  CHECK_DATAGEN_FAILS(cli, "datagen --out no/such/parent/D --shares 1,1 " + kSmall, "shares", left);
  CHECK_DATAGEN_FAILS(cli, "datagen --stats empty", "manifest.json", left);
  // Fails only while writing (after the temporary directory exists): a few 3-byte files per
  // split cannot fill one sequence of 128. Nothing may be left behind, hidden or not.
  CHECK_DATAGEN_FAILS(cli, out + "--domain t=tiny --val-fraction 0.5", "seq_len", left);
}

TEST_CASE("datagen cli: --out creates missing parent folders (datagen --out data/default on a fresh clone)", "[datagen]") {
  Cli cli;
  const Result r = cli.run("datagen --out data/default " + kSmall);
  INFO("stderr: " << r.err);
  REQUIRE(r.rc == 0);
  CHECK(fs::exists(cli.work.file("data/default/manifest.json")));
}

TEST_CASE("datagen cli: an existing --out survives without --force", "[datagen]") {
  Cli cli;
  fs::create_directory(cli.work.file("D"));
  ttu::write_bytes(cli.work.file("D/keep"), "precious");
  CHECK_DATAGEN_FAILS(cli, "datagen --out D " + kSmall, "exists", Names{"D"});
  CHECK_DATAGEN_FAILS(cli, "datagen --out D/ " + kSmall, "exists", Names{"D"});
  CHECK(all_files(cli.work.file("D")) == (std::map<std::string, std::string>{{"keep", "precious"}}));
  // A failure with --force keeps the old directory too.
  CHECK_DATAGEN_FAILS(cli, "datagen --out D --force --shares 0,0,0,0 " + kSmall, "shares", Names{"D"});
  CHECK(ttu::read_bytes(cli.work.file("D/keep")) == "precious");

  // --force replaces a moetb dataset only: D holds a user's file, so it stays (docs/outputs.md).
  CHECK_DATAGEN_FAILS(cli, "datagen --out D --force " + kSmall, "not a moetb dataset", Names{"D"});
  CHECK(all_files(cli.work.file("D")) == (std::map<std::string, std::string>{{"keep", "precious"}}));
  REQUIRE(cli.run("datagen --out G " + kSmall).rc == 0);
  const Result forced = cli.run("datagen --out G --force --seed 5 " + kSmall);
  INFO("stderr: " << forced.err);
  REQUIRE(forced.rc == 0);
  CHECK(cli.work.entries() == (Names{"D", "G"}));
  const auto files = all_files(cli.work.file("G"));
  CHECK(files.count("manifest.json") == 1);
}
