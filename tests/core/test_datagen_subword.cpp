// The SentencePiece tokenizer (datagen/subword_tokenizer.h) on scratch text folders: it is
// lossless (decode(encode(text)) == text, indentation and blank lines included), two
// builds of a dataset are byte-identical (tokenizer.model included), the model is trained
// on the train split only (a character that only validation files hold gets no piece and
// the training bytes are the train files' lines), the stored model re-encodes the stored
// tokens, and bad tokenizer settings fail with one line naming the key.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "datagen/dataset.h"
#include "common/rng.h"
#include "datagen/subword_tokenizer.h"
#include "datagen/text_corpus.h"
#include "tests/core/datagen_test_util.h"
#include "tests/core/trace_test_util.h"

using namespace moetb;
using ttu::TempDir;
namespace fs = std::filesystem;

namespace {

[[maybe_unused]] const bool kSentencePiece = (register_sentencepiece_tokenizer(), true);  // as moetb datagen does

// A folder of `n` files of seeded sentences over a small word list, with indentation.
void make_text_folder(const std::string& dir, const std::vector<std::string>& words, int n, uint64_t seed) {
  fs::create_directories(dir);
  Rng rng(seed);
  for (int i = 0; i < n; ++i) {
    std::string text;
    const auto lines = 3 + rng.below(6);
    for (uint64_t l = 0; l < lines; ++l) {
      if (l % 2 == 1) text += "       ";
      const auto len = 4 + rng.below(10);
      for (uint64_t w = 0; w < len; ++w) text += (w ? " " : "") + words[rng.below(words.size())];
      text += l == 2 ? "\n\n" : "\n";
    }
    ttu::write_bytes(dir + "/f" + std::to_string(i) + ".txt", text);
  }
}

const std::vector<std::string> kEnglish = {"the", "file", "is", "written", "to", "standard", "output", "when", "option", "given"};
const std::vector<std::string> kGerman = {"die", "Datei", "wird", "auf", "die", "Standardausgabe", "geschrieben", "für", "Größe"};

DatagenConfig subword_config(const TempDir& dir) {
  make_text_folder(dir.file("en"), kEnglish, 30, 1);
  make_text_folder(dir.file("de"), kGerman, 30, 2);
  DatagenConfig c;
  c.text_domains = {{"de", dir.file("de")}, {"en", dir.file("en")}};
  c.seq_len = 16;
  c.train_tokens = 10000000;  // every file
  c.val_tokens = 10000000;
  c.val_fraction = 0.3;
  c.tokenizer = "sentencepiece";
  c.subword_vocab_size = 400;
  c.subword_character_coverage = 1.0;
  return c;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::istringstream in(ttu::read_bytes(path));
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::map<std::string, std::string> all_files(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).generic_string()] = ttu::read_bytes(e.path().string());
  return out;
}

}  // namespace

TEST_CASE("subword: encoding is lossless", "[datagen]") {
  const std::string a = "the file is written\n       to standard output\n\nwhen ü is given\n";
  const std::string b = "die Datei wird geschrieben\n";
  const SubwordTokenizer tok = SubwordTokenizer::train({&a, &b}, {300, "unigram", 1.0, 1});
  CHECK(tok.n_pieces() <= 300);
  CHECK(tok.training_bytes() == static_cast<int64_t>(a.size() + b.size()) - 5);  // lines without their newlines
  for (const std::string& text : {a, b, std::string("unseen: こんにちは Привет\n\n  x"), std::string("\n")}) {
    const std::vector<uint32_t> ids = tok.encode(text);
    for (uint32_t id : ids) CHECK(id <= tok.newline_token());
    CHECK(tok.decode(ids) == text);
  }
  const SubwordTokenizer again = SubwordTokenizer::load(tok.serialized());
  CHECK(again.encode(a) == tok.encode(a));
  CHECK_ONE_LINE_ERROR(SubwordTokenizer::load("not a model"), "tokenizer.model");
  const SubwordTokenizer bpe = SubwordTokenizer::train({&a, &b}, {300, "bpe", 1.0, 1});
  CHECK(bpe.decode(bpe.encode(a)) == a);
}

TEST_CASE("subword: two builds are byte-identical, and the model is stored and named", "[datagen]") {
  TempDir dir("subword-det");
  const DatagenConfig c = subword_config(dir);
  const nlohmann::json m = dtu::write_dataset(c, dir.file("one"));
  dtu::write_dataset(c, dir.file("two"));
  const auto one = all_files(dir.file("one")), two = all_files(dir.file("two"));
  CHECK(one.count("tokenizer.model") == 1);
  CHECK(one == two);
  CHECK(m["tokenizer"]["kind"] == "sentencepiece");
  CHECK(m["tokenizer"]["model"] == "tokenizer.model");
  const int64_t n_pieces = m["tokenizer"]["n_pieces"];
  CHECK(m["vocab_size"] == n_pieces + 2);  // + newline + BOS
  CHECK(m["bos_token"] == n_pieces + 1);
  CHECK(m["tokenizer"]["newline_token"] == n_pieces);
  // The reader works unchanged on ids, with the vocabulary from the manifest.
  const Dataset ds(dir.file("one"));
  CHECK(ds.vocab_size() == n_pieces + 2);
  CHECK(ds.n_sequences(Split::kTrain) > 0);
}

TEST_CASE("subword: trained on the train split only", "[datagen]") {
  TempDir dir("subword-train-only");
  DatagenConfig c = subword_config(dir);
  c.tokenizer = "bytes";
  dtu::write_dataset(c, dir.file("bytes"));
  // The split is by a hash of the path, so a file's contents do not move it: give every
  // validation file a word in a script that no train file holds.
  const std::string marker = "Жёлтый";
  // (sources.txt names each document; a name is in both domains' folders and, since the
  // split hashes the relative path, in the same split in both.)
  const auto val_files = lines_of(dir.file("bytes/val/sources.txt"));
  const auto train_list = lines_of(dir.file("bytes/train/sources.txt"));
  const std::set<std::string> val_names(val_files.begin(), val_files.end()), train_files(train_list.begin(), train_list.end());
  REQUIRE(!val_files.empty());
  std::map<std::string, std::string> val_text;
  for (const auto& f : val_names)
    for (const char* dom : {"de", "en"})
      if (fs::exists(dir.file(std::string(dom) + "/" + f))) {
        const std::string path = dir.file(std::string(dom) + "/" + f);
        ttu::write_bytes(path, ttu::read_bytes(path) + marker + " " + marker + "\n");
      }
  c.tokenizer = "sentencepiece";
  const nlohmann::json m = dtu::write_dataset(c, dir.file("sp"));
  CHECK(lines_of(dir.file("sp/val/sources.txt")) == val_files);
  const SubwordTokenizer tok = SubwordTokenizer::load(ttu::read_bytes(dir.file("sp/tokenizer.model")));
  for (int64_t id = 0; id < tok.n_pieces(); ++id) {
    const std::string piece = tok.piece(static_cast<uint32_t>(id));
    INFO("piece " << id << ": " << piece);
    CHECK(piece.find("Ж") == std::string::npos);
    CHECK(piece.find("ё") == std::string::npos);
  }
  // The bytes it was trained on are the non-empty lines of the train files, nothing else.
  int64_t train_bytes = 0;
  for (const auto& f : train_files)
    for (const char* dom : {"de", "en"})
      if (fs::exists(dir.file(std::string(dom) + "/" + f)))
        for (const auto& line : lines_of(dir.file(std::string(dom) + "/" + f))) train_bytes += static_cast<int64_t>(line.size());
  CHECK(m["tokenizer"]["training_bytes"] == train_bytes);
  // Validation documents still round-trip (the marker through byte fallback).
  const Dataset ds(dir.file("sp"));
  const auto& doc = ds.documents(Split::kVal).front();
  std::vector<uint32_t> ids;
  const int64_t S = ds.seq_len();
  for (uint64_t p = doc.start + 1; p < doc.start + doc.length; ++p)
    ids.push_back(ds.token(Split::kVal, static_cast<int64_t>(p) / S, static_cast<int64_t>(p) % S));
  const std::string decoded = tok.decode(ids);
  CHECK(ttu::contains(decoded, marker + " " + marker + "\n"));
  CHECK(tok.encode(decoded) == ids);
}

TEST_CASE("subword: bad tokenizer settings fail with one line", "[datagen]") {
  TempDir dir("subword-bad");
  const DatagenConfig good = subword_config(dir);
  auto bad = [&](auto edit, const std::string& key) {
    DatagenConfig c = good;
    edit(c);
    CHECK_ONE_LINE_ERROR(validate_datagen_config(c), key);
  };
  bad([](DatagenConfig& c) { c.tokenizer = "words"; }, "tokenizer");
  bad([](DatagenConfig& c) { c.subword_vocab_size = 100; }, "subword_vocab_size");
  bad([](DatagenConfig& c) { c.subword_vocab_size = 70000; }, "subword_vocab_size");  // u16
  bad([](DatagenConfig& c) { c.subword_model_type = "wordpiece"; }, "subword_model_type");
  bad([](DatagenConfig& c) { c.subword_character_coverage = 0.0; }, "subword_character_coverage");
  bad([](DatagenConfig& c) { c.text_domains.clear(); }, "tokenizer");  // synthetic domains
  bad([](DatagenConfig& c) { c.translated_only = {"en"}; }, "translated_only");  // not a manpage domain
  bad([](DatagenConfig& c) { c.manpage_domains = {{"en", "/x"}}; }, "manpage_domains.en");  // name taken
  bad([](DatagenConfig& c) { c.render_jobs = 0; }, "render_jobs");
  bad([](DatagenConfig& c) { c.max_pages = -1; }, "max_pages");
}
