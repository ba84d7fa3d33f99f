// moetb across models and on large traces: `compare` on traces of the same tokens from different
// models (verdicts from paired jackknife standard errors, different layer/expert/top-k counts,
// token checks), the jackknife replicates checked against recomputation without the left-out
// tokens, `metrics --per-domain`, and streaming in chunks inside a shard (same numbers, right
// token index in errors). Planted traces (oracle simulator) give the known answers.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "metrics/rss_table.h"
#include "metrics/trace_compare.h"
#include "oracle/planted_simulator.h"
#include "tests/core/cli_test_util.h"
#include "tests/core/trace_test_util.h"

using json = nlohmann::json;
using moetb::SimConfig;
using moetb::TraceData;

namespace {

SimConfig planted(double alpha, int layers = 2, int64_t experts = 64, int top_k = 4) {
  SimConfig c;
  c.n_tokens = 16384;
  c.n_layers = layers;
  c.n_experts = experts;
  c.top_k = top_k;
  c.alpha = {alpha};
  c.beta = 0.2;  // token ids keep fixed sets: RSS well above 0
  c.gamma = 0.2;
  c.vocab_per_domain = 256;
  c.seed = 7;  // the token stream depends on the seed, domains and lengths only: same text for all models
  return c;
}

moetb::TraceMetrics metrics_with_blocks(const moetb::ShardSource& src, int blocks) {
  moetb::MetricsOptions o;
  o.threads = 1;
  o.jackknife_blocks = blocks;
  return moetb::compute_trace_metrics(src, o);
}

json compare_traces(const moetb::ShardSource& a, const moetb::ShardSource& b) {
  moetb::CompareOptions o;
  o.verdicts = true;
  std::vector<std::optional<double>> saturation;
  if (moetb::saturation_skip_reason(a, b).empty()) saturation = moetb::router_saturation(a, b);
  return moetb::compare_json(metrics_with_blocks(a, moetb::kCompareBlocks), metrics_with_blocks(b, moetb::kCompareBlocks),
                             saturation, o);
}

// The trace with the tokens for which drop(t) holds removed.
TraceData without_tokens(const TraceData& in, const std::function<bool(std::size_t)>& drop) {
  TraceData out;
  out.meta_data = in.meta_data;
  out.k = in.k;
  out.experts.resize(in.experts.size());
  for (std::size_t t = 0; t < in.token_ids.size(); ++t) {
    if (drop(t)) continue;
    out.token_ids.push_back(in.token_ids[t]);
    out.positions.push_back(in.positions[t]);
    out.domain_ids.push_back(in.domain_ids[t]);
    for (std::size_t l = 0; l < in.experts.size(); ++l) {
      const auto k = static_cast<std::size_t>(in.k[l]);
      out.experts[l].insert(out.experts[l].end(), in.experts[l].begin() + static_cast<std::ptrdiff_t>(t * k),
                            in.experts[l].begin() + static_cast<std::ptrdiff_t>((t + 1) * k));
    }
  }
  return out;
}

struct Cli : ctu::Cli {
  explicit Cli() : ctu::Cli("cmp") {}
  void trace(const std::string& name, const SimConfig& cfg) const {
    moetb::SimOutput out;
    out.path = work.file(name);
    moetb::simulate_to_disk(cfg, out);
  }
};

}  // namespace

TEST_CASE("compare: planted models of different specialization differ on RS, the same trace twice is the same",
          "[metrics]") {
  const TraceData strong = moetb::simulate_trace(planted(0.8)), weak = moetb::simulate_trace(planted(0.4));
  REQUIRE(strong.token_ids == weak.token_ids);
  const json c = compare_traces(strong, weak);
  REQUIRE(c.contains("criterion"));
  CHECK(c["criterion"]["blocks"] == moetb::kCompareBlocks);
  CHECK(c["criterion"]["tol"].get<double>() == Approx(moetb::kCompareTol));
  for (const char* key : {"rs", "rs_mm", "di", "purity"}) {
    INFO(key);
    const json& e = c["summary"][key];
    CHECK(e["verdict"] == "differs");
    CHECK(e["delta"].get<double>() < 0);
    CHECK(std::fabs(e["delta"].get<double>()) > e["threshold"].get<double>());
    CHECK(e["threshold"].get<double>() >= moetb::kCompareTol);
    CHECK(e["threshold"].get<double>() == Approx(std::max(moetb::kCompareTol, 2 * e["se_delta"].get<double>())));
    CHECK(e["se_a"].get<double>() > 0);  // real noise, not a placeholder
    CHECK(e["se_a"].get<double>() < 0.05);
  }
  CHECK(std::find(c["differs"].begin(), c["differs"].end(), "rs") != c["differs"].end());
  // The load profile is the same (uniform) for both: no verdict there may claim a difference.
  CHECK(c["summary"]["load.entropy"]["verdict"] == "same");
  CHECK(c["notes"].size() == 1);  // only the one-pair note
  CHECK(c["notes"][0].get<std::string>() == moetb::kOnePairNote);

  const json same = compare_traces(strong, strong);
  CHECK(same["differs"].empty());
  for (auto it = same["summary"].begin(); it != same["summary"].end(); ++it) {
    INFO(it.key());
    if (it.value()["a"].is_null()) continue;  // undefined on both sides (ne.10 with k = 4 and alpha 0.8 is not)
    CHECK(it.value()["verdict"] == "same");
    CHECK(it.value()["delta"].get<double>() == 0.0);
    CHECK(it.value()["se_delta"].get<double>() == 0.0);
  }
  for (const auto& s : same["saturation"]) CHECK(s.get<double>() == 1.0);
}

TEST_CASE("compare: a tolerance above every difference makes everything the same; zero tol leaves the noise test",
          "[metrics]") {
  const TraceData a = moetb::simulate_trace(planted(0.8)), b = moetb::simulate_trace(planted(0.7));
  const auto ma = metrics_with_blocks(a, 8), mb = metrics_with_blocks(b, 8);
  moetb::CompareOptions o;
  o.verdicts = true;
  o.tol = 1e9;
  const json loose = moetb::compare_json(ma, mb, {}, o);
  CHECK(loose["differs"].empty());
  CHECK(loose["criterion"]["blocks"] == 8);
  o.tol = 0;
  const json strict = moetb::compare_json(ma, mb, {}, o);
  const json& rs = strict["summary"]["rs"];
  CHECK(rs["threshold"].get<double>() == Approx(2 * rs["se_delta"].get<double>()));
  CHECK(rs["verdict"] == "differs");
  // Without replicates the threshold is the floor alone, and the output says so.
  o.tol = 0.01;
  const json no_se = moetb::compare_json(metrics_with_blocks(a, 0), metrics_with_blocks(b, 0), {}, o);
  CHECK(no_se["criterion"]["blocks"] == 0);
  CHECK(no_se["summary"]["rs"]["se_delta"].is_null());
  CHECK(no_se["summary"]["rs"]["threshold"].get<double>() == 0.01);
  CHECK(no_se["notes"].size() == 2);  // no jackknife, and the one-pair note
  // Without verdicts the document keeps the plain shape.
  CHECK(moetb::compare_json(ma, mb, {})["summary"]["rs"].size() == 3);
}

TEST_CASE("compare: models with different layer, expert and top-k counts compare on what is comparable", "[metrics]") {
  const TraceData a = moetb::simulate_trace(planted(0.8, 4, 64, 4));
  const TraceData b = moetb::simulate_trace(planted(0.8, 2, 32, 2));
  CHECK_FALSE(moetb::saturation_skip_reason(a, b).empty());
  const TraceData fewer_layers = moetb::simulate_trace(planted(0.8, 3, 64, 4));
  CHECK(ttu::contains(moetb::saturation_skip_reason(a, fewer_layers), "layers"));
  const json c = compare_traces(a, b);
  CHECK(c["saturation"].empty());
  CHECK(c["a"]["layers"] == 4);
  CHECK(c["b"]["layers"] == 2);
  CHECK(c["notes"].size() == 3);  // layers averaged, top-k, the one-pair note
  // Same alpha on the same text: the normalised specialization metrics agree.
  for (const char* key : {"rs", "di"}) {
    INFO(key);
    CHECK(c["summary"][key]["verdict"] == "same");
  }
  // Counts that scale with E are not compared.
  for (const char* key : {"load.max_vio", "load.dead_experts"}) {
    INFO(key);
    CHECK(c["summary"][key]["verdict"].is_null());
    CHECK(ttu::contains(c["summary"][key]["note"].get<std::string>(), "experts"));
    CHECK(std::find(c["differs"].begin(), c["differs"].end(), key) == c["differs"].end());
  }
  // NE(2) depends on k: k = 4 vs k = 2 gives a real difference.
  CHECK(c["summary"]["ne.2"]["verdict"] == "differs");
}

TEST_CASE("compare: the token check names the first differing token; unlabelled traces are exempt", "[metrics]") {
  const TraceData a = moetb::simulate_trace(planted(0.8));
  TraceData b = moetb::simulate_trace(planted(0.4));
  CHECK(moetb::check_same_tokens(a, b).tokens == 16384);
  auto error_of = [&](const TraceData& x) {
    try {
      moetb::check_same_tokens(a, x);
    } catch (const moetb::TraceError& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  TraceData other = b;
  other.token_ids[100] += 1;
  CHECK(ttu::contains(error_of(other), "token 100 "));
  CHECK(ttu::contains(error_of(other), "token id"));
  other = b;
  other.positions[5] = 0;
  CHECK(ttu::contains(error_of(other), "position"));
  other = b;
  other.domain_ids[7] = (other.domain_ids[7] + 1) % 4;
  CHECK(ttu::contains(error_of(other), "domain id"));
  const TraceData shorter = without_tokens(b, [](std::size_t t) { return t >= 16000; });
  CHECK(ttu::contains(error_of(shorter), "different numbers of tokens"));
  other = b;
  std::fill(other.domain_ids.begin(), other.domain_ids.end(), -1);  // an export without labels
  const moetb::TokenCheck ok = moetb::check_same_tokens(a, other);
  CHECK(ok.labelled_a);
  CHECK_FALSE(ok.labelled_b);
}

TEST_CASE("jackknife replicates equal the metrics recomputed without the left-out tokens", "[metrics]") {
  SimConfig cfg = planted(0.6, 2, 16, 2);
  cfg.n_tokens = 3001;  // blocks of unequal size
  cfg.n_domains = 3;
  cfg.vocab_per_domain = 40;
  cfg.unlabeled = 0.1;
  cfg.load_profile = "zipf";
  for (const int32_t shift : {0, -1000}) {  // dense, then sparse (negative ids) RSS tables
    INFO("token id shift " << shift);
    TraceData tr = moetb::simulate_trace(cfg);
    for (auto& v : tr.token_ids) v += shift;
    const int blocks = 4;
    const auto m = metrics_with_blocks(tr, blocks);
    REQUIRE(m.jackknife_blocks == blocks);
    const auto n = static_cast<int64_t>(tr.token_ids.size());
    for (int b = 0; b < blocks; ++b) {
      INFO("block " << b);
      const int64_t begin = b * n / blocks, end = (b + 1) * n / blocks;
      const TraceData rest = without_tokens(tr, [&](std::size_t t) {
        return static_cast<int64_t>(t) >= begin && static_cast<int64_t>(t) < end;
      });
      const TraceData other_ids = without_tokens(tr, [&](std::size_t t) {
        return moetb::RssCounter::id_group(tr.token_ids[t], blocks) == static_cast<std::size_t>(b);
      });
      const auto mr = metrics_with_blocks(rest, 0), mi = metrics_with_blocks(other_ids, 0);
      for (std::size_t l = 0; l < m.layers.size(); ++l) {
        const moetb::LayerMetrics& rep = m.layers[l].replicates.at(static_cast<std::size_t>(b));
        CHECK(*rep.rs == Approx(*mr.layers[l].rs).margin(1e-12));
        CHECK(*rep.ner == Approx(*mr.layers[l].ner).margin(1e-12));
        CHECK(*rep.di == Approx(*mr.layers[l].di).margin(1e-12));
        CHECK(*rep.load.cv == Approx(*mr.layers[l].load.cv).margin(1e-12));
        CHECK(*rep.purity->purity == Approx(*mr.layers[l].purity->purity).margin(1e-12));
        CHECK(*rep.rss == Approx(*mi.layers[l].rss).margin(1e-12));
        CHECK(*rep.rs != Approx(*m.layers[l].rs).margin(1e-12));  // a block really was left out
      }
    }
  }
}

TEST_CASE("jackknife standard error of a proportion matches the binomial closed form", "[metrics]") {
  // k = 1, one layer, no stiffness or span reuse: purity_ids is a proportion of independent
  // tokens with p = alpha + (1 - alpha) * |G| / E, so its standard error is sqrt(p (1 - p) / T).
  SimConfig cfg = planted(0.5, 1, 64, 1);
  cfg.beta = cfg.gamma = 0;
  cfg.n_tokens = 65536;
  const TraceData tr = moetb::simulate_trace(cfg);
  const json c = compare_traces(tr, tr);
  const double p = 0.5 + 0.5 * 16.0 / 64.0;
  const double se = std::sqrt(p * (1 - p) / 65536.0);
  const double se_jk = c["summary"]["purity_ids"]["se_a"].get<double>();
  CHECK(c["summary"]["purity_ids"]["a"].get<double>() == Approx(p).margin(4 * se));
  CHECK(se_jk > 0.6 * se);  // 16 blocks: the estimate itself varies by about 18%
  CHECK(se_jk < 1.5 * se);
}

TEST_CASE("cli: compare two models' traces: verdicts, table order, notes, errors", "[cli]") {
  Cli cli;
  cli.trace("A.safetensors", planted(0.8));
  cli.trace("B.safetensors", planted(0.4));
  cli.trace("C.safetensors", planted(0.8, 3, 32, 2));
  SimConfig other_text = planted(0.8);
  other_text.seed = 8;
  cli.trace("X.safetensors", other_text);

  const ctu::Result r = cli.run("compare A.safetensors B.safetensors --json");
  REQUIRE(r.rc == 0);
  const json j = json::parse(r.out);
  CHECK(j["summary"]["rs"]["verdict"] == "differs");
  CHECK(j["saturation"].size() == 2);

  const ctu::Result table = cli.run("compare A.safetensors B.safetensors");
  REQUIRE(table.rc == 0);
  // Differing metrics come first: the first "same" row follows the last "differs" row.
  const auto last_differs = table.out.rfind("  differs\n");
  const auto first_same = table.out.find("  same\n");
  REQUIRE(last_differs != std::string::npos);
  REQUIRE(first_same != std::string::npos);
  CHECK(last_differs < first_same);
  CHECK(ttu::contains(table.out, "metric(s) differ"));

  const ctu::Result models = cli.run("compare A.safetensors C.safetensors --json");
  REQUIRE(models.rc == 0);
  const json m = json::parse(models.out);
  CHECK(m["saturation"].empty());
  CHECK(ttu::contains(m["notes"][0].get<std::string>(), "saturation skipped"));
  CHECK(ttu::contains(cli.run("compare A.safetensors C.safetensors").out, "note: saturation skipped"));

  const ctu::Result bad = cli.run("compare A.safetensors X.safetensors -o out.json");
  CHECK(bad.rc != 0);
  CHECK(ctu::one_line(bad.err));
  CHECK(bad.err.rfind("moetb compare: error: ", 0) == 0);
  CHECK(ttu::contains(bad.err, "same tokens"));
  CHECK(bad.out.empty());
  CHECK_FALSE(ttu::fs::exists(cli.work.file("out.json")));
  for (const char* args : {"--tol -1", "--blocks 1", "--tol nan"}) {
    const ctu::Result e = cli.run(std::string("compare A.safetensors B.safetensors -o out.json ") + args);
    INFO(args << ": " << e.err);
    CHECK(e.rc != 0);
    CHECK(ctu::one_line(e.err));
    CHECK_FALSE(ttu::fs::exists(cli.work.file("out.json")));
  }
}

TEST_CASE("cli: metrics --per-domain gives RS_d, entropy and top experts per layer and domain", "[cli]") {
  Cli cli;
  SimConfig cfg = planted(1.0, 4, 64, 4);  // disjoint groups of 16 experts, uniform inside
  cfg.beta = cfg.gamma = 0;
  cli.trace("T.safetensors", cfg);
  const ctu::Result plain = cli.run("metrics T.safetensors --json");
  REQUIRE(plain.rc == 0);
  CHECK_FALSE(json::parse(plain.out)["per_domain"]["domain0"].contains("layers"));  // unchanged without the option

  const ctu::Result r = cli.run("metrics T.safetensors --json --per-domain --top 3 --layers 0-1,3");
  REQUIRE(r.rc == 0);
  const json j = json::parse(r.out);
  const auto groups = moetb::PlantedSimulator(cfg).meta().reference_groups.value();
  REQUIRE(j["per_domain"].size() == 4);
  for (int d = 0; d < 4; ++d) {
    const json& pd = j["per_domain"]["domain" + std::to_string(d)];
    INFO("domain " << d);
    CHECK(pd["tokens"].is_number());  // the spec's keys stay
    CHECK(pd["entropy"].get<double>() == Approx(std::log(16.0) / std::log(64.0)).margin(0.01));
    REQUIRE(pd["layers"].size() == 3);
    CHECK(pd["layers"][2]["layer"] == 3);
    for (const auto& row : pd["layers"]) {
      CHECK(row["rs"].get<double>() == Approx(1.0));
      CHECK(row["assignments"].get<int64_t>() > 0);
      REQUIRE(row["top_experts"].size() == 3);
      double last = 1.0;
      for (const auto& t : row["top_experts"]) {
        const int e = t[0].get<int>();
        CHECK(std::find(groups[d].begin(), groups[d].end(), e) != groups[d].end());
        CHECK(t[1].get<double>() <= last);
        CHECK(t[1].get<double>() == Approx(1.0 / 16).margin(0.02));
        last = t[1].get<double>();
      }
    }
  }
  const ctu::Result table = cli.run("metrics T.safetensors --per-domain --layers 2");
  REQUIRE(table.rc == 0);
  CHECK(ttu::contains(table.out, "per domain and layer"));
  CHECK(ttu::contains(table.out, "domain3"));
  const ctu::Result bad = cli.run("metrics T.safetensors --per-domain --top 0 -o out.txt");
  CHECK(bad.rc != 0);
  CHECK(ctu::one_line(bad.err));
  CHECK(ttu::contains(bad.err, "--top"));
  CHECK_FALSE(ttu::fs::exists(cli.work.file("out.txt")));
}

TEST_CASE("streaming a large shard in chunks gives the numbers of small shards and right token indices", "[trace]") {
  // 600,000 tokens: one file is streamed in chunks of 2^18 tokens, shards of 100,000 are not cut.
  SimConfig cfg = planted(0.6, 2, 16, 2);
  cfg.n_tokens = 600000;
  cfg.vocab_per_domain = 4096;
  ttu::TempDir dir("chunks");
  moetb::SimOutput one, sharded;
  one.path = dir.file("one.safetensors");
  sharded.path = dir.file("shards");
  sharded.shard_tokens = 100000;
  moetb::simulate_to_disk(cfg, one);
  moetb::simulate_to_disk(cfg, sharded);
  const json a = ttu::metrics_json(moetb::Trace({one.path})), b = ttu::metrics_json(moetb::Trace({sharded.path}));
  CHECK(a == b);
  CHECK(a["trace"]["tokens"] == 600000);
  CHECK(a["summary"]["ne"]["10"].is_number());

  // An expert id out of range in the third chunk is reported at its index in the file.
  TraceData tr = moetb::simulate_trace(cfg);
  tr.experts[1][2 * 590001 + 1] = 99;
  std::string message = "<no error>";
  try {
    (void)ttu::metrics_json(tr);
  } catch (const moetb::TraceError& e) {
    message = e.what();
  }
  INFO(message);
  CHECK(ttu::contains(message, "layers.1.experts"));
  CHECK(ttu::contains(message, "at token 590001 slot 1"));
}
