// Real text domains (datagen/text_corpus.h) on temporary folders: every document is BOS
// (256) followed by its file's bytes (cut at max_file_bytes), as named by sources.txt; the
// train/val split is by file, deterministic, and adding a file moves no other; the writer
// is byte-identical across runs; missing, empty and too-small folders fail with one line
// naming the domain key and the folder.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "common/config_binder.h"
#include "datagen/dataset.h"
#include "datagen/dataset_writer.h"
#include "common/rng.h"
#include "tests/core/datagen_test_util.h"
#include "tests/core/trace_test_util.h"

using namespace moetb;
using ttu::TempDir;
namespace fs = std::filesystem;

namespace {

// A folder of `n` files with seeded random bytes (20..219 bytes), some in a subfolder.
void make_folder(const std::string& dir, int n, uint64_t seed) {
  fs::create_directories(fs::path(dir) / "sub");
  Rng rng(seed);
  for (int i = 0; i < n; ++i) {
    std::string bytes(20 + rng.below(200), '\0');
    for (char& c : bytes) c = static_cast<char>(rng.below(256));
    const std::string name = (i % 3 == 0 ? "sub/f" : "f") + std::to_string(i) + ".txt";
    ttu::write_bytes((fs::path(dir) / name).string(), bytes);
  }
}

DatagenConfig text_config(const std::map<std::string, std::string>& domains) {
  DatagenConfig c;
  c.text_domains = domains;
  c.seed = 2;
  c.seq_len = 16;
  c.train_tokens = 1000000;  // budgets above the folders' size: every file is used
  c.val_tokens = 1000000;
  c.val_fraction = 0.3;
  c.max_file_bytes = 150;
  c.shard_sequences = 50;
  return c;
}


std::vector<std::string> lines_of(const std::string& path) {
  std::istringstream in(ttu::read_bytes(path));
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Domain folder index -> relative file -> split, from the dataset's sources.txt files.
std::map<std::pair<int, std::string>, Split> split_of_files(const Dataset& ds) {
  std::map<std::pair<int, std::string>, Split> out;
  for (Split split : {Split::kTrain, Split::kVal}) {
    const auto names = lines_of((fs::path(ds.dir()) / split_name(split) / "sources.txt").string());
    const auto& docs = ds.documents(split);
    REQUIRE(names.size() == docs.size());
    for (std::size_t k = 0; k < docs.size(); ++k) {
      const auto key = std::make_pair(static_cast<int>(docs[k].domain), names[k]);
      CHECK((out.count(key) == 0 || out[key] == split));  // a file lives in one split only
      out[key] = split;
    }
  }
  return out;
}

std::string error_of(const DatagenConfig& cfg) {
  try {
    TextCorpus corpus(cfg);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no error>";
}

std::map<std::string, std::string> all_files(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).generic_string()] = ttu::read_bytes(e.path().string());
  return out;
}

}  // namespace

TEST_CASE("datagen: text documents are BOS and their file's bytes", "[datagen]") {
  TempDir tmp("dg-text");
  const std::string a = tmp.file("alpha"), b = tmp.file("beta");
  make_folder(a, 30, 1);
  make_folder(b, 24, 2);
  ttu::write_bytes(tmp.file("alpha/empty.txt"), "");                                 // skipped: empty
  fs::create_symlink(tmp.file("alpha/f1.txt"), tmp.file("alpha/link.txt"));        // skipped: a link
  const DatagenConfig cfg = text_config({{"beta", b}, {"alpha", a}});
  const nlohmann::json m = dtu::write_dataset(cfg, tmp.file("ds"));
  CHECK(m["kind"] == "text");
  CHECK(m["vocab_size"] == 257);
  CHECK(m["bos_token"] == 256);
  REQUIRE(m["domains"].size() == 2);
  CHECK(m["domains"][0]["name"] == "alpha");  // domains in name order
  CHECK(m["domains"][0]["files_found"] == 30);
  CHECK(m["domains"][1]["files_found"] == 24);
  CHECK(m["domains"][0]["entropy_rate_bits"].is_null());
  const Dataset ds(tmp.file("ds"));
  CHECK_FALSE(ds.is_synthetic());
  CHECK_FALSE(ds.entropy_rate_bits(0).has_value());
  const std::string folders[2] = {a, b};
  int64_t whole = 0, cut = 0;
  for (Split split : {Split::kTrain, Split::kVal}) {
    const auto names = lines_of((fs::path(ds.dir()) / split_name(split) / "sources.txt").string());
    const auto& docs = ds.documents(split);
    REQUIRE(names.size() == docs.size());
    const int64_t n_tokens = ds.n_sequences(split) * 16;
    CHECK(docs.back().start + docs.back().length == static_cast<uint64_t>(n_tokens));
    for (std::size_t k = 0; k < docs.size(); ++k) {
      const DocumentRecord& d = docs[k];
      INFO(split_name(split) << " document " << k << ": " << names[k]);
      if (k + 1 < docs.size()) CHECK(d.start + d.length == docs[k + 1].start);
      const std::string file = ttu::read_bytes((fs::path(folders[d.domain]) / names[k]).string());
      const std::string expected = file.substr(0, 150);
      std::string got;
      bool bos = true, domains_ok = true;
      for (uint64_t p = d.start; p < d.start + d.length; ++p) {
        const int64_t seq = static_cast<int64_t>(p / 16), i = static_cast<int64_t>(p % 16);
        const uint32_t t = ds.token(split, seq, i);
        domains_ok = domains_ok && ds.domain(split, seq, i) == d.domain && ds.motif(split, seq, i) == -1;
        if (p == d.start) bos = t == 256;
        else got.push_back(static_cast<char>(t));
      }
      CHECK(bos);
      CHECK(domains_ok);
      if (k + 1 < docs.size()) {  // whole documents
        CHECK(d.length == expected.size() + 1);
        CHECK(got == expected);
        whole += 1;
        cut += file.size() > 150;
      } else {  // the last one may be cut where the split's last whole sequence ends
        CHECK(d.length <= expected.size() + 1);
        CHECK(got == expected.substr(0, got.size()));
      }
    }
  }
  CHECK(whole >= 50);
  CHECK(cut > 0);  // max_file_bytes did cut some files
  // Every non-empty regular file is used exactly once, the link and the empty file never.
  const auto where = split_of_files(ds);
  CHECK(where.size() == 54);
  CHECK(where.count({0, "link.txt"}) == 0);
  CHECK(where.count({0, "empty.txt"}) == 0);
  CHECK(where.count({0, "sub/f0.txt"}) == 1);
  int64_t val = 0;
  for (const auto& [file, split] : where) val += split == Split::kVal;
  CHECK(val > 0);
  CHECK(val < 54);
}

TEST_CASE("datagen: the text split is by file, deterministic, and stable when files are added", "[datagen]") {
  TempDir tmp("dg-text-split");
  const std::string a = tmp.file("alpha"), b = tmp.file("beta");
  make_folder(a, 40, 3);
  make_folder(b, 40, 4);
  DatagenConfig cfg = text_config({{"alpha", a}, {"beta", b}});
  dtu::write_dataset(cfg, tmp.file("one"));
  dtu::write_dataset(cfg, tmp.file("two"));
  CHECK(all_files(tmp.file("one")) == all_files(tmp.file("two")));  // byte-identical
  const auto before = split_of_files(Dataset(tmp.file("one")));
  CHECK(before.size() == 80);

  for (int i = 0; i < 5; ++i) ttu::write_bytes(a + "/added" + std::to_string(i) + ".txt", std::string(60, 'x'));
  dtu::write_dataset(cfg, tmp.file("more"));
  const auto after = split_of_files(Dataset(tmp.file("more")));
  CHECK(after.size() == 85);
  int64_t moved = 0;
  for (const auto& [file, split] : before) moved += after.count(file) == 0 || after.at(file) != split;
  CHECK(moved == 0);
  // Another seed draws another split (control: the check above can see a change).
  cfg.seed = 3;
  dtu::write_dataset(cfg, tmp.file("reseeded"));
  const auto reseeded = split_of_files(Dataset(tmp.file("reseeded")));
  int64_t differ = 0;
  for (const auto& [file, split] : after) differ += reseeded.count(file) == 1 && reseeded.at(file) != split;
  CHECK(differ > 0);
  CHECK(all_files(tmp.file("reseeded")).at("train/shard-00000.tokens") != all_files(tmp.file("more")).at("train/shard-00000.tokens"));
  // Domain packing: each sequence holds one text domain.
  cfg.packing = "domain";
  dtu::write_dataset(cfg, tmp.file("by-domain"));
  const Dataset ds(tmp.file("by-domain"));
  int64_t mixed = 0;
  for (int64_t q = 0; q < ds.n_sequences(Split::kTrain); ++q)
    for (int64_t i = 1; i < 16; ++i) mixed += ds.domain(Split::kTrain, q, i) != ds.domain(Split::kTrain, q, 0);
  CHECK(mixed == 0);
}

TEST_CASE("datagen: bad text folders fail with one line naming the key and folder", "[datagen]") {
  TempDir tmp("dg-text-err");
  const std::string good = tmp.file("good"), empty = tmp.file("empty"), lonely = tmp.file("lonely");
  make_folder(good, 20, 5);
  fs::create_directories(empty);
  ttu::write_bytes(tmp.file("empty/zero.txt"), "");  // only an empty file: still nothing to use
  fs::create_directories(lonely);
  ttu::write_bytes(tmp.file("lonely/only.txt"), std::string(500, 'a'));
  const std::string missing = tmp.file("no-such-folder");
  struct Case {
    std::string key, folder, word;
  };
  for (const Case& c : {Case{"gone", missing, "folder"}, Case{"void", empty, "no non-empty files"},
                        Case{"solo", lonely, "split empty"}}) {
    const std::string msg = error_of(text_config({{"good", good}, {c.key, c.folder}}));
    INFO("message: " << msg);
    CHECK(msg != "<no error>");
    CHECK(msg.find('\n') == std::string::npos);
    CHECK(ttu::contains(msg, "text_domains." + c.key));
    CHECK(ttu::contains(msg, c.folder));
    CHECK(ttu::contains(msg, c.word));
  }
  CHECK(error_of(text_config({{"good", good}})) == "<no error>");
  // Too little text for one sequence of the validation split: the writer leaves nothing.
  DatagenConfig big = text_config({{"good", good}});
  big.seq_len = 4096;
  const std::string out = tmp.file("out");
  CHECK_THROWS_WITH(dtu::write_dataset(big, out), Catch::Contains("seq_len"));
  CHECK(tmp.entries() == (std::vector<std::string>{"empty", "good", "lonely"}));
}
