// `moetb report` end to end through the real binary: a trace report of a planted trace (its
// sections, one heatmap per layer, the metric values of `moetb metrics`), a sweep report made
// with the stand-in trainer, a run report of a tiny real training run with oracle and random
// siblings (with the LibTorch part), self-contained HTML, escaping, and bad input (one line,
// exit 1, no file left). Plus the heatmaps' expert ordering on known counts.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "reports/routing_figures.h"
#include "tests/core/cli_test_util.h"
#include "tests/core/trace_test_util.h"

namespace fs = std::filesystem;

namespace {

const std::string kFake = std::string(MOETB_TEST_FIXTURES) + "/fake_moetb_train.sh";

bool has_torch_part() { return fs::exists(fs::path(MOETB_BINARY).parent_path() / "moetb-torch"); }

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

// The exact number in the first data-value after `anchor` (e.g. a row's data-key).
double value_after(const std::string& html, const std::string& anchor) {
  const std::size_t at = html.find(anchor);
  REQUIRE(at != std::string::npos);
  const std::size_t v = html.find("data-value=\"", at);
  REQUIRE(v != std::string::npos);
  const std::size_t start = v + 12;
  return std::stod(html.substr(start, html.find('"', start) - start));
}

// Nothing fetched: no external scripts, styles, images or links; the only URL is the SVG namespace.
void check_self_contained(const std::string& html) {
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(count(html, "<link") == 0);
  CHECK(count(html, "<script") == 0);
  CHECK(count(html, " src=") == 0);
  CHECK(count(html, "@import") == 0);
  const std::string stripped = std::regex_replace(html, std::regex("xmlns=\"http://www\\.w3\\.org/2000/svg\""), "");
  CHECK(count(stripped, "http://") == 0);
  CHECK(count(stripped, "https://") == 0);
  CHECK(count(html, "<figure") == count(html, "<figcaption>"));
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST_CASE("report: experts are ordered by the domain that uses them most, then by its share", "[reports]") {
  moetb::CountMatrix c;
  c.n_domains = 2;
  c.n_experts = 5;
  // domain 0 uses experts 3 (most) and 1; domain 1 uses 0 and 4 (most); expert 2 is unused.
  c.c = {0, 20, 0, 80, 0,  //
         30, 0, 0, 0, 70};
  CHECK(moetb::reports::expert_order(c) == std::vector<int64_t>{3, 1, 4, 0, 2});
  // A small domain's favourite expert counts by its share p_d(e), not by the raw count.
  c.c = {900, 100, 0, 0, 0,  //
         0, 10, 0, 0, 0};
  CHECK(moetb::reports::expert_order(c) == std::vector<int64_t>{0, 1, 2, 3, 4});
  c.c = {100, 900, 0, 0, 0,  //
         10, 0, 0, 0, 0};
  CHECK(moetb::reports::expert_order(c) == std::vector<int64_t>{1, 0, 2, 3, 4});
}

TEST_CASE("report: a planted trace gives metrics, one heatmap per layer and the load", "[reports]") {
  ctu::Cli cli("report-trace");
  REQUIRE(cli.run("simulate --out t.safetensors -E 16 -k 1 -D 4 -L 3 --alpha 0.9 0.5 0 -T 40000 "
                  "--domain-names code math '<b>prose</b>' 'a&b'").rc == 0);
  const ctu::Result r = cli.run("report t.safetensors --out r.html");
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const std::string html = ttu::read_bytes(cli.work.file("r.html"));
  CHECK(ttu::contains(html, "<main id=\"report\" data-kind=\"trace\">"));
  for (const char* id : {"config", "metrics", "routing", "load"}) CHECK(ttu::contains(html, "<section id=\"" + std::string(id) + "\">"));
  CHECK(ttu::contains(html, "<table id=\"metric-table\""));
  CHECK(count(html, "<figure class=\"chart heatmap\" data-layer=") == 3);
  for (int l = 0; l < 3; ++l) CHECK(ttu::contains(html, "<figure class=\"chart heatmap\" data-layer=\"" + std::to_string(l) + "\">"));
  CHECK(count(html, "<figure class=\"chart heatmap load\"") == 1);
  CHECK(ttu::contains(html, "colour-legend"));
  check_self_contained(html);
  // Domain names are escaped everywhere (page text and SVG).
  CHECK(count(html, "<b>prose</b>") == 0);
  CHECK(ttu::contains(html, "&lt;b&gt;prose&lt;/b&gt;"));
  CHECK(count(html, "a&b") == 0);
  // The values are those of `moetb metrics`.
  const ctu::Result m = cli.run("metrics t.safetensors --json");
  REQUIRE(m.rc == 0);
  const nlohmann::json j = nlohmann::json::parse(m.out);
  for (const char* key : {"rs", "di", "ner", "rss"})
    CHECK(value_after(html, "<tr data-key=\"" + std::string(key) + "\">") == j["summary"][key].get<double>());
  CHECK(value_after(html, "<tr data-key=\"load.max_vio\">") == j["summary"]["load"]["max_vio"].get<double>());
  // Planted with k = 1 and uniform load: DI of each layer is its alpha (metrics.md invariant 7).
  std::string layers = html.substr(html.find("<table id=\"layer-table\""));
  layers = layers.substr(0, layers.find("</table>"));
  const std::regex row("<tr data-layer=\"(\\d)\"><td class=\"num\">\\d</td>(<td[^>]*>[^<]*</td>){3}<td class=\"num\" data-value=\"([^\"]+)\"");
  std::vector<double> di;
  for (std::sregex_iterator it(layers.begin(), layers.end(), row), end; it != end; ++it) di.push_back(std::stod((*it)[3]));
  REQUIRE(di.size() == 3);
  CHECK(di[0] == Approx(0.9).margin(0.03));
  CHECK(di[1] == Approx(0.5).margin(0.03));
  CHECK(di[2] == Approx(0.0).margin(0.04));  // TV of empirical distributions is biased upwards
  // A title from the command line, escaped; the same file as a folder of shards works too.
  REQUIRE(cli.run("simulate --out shards -E 8 -k 2 -D 2 -L 2 -T 3000 --shard-tokens 1000").rc == 0);
  const ctu::Result s = cli.run("report shards --out s.html --title 'Shards <&>'");
  INFO(s.err);
  REQUIRE(s.rc == 0);
  const std::string sh = ttu::read_bytes(cli.work.file("s.html"));
  CHECK(ttu::contains(sh, "<h1>Shards &lt;&amp;&gt;</h1>"));
  CHECK(count(sh, "<figure class=\"chart heatmap\" data-layer=") == 2);
}

TEST_CASE("report: a sweep report has the summary table and the plots", "[reports]") {
  ctu::Cli cli("report-sweep");
  write(cli.work.file("spec.toml"), "[sweep]\nname = \"tiny<sweep>\"\nseeds = [1, 2]\nmetrics = [\"val_bits\", \"rs\"]\n"
                                    "check_train_keys = false\n[base]\ndata.dir = \".\"\n[[axes]]\nfake.fail = [false, true]\nfake.loss = [2.0, 3.0]\n");
  REQUIRE(cli.run("sweep plan spec.toml --out sw").rc == 0);
  REQUIRE(cli.run("sweep run sw --jobs 2 -q --moetb " + kFake).rc == 1);  // the fail = true runs fail
  const ctu::Result r = cli.run("report sw --out sweep.html");
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const std::string html = ttu::read_bytes(cli.work.file("sweep.html"));
  CHECK(ttu::contains(html, "<main id=\"report\" data-kind=\"sweep\">"));
  for (const char* id : {"config", "summary", "plots"}) CHECK(ttu::contains(html, "<section id=\"" + std::string(id) + "\">"));
  CHECK(ttu::contains(html, "<table id=\"summary-table\""));
  CHECK(ttu::contains(html, "tiny&lt;sweep&gt;"));
  // One row per group of runs: loss 2.0 and 3.0 have 2 completed seeds each, the failing groups none.
  const std::string summary = html.substr(html.find("<table id=\"summary-table\""));
  CHECK(ttu::contains(summary, "<td class=\"num\" data-value=\"2\">2 \xC2\xB1 0</td>"));
  CHECK(ttu::contains(summary, "<td class=\"num\" data-value=\"3\">3 \xC2\xB1 0</td>"));
  CHECK(ttu::contains(summary, "<td class=\"num\">0 of 2</td>"));
  CHECK(count(html, "data-status=\"failed\"") == 4);
  CHECK(count(html, "data-status=\"ok\"") == 4);
  // Plots: val_bits and rs against both axes, then utilization against RS.
  CHECK(count(html, "<figure class=\"chart plot") == 5);
  CHECK(ttu::contains(html, "data-plot=\"val_bits-vs-fake_loss\""));
  CHECK(ttu::contains(html, "data-plot=\"utilization-vs-rs\""));
  check_self_contained(html);
  // --reference belongs to run reports.
  const ctu::Result bad = cli.run("report sw --out x.html --reference sw");
  CHECK(bad.rc == 1);
  CHECK(ctu::one_line(bad.err));
  CHECK(!fs::exists(cli.work.file("x.html")));
}

TEST_CASE("report: a tiny real training run has curves, heatmaps, metrics beside oracle and random, saturation (LibTorch part)",
          "[reports]") {
  if (!has_torch_part()) return;
  ctu::Cli cli("report-run");
  REQUIRE(cli.run("datagen --out data --domains 2 --vocab-per-domain 16 --seq-len 16 --train-tokens 2048 --val-tokens 256 "
                  "--doc-len-mean 40").rc == 0);
  const std::string tiny = " --steps 3 --set model.d_model=16 --set model.n_heads=2 --set moe.n_experts=4 --set moe.d_ff=16 "
                           "--set train.micro_batch=4 --set eval.every=1 --set eval.sequences=4 -q";
  for (const char* router : {"topk", "oracle", "random"}) {
    const ctu::Result t = cli.run("train --data data --out demo/" + std::string(router) + " --router " + router + tiny);
    INFO(t.err);
    REQUIRE(t.rc == 0);
  }
  const ctu::Result r = cli.run("report demo/topk --out run.html");
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const std::string html = ttu::read_bytes(cli.work.file("run.html"));
  CHECK(ttu::contains(html, "<main id=\"report\" data-kind=\"run\">"));
  for (const char* id : {"config", "curves", "metrics", "routing", "load", "saturation"})
    CHECK(ttu::contains(html, "<section id=\"" + std::string(id) + "\">"));
  CHECK(count(html, "<figure class=\"chart curve\"") >= 5);
  for (const char* curve : {"loss", "domain-loss", "aux-loss", "load-violation", "routing-metrics"})
    CHECK(ttu::contains(html, "data-curve=\"" + std::string(curve) + "\""));
  CHECK(count(html, "<figure class=\"chart heatmap\" data-layer=") == 2);  // model.n_layers = 2
  CHECK(ttu::contains(html, "<table id=\"metric-table\""));
  CHECK(ttu::contains(html, "<table id=\"eval-table\""));
  // The metric table has the oracle and random siblings as columns, with their values.
  const std::string head = html.substr(html.find("<table id=\"metric-table\""));
  CHECK(ttu::contains(head.substr(0, head.find("</thead>")), "<th scope=\"col\" class=\"num\">oracle</th><th scope=\"col\" class=\"num\">random</th>"));
  const nlohmann::json oracle = nlohmann::json::parse(ttu::read_bytes(cli.work.file("demo/oracle/eval.json")));
  const std::string rs_row = head.substr(head.find("<tr data-key=\"rs\">"));
  const std::size_t second_value = rs_row.find("data-value=\"", rs_row.find("data-value=\"") + 1) + 12;
  CHECK(std::stod(rs_row.substr(second_value, rs_row.find('"', second_value) - second_value)) ==
        oracle["metrics_summary"]["rs"].get<double>());
  // Saturation: one row per evaluation (steps 1, 2, 3); the final one is compared with itself.
  CHECK(ttu::contains(html, "<table id=\"saturation-table\""));
  for (const char* step : {"1", "2", "3"}) CHECK(ttu::contains(html, "<tr data-step=\"" + std::string(step) + "\">"));
  CHECK(value_after(html, "<tr data-step=\"3\">") == 1.0);
  check_self_contained(html);
  // --reference replaces the siblings.
  REQUIRE(cli.run("report demo/topk --out ref.html --reference demo/random").rc == 0);
  const std::string ref = ttu::read_bytes(cli.work.file("ref.html"));
  CHECK(ttu::contains(ref, "<th scope=\"col\" class=\"num\">random</th><th scope=\"col\">what it means</th>"));
  CHECK(count(ref, ">oracle</th>") == 0);
  // NAME=DIR names a reference; its curves overlay this run's, and the heatmaps share one colour scale.
  const ctu::Result named = cli.run("report demo/topk --out named.html --reference 'the random floor=demo/random'");
  INFO(named.err);
  REQUIRE(named.rc == 0);
  const std::string nh = ttu::read_bytes(cli.work.file("named.html"));
  CHECK(ttu::contains(nh, ">the random floor</th>"));
  CHECK(ttu::contains(nh, "<section id=\"overlays\">"));
  CHECK(ttu::contains(nh, "data-curve=\"overlay-loss\""));
  CHECK(ttu::contains(nh, "and for the reports of the runs compared (this run, the random floor)"));
  CHECK(ttu::contains(nh, "chance level 1/E = 0.250"));
  check_self_contained(nh);
}

TEST_CASE("report: bad input is one line, exit 1 and no output file", "[reports]") {
  ctu::Cli cli("report-bad");
  write(cli.work.file("notes.txt"), "not a trace\n");
  write(cli.work.file("bad.safetensors"), "garbage that is not a safetensors file");
  fs::create_directories(cli.work.file("empty"));
  fs::create_directories(cli.work.file("badref"));
  REQUIRE(cli.run("simulate --out t.safetensors -E 8 -k 2 -D 2 -L 1 -T 500").rc == 0);
  for (const std::string args : {"report nowhere --out out.html", "report notes.txt --out out.html",
                                  "report bad.safetensors --out out.html", "report empty --out out.html",
                                  "report t.safetensors", "report t.safetensors --out out.html --reference badref",
                                  "report nowhere --out missing-dir/out.html"}) {
    INFO(args);
    const ctu::Result r = cli.run(args);
    CHECK(r.rc == 1);
    CHECK(ctu::one_line(r.err));
    CHECK(ttu::contains(r.err, "moetb report: error: "));
    CHECK(!fs::exists(cli.work.file("out.html")));
  }
  // Nothing but the inputs is left behind (no temporary files either).
  CHECK(cli.work.entries() == std::vector<std::string>{"bad.safetensors", "badref", "empty", "notes.txt", "t.safetensors"});
  // A good report into a folder that does not exist yet creates it.
  REQUIRE(cli.run("report t.safetensors --out new/dir/out.html").rc == 0);
  CHECK(fs::exists(cli.work.file("new/dir/out.html")));
}
