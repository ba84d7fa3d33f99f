// `moetb finetune` and `moetb knockout` through the torch-free moetb binary (which execs
// moetb-torch): a tiny run, a paths fine-tune and a knockout end to end (finetune.json,
// moetb-knockout/1, the report's knockout section), and bad inputs failing in one line
// without leaving an output. Without the LibTorch part (sanitize build) the cases return.
#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/core/cli_test_util.h"
#include "tests/core/trace_test_util.h"

namespace fs = std::filesystem;

namespace {
bool has_torch_part() { return fs::exists(fs::path(MOETB_BINARY).parent_path() / "moetb-torch"); }
}  // namespace

TEST_CASE("cli: finetune and knockout end to end; bad inputs fail in one line", "[cli]") {
  if (!has_torch_part()) return;
  ctu::Cli cli("cli-finetune");
  const ttu::TempDir& work = cli.work;
  REQUIRE(cli.run("datagen --out data --set domains=3 --set vocab_per_domain=16 --set motifs_per_domain=2 --set seq_len=16 "
                  "--set train_tokens=4096 --set val_tokens=1024 --set doc_len_mean=40").rc == 0);
  const std::string tiny = " --set model.d_model=16 --set model.n_heads=2 --set moe.n_experts=4 --set moe.d_ff=16 "
                           "--set train.micro_batch=4 --set train.warmup_steps=1 --set eval.sequences=0 --set eval.every=4";
  REQUIRE(cli.run("train --data data --out run --steps 4 -q" + tiny).rc == 0);
  const auto ft = cli.run("finetune run --domain d1 --arm paths --steps 2 --out ft -q");
  INFO(ft.err);
  REQUIRE(ft.rc == 0);
  const auto result = nlohmann::json::parse(ttu::read_bytes(work.file("ft/finetune.json")));
  REQUIRE(result["format"] == "moetb-finetune/1");
  REQUIRE(result["arm"] == "paths");
  const auto ko = cli.run("knockout run -q -o run/knockout.json");
  REQUIRE(ko.rc == 0);
  REQUIRE(nlohmann::json::parse(ttu::read_bytes(work.file("run/knockout.json")))["format"] == "moetb-knockout/1");
  REQUIRE(cli.run("report run -o run.html").rc == 0);
  REQUIRE(ttu::contains(ttu::read_bytes(work.file("run.html")), "chart heatmap knockout"));

  const std::pair<const char*, const char*> cases[] = {
      {"finetune nowhere --domain d0 --arm paths --out x", "nowhere"},
      {"finetune run --domain zz --arm paths --out x", "--domain: 'zz'"},
      {"finetune run --domain d0 --arm best --out x", "--arm: unknown arm 'best'"},
      {"finetune run --domain d0 --arm paths --tau 2 --out x", "--tau"},
      {"finetune run --domain d0 --arm paths --steps 0 --out x", "--steps"},
      {"finetune run --domain d0 --arm paths --out ft", "already exists"},
      {"finetune run --domain d0 --arm paths --out run/x", "run"},
      {"knockout nowhere", "nowhere"},
  };
  for (const auto& [args, word] : cases) {
    const auto r = cli.run(args);
    INFO(args << "\n" << r.err);
    CHECK(r.rc == 1);
    CHECK(ctu::one_line(r.err));
    CHECK(ttu::contains(r.err, word));
    CHECK_FALSE(fs::exists(work.file("x")));
    CHECK_FALSE(fs::exists(work.file("run/x")));
  }
}
