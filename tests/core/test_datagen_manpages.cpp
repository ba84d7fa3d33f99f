// Manual-page domains (datagen/manpage_render.h, text_corpus.h): the shipped fixture page
// renders through groff to plain UTF-8 text (umlauts intact, no overstrikes, a paragraph
// on one line, tables kept); gzip pages are inflated; .so redirects and non-UTF-8 sources
// are left out; the text normaliser and the child-process runner on their own; and a
// corpus of two fixture man trees with translated_only and max_pages. Tests that need
// groff skip, saying so, when it is not installed; none reads the installed pages.
#include <zlib.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <filesystem>

#include "datagen/dataset.h"
#include "datagen/manpage_render.h"
#include "datagen/text_corpus.h"
#include "tests/core/datagen_test_util.h"
#include "tests/core/trace_test_util.h"

using namespace moetb;
using ttu::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kFixtures = std::string(MOETB_TEST_FIXTURES) + "/manpages";

bool have_groff() {
  try {
    std::string out, err;
    return run_program({"groff", "--version"}, "", &out, &err) == 0;
  } catch (const std::invalid_argument&) {
    return false;
  }
}

#define REQUIRE_GROFF()                                                         \
  do {                                                                          \
    if (!have_groff()) {                                                        \
      WARN("SKIPPED: groff is not installed (Debian: apt-get install groff-base)"); \
      return;                                                                   \
    }                                                                           \
  } while (false)

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

// A copy of the fixture trees in a scratch folder, plus what a test adds.
void copy_fixtures(const std::string& to) { fs::copy(kFixtures, to, fs::copy_options::recursive); }

}  // namespace

TEST_CASE("manpages: the fixture page renders to plain UTF-8 text", "[datagen]") {
  REQUIRE_GROFF();
  const RenderResult r = render_manpage(kFixtures + "/de/man1/gruss.1", "groff");
  REQUIRE(r.status == RenderStatus::kOk);
  const std::string& t = r.text;
  INFO(t);
  CHECK(is_valid_utf8(t));
  CHECK(ttu::contains(t, "BEZEICHNUNG\n       gruss - grüßt die Welt\n"));  // -K utf8: not "grÃ¼"
  CHECK(ttu::contains(t, "ÜBERSICHT\n"));
  CHECK(ttu::contains(t, "gruss [OPTION]… [NAME]…"));                        // bold and italic, unmarked
  CHECK(ttu::contains(t, "Japanisch: こんにちは, Russisch: Привет."));
  CHECK(ttu::contains(t, "       -l, --laut\n"));
  CHECK(ttu::contains(t, "Gruß Begrüßung"));                                 // the table, spaces collapsed
  // The long paragraph is one line: no justification spaces, no hyphenation.
  CHECK(ttu::contains(t, "ihn umbrechen, mit zusätzlichen Leerzeichen ausrichten und Wörter wie "
                         "Donaudampfschifffahrtsgesellschaftskapitän trennen würde; hier bleibt er eine einzige Zeile.\n"));
  CHECK(t.find('\b') == std::string::npos);
  CHECK(t.find('\x1b') == std::string::npos);
  CHECK(t.find("  \n") == std::string::npos);
  CHECK(t.find("\n\n\n") == std::string::npos);
  CHECK(t.rfind("GRUSS(1) Dienstprogramme für Benutzer GRUSS(1)\n", 0) == 0);  // the header line opens it
  CHECK(t.back() == '\n');
}

TEST_CASE("manpages: gzip pages are inflated; redirects and non-UTF-8 sources are left out", "[datagen]") {
  REQUIRE_GROFF();
  TempDir dir("manpages-gz");
  const std::string source = ttu::read_bytes(kFixtures + "/de/man1/gruss.1");
  write_gz(dir.file("gruss.1.gz"), source);
  CHECK(read_manpage_source(dir.file("gruss.1.gz")) == source);
  const RenderResult plain = render_manpage(kFixtures + "/de/man1/gruss.1", "groff");
  const RenderResult gz = render_manpage(dir.file("gruss.1.gz"), "groff");
  REQUIRE(gz.status == RenderStatus::kOk);
  CHECK(gz.text == plain.text);
  write_gz(dir.file("alias.1.gz"), ".so man1/gruss.1\n");
  CHECK(render_manpage(dir.file("alias.1.gz"), "groff").status == RenderStatus::kRedirect);
  ttu::write_bytes(dir.file("latin1.1"), ".TH X 1\n.SH NAME\nx \\- f\xfcr\n");  // Latin-1 "für"
  CHECK(render_manpage(dir.file("latin1.1"), "groff").status == RenderStatus::kNotUtf8);
  ttu::write_bytes(dir.file("broken.1.gz"), std::string("\x1f\x8b\x08\x00garbage", 12));
  CHECK_ONE_LINE_ERROR(read_manpage_source(dir.file("broken.1.gz")), "broken.1.gz");
  CHECK_ONE_LINE_ERROR(render_manpage(kFixtures + "/de/man1/gruss.1", "no-such-groff-moetb"), "groff: ", "no-such-groff-moetb",
                       "groff-base");
}

TEST_CASE("manpages: text normalisation", "[datagen]") {
  CHECK(normalize_rendered_text("") == "");
  CHECK(normalize_rendered_text("\n\n  \n") == "");
  CHECK(normalize_rendered_text("B\bBo\bol\bld _\bi _\b\xc3\xbc") == "Bold i \xc3\xbc\n");  // overstrikes, UTF-8 aware
  CHECK(normalize_rendered_text("\n\nA    b\t c   \n\n\n\n   d   e\n\n") == "A b c\n\n   d e\n");
  CHECK(normalize_rendered_text("x\r\x1b[1my\x7f") == "x[1my\n");
  CHECK(is_valid_utf8("plain, für, こんにちは, Привет"));
  CHECK_FALSE(is_valid_utf8("f\xfcr"));
  CHECK_FALSE(is_valid_utf8("\xc3"));
  CHECK_FALSE(is_valid_utf8("\xc0\xaf"));  // overlong
  CHECK(utf8_prefix("aü", 2) == "a");      // never cuts a character
  CHECK(utf8_prefix("aü", 3) == "aü");
  CHECK(utf8_prefix("こんにちは", 7) == "こん");
}

TEST_CASE("manpages: the child-process runner", "[datagen]") {
  std::string out, err;
  const std::string big(3 << 20, 'x');  // more than any pipe buffer, both ways
  CHECK(run_program({"cat"}, big, &out, &err) == 0);
  CHECK(out == big);
  out.clear();
  CHECK(run_program({"sh", "-c", "echo oops >&2; exit 3"}, "", &out, &err) == 3);
  CHECK(err == "oops\n");
  CHECK(out.empty());
  CHECK(run_program({"true"}, big, &out, &err) == 0);  // exits without reading: EPIPE, no SIGPIPE
  CHECK_ONE_LINE_ERROR(run_program({"no-such-program-moetb"}, "", &out, &err), "no-such-program-moetb", "cannot run");
}

TEST_CASE("manpages: listing a man tree", "[datagen]") {
  TempDir dir("manpages-list");
  copy_fixtures(dir.file("t"));
  const std::string en = dir.file("t/en");
  fs::create_directories(en + "/man3");
  ttu::write_bytes(en + "/man3/b.3", ".TH B 3\n");
  ttu::write_bytes(en + "/man3/empty.3", "");
  fs::create_symlink("b.3", en + "/man3/link.3");
  fs::create_directories(en + "/de/man1");  // another language's tree below: not listed
  ttu::write_bytes(en + "/de/man1/x.1", ".TH X 1\n");
  ttu::write_bytes(en + "/README", "not a page");
  CHECK(list_manpages("k", en) == std::vector<std::string>{"man1/gruss.1", "man1/only-english.1", "man3/b.3"});
  CHECK_ONE_LINE_ERROR(list_manpages("manpage_domains.x", dir.file("missing")), "manpage_domains.x", "missing");
  fs::create_directories(dir.file("bare/man1"));
  CHECK_ONE_LINE_ERROR(list_manpages("manpage_domains.y", dir.file("bare")), "manpage_domains.y", "no man pages");
}

TEST_CASE("manpages: a corpus of two man trees, translated_only and max_pages", "[datagen]") {
  REQUIRE_GROFF();
  TempDir dir("manpages-corpus");
  copy_fixtures(dir.file("t"));
  // More pages, so that both splits fill: copies of the German page under other names.
  const std::string de_src = ttu::read_bytes(kFixtures + "/de/man1/gruss.1");
  const std::string en_src = ttu::read_bytes(kFixtures + "/en/man1/gruss.1");
  for (int i = 0; i < 12; ++i) {
    write_gz(dir.file("t/de/man1/p" + std::to_string(i) + ".1.gz"), de_src);
    write_gz(dir.file("t/en/man1/p" + std::to_string(i) + ".1.gz"), en_src);
  }
  DatagenConfig c;
  c.manpage_domains = {{"de", dir.file("t/de")}, {"en", dir.file("t/en")}};
  c.seq_len = 32;
  c.train_tokens = 10000000;  // every page
  c.val_tokens = 10000000;
  c.val_fraction = 0.3;
  c.seed = 3;
  c.translated_only = {"en"};
  {
    TextCorpus corpus(c);
    REQUIRE(corpus.domains().size() == 2);
    CHECK(corpus.domains()[0].source == "manpages");
    CHECK(corpus.domains()[0].files_found == 13);
    CHECK(corpus.domains()[1].files_found == 13);  // only-english.1 left out
    CHECK(corpus.domains()[1].files[0] + corpus.domains()[1].files[1] == 13);
    CHECK(corpus.vocab_size() == 257);
  }
  c.translated_only.clear();
  c.max_pages = 2;
  {
    TextCorpus corpus(c);
    CHECK(corpus.domains()[1].files_found == 14);
    for (const auto& d : corpus.domains()) CHECK((d.files[0] == 2 && d.files[1] == 2));
  }
  // A dataset of it: the documents are the rendered pages, byte for byte.
  c.max_pages = 0;
  const nlohmann::json m = dtu::write_dataset(c, dir.file("ds"));
  CHECK(m["tokenizer"]["kind"] == "bytes");
  CHECK(m["domains"][0]["source"] == "manpages");
  CHECK(m["domains"][0]["pages_skipped"] == 0);
  const Dataset ds(dir.file("ds"));
  const std::string expected = render_manpage(kFixtures + "/de/man1/gruss.1", "groff").text;
  const auto& docs = ds.documents(Split::kTrain);
  const auto doc = *std::find_if(docs.begin(), docs.end(), [](const DocumentRecord& r) { return r.domain == 0; });
  std::string text;
  for (uint64_t p = doc.start + 1; p < doc.start + doc.length; ++p)
    text.push_back(static_cast<char>(ds.token(Split::kTrain, static_cast<int64_t>(p) / 32, static_cast<int64_t>(p) % 32)));
  CHECK(expected.rfind(text, 0) == 0);  // the first document (possibly cut by the split's end) is a rendered page
  CHECK(text.size() > 100);
  // The same bytes whatever the number of formatter processes.
  c.render_jobs = 1;
  dtu::write_dataset(c, dir.file("ds1"));
  c.render_jobs = 5;
  dtu::write_dataset(c, dir.file("ds5"));
  for (const char* f : {"train/shard-00000.tokens", "val/shard-00000.tokens", "train/sources.txt", "train/documents.bin"})
    CHECK(ttu::read_bytes(dir.file(std::string("ds1/") + f)) == ttu::read_bytes(dir.file(std::string("ds5/") + f)));
  CHECK(ttu::read_bytes(dir.file("ds1/train/shard-00000.tokens")) == ttu::read_bytes(dir.file("ds/train/shard-00000.tokens")));
  c.groff = "no-such-groff-moetb";
  CHECK_ONE_LINE_ERROR(TextCorpus{c}, "groff: ", "no-such-groff-moetb");
}
