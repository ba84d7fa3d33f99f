// `moetb datagen --preset languages` run as a user would (MOETB_BINARY): a tiny build of the
// eight-language manual-page dataset from the installed pages (skipped, saying so, when
// manpages-de and friends or groff are missing), bytes and subword, with --stats; and the
// preset, manpage and tokenizer errors: one stderr line naming the key, no dataset left.
#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/core/cli_test_util.h"
#include "tests/core/trace_test_util.h"

namespace fs = std::filesystem;
using ctu::Result;

namespace {

struct Cli : ctu::Cli {
  Cli() : ctu::Cli("langcli") {}
};

bool have_installed_pages() {
  for (const char* lang : {"de", "fr", "es", "it", "pl", "ru", "ja"})
    if (!fs::is_directory(std::string("/usr/share/man/") + lang + "/man1")) return false;
  return fs::is_directory("/usr/share/man/man1") && std::system("groff --version >/dev/null 2>&1") == 0;
}

// Small enough for seconds: a few pages per language, each cut at 3 KB.
const std::string kTiny = "datagen --preset languages --train-tokens 96000 --val-tokens 24000 --max-file-bytes 3000 --seq-len 64";

void check_fails(const Cli& cli, const std::string& args, const std::string& word) {
  const Result r = cli.run(args);
  INFO("moetb " << args << "\nstderr: " << r.err);
  CHECK(r.rc != 0);
  CHECK(ctu::one_line(r.err));
  CHECK(ttu::contains(r.err, "moetb datagen: error: "));
  CHECK(ttu::contains(r.err, word));
  CHECK(cli.work.entries().empty());
}

}  // namespace

TEST_CASE("datagen cli: a tiny languages dataset from the installed man pages", "[cli]") {
  if (!have_installed_pages()) {
    WARN("SKIPPED: the translated man pages or groff are not installed (scripts/install-deps.sh installs them)");
    return;
  }
  Cli cli;
  const Result r = cli.run(kTiny + " --out L");
  INFO("stderr: " << r.err);
  REQUIRE(r.rc == 0);
  for (const char* lang : {"de:", "en:", "es:", "fr:", "it:", "ja:", "pl:", "ru:"}) CHECK(ttu::contains(r.err, lang));
  const nlohmann::json m = nlohmann::json::parse(ttu::read_bytes(cli.work.file("L/manifest.json")));
  REQUIRE(m["domains"].size() == 8);
  CHECK(m["vocab_size"] == 257);
  for (const auto& d : m["domains"]) {
    CHECK(d["source"] == "manpages");
    CHECK(d["tokens"]["train"].get<int64_t>() > 0);
    CHECK(d["tokens"]["val"].get<int64_t>() > 0);
  }
  const Result st = cli.run("datagen --stats L --json");
  REQUIRE(st.rc == 0);
  const nlohmann::json sj = nlohmann::json::parse(st.out);
  CHECK(sj["nb_accuracy_window"].get<double>() > sj["majority_baseline"].get<double>());
  // The same with subword ids: the model beside the data, named in the manifest.
  const Result sp = cli.run(kTiny + " --out S --tokenizer sentencepiece --subword-vocab-size 1000");
  INFO("stderr: " << sp.err);
  REQUIRE(sp.rc == 0);
  const nlohmann::json ms = nlohmann::json::parse(ttu::read_bytes(cli.work.file("S/manifest.json")));
  CHECK(ms["tokenizer"]["model"] == "tokenizer.model");
  CHECK(fs::file_size(cli.work.file("S/tokenizer.model")) > 1000);
  CHECK(ms["vocab_size"].get<int64_t>() == ms["tokenizer"]["n_pieces"].get<int64_t>() + 2);
  CHECK(cli.run("datagen --stats S --window 8").rc == 0);
}

TEST_CASE("datagen cli: preset, manpage and tokenizer errors are one line", "[cli]") {
  Cli cli;
  check_fails(cli, "datagen --preset nope --out X", "--preset nope");
  check_fails(cli, "datagen --out X --manpages de=/nonexistent-moetb", "manpage_domains.de");
  check_fails(cli, "datagen --out X --manpages bad", "--manpages bad");
  check_fails(cli, "datagen --out X --tokenizer sentencepiece", "tokenizer");  // synthetic
  check_fails(cli, "datagen --preset languages --out X --tokenizer words", "tokenizer");
  check_fails(cli, "datagen --preset languages --out X --subword-vocab-size 12", "subword_vocab_size");
  check_fails(cli, "datagen --preset languages --out X --set translated_only=xx", "translated_only");
  check_fails(cli, "datagen --stats /nonexistent-moetb --window 0", "--window");
  if (have_installed_pages())
    check_fails(cli, kTiny + " --out X --groff no-such-groff-moetb", "groff: no-such-groff-moetb");
}
