// `moetb demo`: every demo's embedded spec parses and expands to the runs it describes; the
// listing and the unknown-name error; the training-log figures and the findings builders
// (numbers in, numbers out; a failed run says n/a rather than inventing a comparison); and
// one demo end to end through the real binary with the stand-in trainer
// (fixtures/fake_moetb_train.sh): plan, run, resume, table, findings, report or its warning.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <set>

#include "demos/demos.h"
#include "sweeps/sweep_spec.h"
#include "tests/core/cli_test_util.h"
#include "tests/core/trace_test_util.h"

namespace fs = std::filesystem;
using namespace moetb::sweeps;
using namespace moetb::demos;

namespace {

const std::string kFake = std::string(MOETB_TEST_FIXTURES) + "/fake_moetb_train.sh";

std::string value_of(const PlannedRun& run, const std::string& key) {
  const auto it = run.config.find(key);
  return it == run.config.end() ? "" : it->second.display();
}

// A results table holding the demo's runs: per setting (plan order), one map of values per seed
// (fewer maps than seeds: the later seeds have no row), and one status per setting.
ResultsTable table_for(const Demo& demo, const std::vector<std::vector<std::map<std::string, double>>>& values,
                       const std::vector<std::string>& status) {
  ResultsTable t;
  const auto runs = expand(parse_spec(demo.spec, demo.name));
  const std::size_t n_seeds = parse_spec(demo.spec, demo.name).seeds.size();
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const std::size_t label = i / n_seeds, seed = i % n_seeds;
    if (label >= values.size() || seed >= values[label].size()) continue;
    ResultRow row;
    row.entry.id = runs[i].id;
    row.entry.index = static_cast<int64_t>(i);
    row.entry.seed = runs[i].seed;
    row.status = status[label];
    if (status[label] == "ok") row.values = values[label][seed];
    else row.error = "planted failure";
    for (const auto& [k, v] : values[label][seed])
      if (std::find(t.columns.begin(), t.columns.end(), k) == t.columns.end()) t.columns.push_back(k);
    t.rows.push_back(row);
  }
  return t;
}

// The same values for every seed of a setting, plus a per-seed offset on one column.
std::vector<std::map<std::string, double>> seeds_of(const std::map<std::string, double>& v, const std::string& column = "",
                                                    const std::vector<double>& offsets = {0, 0, 0, 0, 0}) {
  std::vector<std::map<std::string, double>> out;
  for (double o : offsets) {
    auto m = v;
    if (!column.empty()) m[column] += o;
    out.push_back(m);
  }
  return out;
}

std::string joined(const DemoFindings& f) {
  std::string s;
  for (const auto& l : f.look_for) s += l + "\n";
  return s + f.meaning;
}

std::size_t count_lines(const std::string& path) {
  if (!fs::exists(path)) return 0;
  const std::string s = ttu::read_bytes(path);
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

}  // namespace

TEST_CASE("demos: every spec parses and expands to the runs its labels describe", "[sweeps]") {
  const auto& demos = demo_catalogue();
  std::vector<std::string> names;
  for (const auto& d : demos) names.push_back(d.name);
  CHECK(names == std::vector<std::string>{"collapse", "scope", "capacity", "oracle", "expert-choice"});
  std::map<std::string, std::vector<PlannedRun>> runs;
  for (const auto& d : demos) {
    INFO(d.name);
    const SweepSpec spec = parse_spec(d.spec, d.name);
    CHECK(spec.seeds == std::vector<int64_t>{1, 2, 3, 4, 5});  // claims are paired by seed
    CHECK(spec.has_datagen);  // each demo generates its own (small) dataset
    REQUIRE(spec.datagen.count("train_tokens") == 1);
    CHECK(spec.datagen.at("train_tokens").display() == "400000");
    CHECK(spec.datagen.count("packing") == (d.name == "scope" ? 1u : 0u));
    if (d.name == "scope") CHECK(spec.datagen.at("packing").display() == "domain");
    CHECK(spec.name == "demo-" + d.name);
    const auto all = expand(spec);
    REQUIRE(all.size() == d.run_labels.size() * spec.seeds.size());
    for (std::size_t i = 0; i < all.size(); i += spec.seeds.size()) runs[d.name].push_back(all[i]);  // seed 1 of each setting
    CHECK((d.run_labels.size() == 2 || d.run_labels.size() == 3));
    CHECK_FALSE(d.summary.empty());
    CHECK(d.summary.find('\n') == std::string::npos);
    CHECK(d.findings != nullptr);
    for (const auto& c : d.columns) CHECK_FALSE(demo_column_help(c).empty());
    for (const auto& r : all) {  // sized to finish in 2-3 minutes on two cores
      CHECK(value_of(r, "train.steps") == (d.name == "scope" || d.name == "oracle" ? "500" : "600"));
      CHECK(std::stoi(value_of(r, "eval.every")) * 4 == std::stoi(value_of(r, "train.steps")));  // 4 evaluations
    }
  }
  const auto& collapse = runs["collapse"];
  CHECK(value_of(collapse[0], "router.balance_coef") == "0.0");
  CHECK(value_of(collapse[1], "router.balance_coef") == "0.01");
  CHECK(value_of(collapse[0], "router.name") == "topk");
  const auto& scope = runs["scope"];
  CHECK(value_of(scope[0], "router.balance_scope") == "micro_batch");
  CHECK(value_of(scope[1], "router.balance_scope") == "global_batch");
  for (const auto& r : scope) {
    CHECK(value_of(r, "train.accum_steps") == "4");  // else the two scopes are the same loss
    CHECK(value_of(r, "train.micro_batch") == "2");
  }
  const auto& cap = runs["capacity"];
  CHECK(value_of(cap[0], "router.capacity_factor") == "1.0");
  CHECK(value_of(cap[1], "router.capacity_factor") == "0.0");
  const auto& oracle = runs["oracle"];
  CHECK(value_of(oracle[0], "router.name") == "oracle");
  CHECK(value_of(oracle[1], "router.name") == "topk");
  CHECK(value_of(oracle[2], "router.name") == "random");
  const auto& ec = runs["expert-choice"];
  CHECK(value_of(ec[0], "router.name") == "topk");
  CHECK(value_of(ec[1], "router.name") == "expert_choice");
  // Apart from their axis, the runs of a demo share every key (same data, same seed).
  for (const auto& [name, rs] : runs) {
    INFO(name);
    std::set<std::string> keys;
    for (const auto& [k, v] : rs[0].config) keys.insert(k);
    for (const auto& r : rs) {
      std::set<std::string> other;
      for (const auto& [k, v] : r.config) other.insert(k);
      CHECK(other == keys);
      for (const auto& k : keys)
        if (k.rfind("model.", 0) == 0 || k.rfind("train.", 0) == 0) CHECK(value_of(r, k) == value_of(rs[0], k));
    }
  }
  CHECK_THROWS_WITH(find_demo("nope"), Catch::Contains("collapse, scope, capacity, oracle, expert-choice"));
}

TEST_CASE("demos: the training-log figures are the means over the last steps", "[sweeps]") {
  ttu::TempDir dir("demo-log");
  const std::string log = dir.file("train_log.jsonl");
  // E = 4: violation = 4 * max_share - 1. Three steps; the last two count with tail = 2.
  ttu::write_bytes(log,
                   R"({"step":1,"load":[{"max_share":0.5,"min_share":0.0,"violation":1.0,"dropped_fraction":0.5}],"max_load_violation":1.0,"aux_terms":{"dropped_fraction":0.5}})"
                   "\n"
                   R"({"step":2,"load":[{"max_share":0.25,"min_share":0.25,"violation":0.0,"dropped_fraction":0.0},{"max_share":0.375,"min_share":0.125,"violation":0.5,"dropped_fraction":0.2}],"max_load_violation":0.5,"aux_terms":{"dropped_fraction":0.1}})"
                   "\n"
                   R"({"eval":{"loss_bits":3.0},"step":2})"
                   "\n"
                   R"({"step":3,"load":[{"max_share":0.5,"min_share":0.05,"violation":1.0,"dropped_fraction":0.3},{"max_share":0.25,"min_share":0.25,"violation":0.0,"dropped_fraction":0.1}],"max_load_violation":1.0})"
                   "\n");
  const auto x = train_log_extras(log, 2);
  CHECK(x.at("train.max_vio") == Approx(0.75));
  CHECK(x.at("train.min_load") == Approx((0.5 + 0.2) / 2));  // worst layer's min share * E, averaged
  CHECK(x.at("train.dropped") == Approx((0.1 + 0.2) / 2));   // aux_terms when logged, else the layers' mean
  CHECK(train_log_extras(dir.file("missing.jsonl")).empty());
}

TEST_CASE("demos: the claim builder states an effect only when its paired interval excludes zero", "[sweeps]") {
  // Synthetic results, two settings over five seeds: an effect (b - a = 0.2 +- 0.038) and none.
  const std::vector<double> base = {3.0, 3.1, 2.9, 3.05, 2.95};
  auto runs_with = [&](const std::vector<double>& diff, std::vector<ResultRow>& store) {
    store.clear();
    store.reserve(10);
    DemoRuns r;
    r.labels = {"A", "B"};
    r.seeds = {1, 2, 3, 4, 5};
    r.rows.assign(2, std::vector<const ResultRow*>(5, nullptr));
    for (std::size_t s = 0; s < 5; ++s)
      for (std::size_t l = 0; l < 2; ++l) {
        ResultRow row;
        row.status = "ok";
        row.values["val_bits"] = base[s] + (l == 1 ? diff[s] : 0.0);
        store.push_back(row);
        r.rows[l][s] = &store.back();
      }
    return r;
  };
  std::vector<ResultRow> store;
  const DemoRuns real = runs_with({0.2, 0.25, 0.15, 0.22, 0.18}, store);
  const Effect e = effect(real, 0, 1, "val_bits");
  CHECK(e.real());
  CHECK(e.higher_b());
  CHECK(e.diff.n == 5);
  CHECK(e.diff.ci95 == Approx(0.0472812).epsilon(1e-5));
  const std::string yes = claim(real, 0, 1, "val_bits", "Loss", "a", "b");
  CHECK(yes == "Loss: 3 ± 0.079 for a against 3.2 ± 0.12 for b (mean ± sd over 5 seeds); higher for b in every seed: paired "
               "difference +0.2 [+0.153, +0.247] (b minus a, 95% t interval over 5 seeds), larger than the seed-to-seed variation.");
  CHECK_FALSE(ttu::contains(yes, "noise"));

  std::vector<ResultRow> store2;
  const DemoRuns none = runs_with({0.3, -0.2, 0.1, -0.25, 0.15}, store2);
  CHECK_FALSE(effect(none, 0, 1, "val_bits").real());
  const std::string no = claim(none, 0, 1, "val_bits", "Loss", "a", "b");
  CHECK(no == "Loss: 3 ± 0.079 for a against 3.02 ± 0.19 for b (mean ± sd over 5 seeds); within seed noise: paired difference "
              "+0.02 [-0.273, +0.313] (b minus a, 95% t interval over 5 seeds) includes zero; the same direction in 3 of 5 seeds.");
  CHECK_FALSE(ttu::contains(no, "higher for"));

  // One seed: no interval, never an effect. A missing seed drops out of the pairs.
  DemoRuns one = real;
  for (auto& l : one.rows) l = {l[0], nullptr, nullptr, nullptr, nullptr};
  CHECK(ttu::contains(claim(one, 0, 1, "val_bits", "Loss", "a", "b"), "one seed, so no interval: this difference cannot be told from seed noise."));
  DemoRuns four = real;
  four.rows[1][2] = nullptr;
  CHECK(effect(four, 0, 1, "val_bits").diff.n == 4);
  CHECK(effect(four, 0, 1, "val_bits").a.n == 5);

  // The demos' verdicts follow the same test: scope's RS effect, and no effect.
  const Demo& scope = find_demo("scope");
  const std::vector<double> rs_noise = {0.05, -0.04, 0.03, -0.02, 0.01};
  const ResultsTable with = table_for(scope, {seeds_of({{"rs", 0.10}}, "rs", rs_noise), seeds_of({{"rs", 0.20}}, "rs", rs_noise)}, {"ok", "ok"});
  const DemoFindings fw = demo_findings(scope, with);
  CHECK(ttu::contains(fw.meaning, "the wider scope specialized more in every seed"));
  CHECK(ttu::contains(fw.look_for[0], "higher for global-batch balancing in every seed"));
  const ResultsTable without = table_for(scope, {seeds_of({{"rs", 0.15}}, "rs", rs_noise), seeds_of({{"rs", 0.15}}, "rs", {0.01, 0.02, -0.05, 0.04, -0.03})},
                                         {"ok", "ok"});
  const DemoFindings fn = demo_findings(scope, without);
  CHECK(ttu::contains(fn.meaning, "within seed noise at 5 seeds"));
  CHECK_FALSE(ttu::contains(fn.meaning, "specialized more"));
  CHECK(ttu::contains(fn.look_for[0], "within seed noise"));
}

TEST_CASE("demos: the findings carry the measured numbers and say n/a for a failed run", "[sweeps]") {
  const Demo& ec = find_demo("expert-choice");
  const ResultsTable t = table_for(ec,
                                   {seeds_of({{"val_bits", 3.575}, {"load.max_vio", 0.5748}, {"load.utilization", 0.8807}, {"rs", 0.2536}}),
                                    seeds_of({{"val_bits", 3.395}, {"load.max_vio", 0.0}, {"load.utilization", 1.0}, {"rs", 0.0761},
                                              {"eval.experts_max", 5}, {"eval.experts_mean", 2.0}, {"eval.no_expert", 0.0046}},
                                             "val_bits", {0.01, -0.01, 0.02, 0.0, -0.02})},
                                   {"ok", "ok"});
  const std::string f = joined(demo_findings(ec, t));
  CHECK(ttu::contains(f, "max_vio 0 and utilization 1 (perfect"));
  CHECK(ttu::contains(f, "max_vio 0.575"));
  CHECK(ttu::contains(f, "from 0 to 5 (mean 2)"));
  CHECK(ttu::contains(f, "0.5% of the held-out tokens got no expert"));
  CHECK(ttu::contains(f, "higher for top-k in every seed"));
  CHECK(ttu::contains(f, "information a causal model cannot have"));  // only said when EC's loss is lower beyond noise
  CHECK(ttu::contains(f, "not causal"));
  const std::string table = demo_table(ec, t);
  CHECK(ttu::contains(table, "expert choice"));
  CHECK(ttu::contains(table, "3.4 ± 0.016"));  // 3.395 + {.01, -.01, .02, 0, -.02}: sd 0.0158
  CHECK(ttu::contains(table, "mean ± sd over the n seeds"));

  const Demo& oracle = find_demo("oracle");
  const ResultsTable t2 = table_for(oracle, {seeds_of({{"rs", 1.0}, {"val_bits", 3.5}}), seeds_of({{"rs", 0.25}, {"val_bits", 3.6}}),
                                             seeds_of({{"rs", 0.0}})},
                                    {"ok", "ok", "failed"});
  const DemoFindings f2 = demo_findings(oracle, t2);
  const std::string s2 = joined(f2);
  CHECK(ttu::contains(f2.look_for.front(), "'random' did not finish for 5 of 5 seeds (seed 1: failed: planted failure"));
  CHECK(ttu::contains(s2, "random n/a"));
  CHECK_FALSE(ttu::contains(s2, "of the way from random"));  // no fraction without the floor
  CHECK(ttu::contains(demo_table(oracle, t2), "failed"));
  const std::string html = demo_intro_html(oracle, f2);
  CHECK(ttu::contains(html, "<li>The run 'random' did not finish"));
  CHECK_FALSE(ttu::contains(html, "<script"));

  const ResultsTable t3 = table_for(oracle, {seeds_of({{"rs", 1.0}}), seeds_of({{"rs", 0.25}}), seeds_of({{"rs", 0.0}})}, {"ok", "ok", "ok"});
  CHECK(ttu::contains(joined(demo_findings(oracle, t3)), "covers 25% of the way from random to the oracle"));
  // Two of five seeds finished for the oracle: said, and its comparisons use those two.
  const ResultsTable t4 = table_for(oracle, {{{{"rs", 1.0}}, {{"rs", 1.0}}}, seeds_of({{"rs", 0.25}}), seeds_of({{"rs", 0.0}})}, {"ok", "ok", "ok"});
  CHECK(ttu::contains(demo_findings(oracle, t4).look_for.front(), "'oracle' did not finish for 3 of 5 seeds (seed 3: missing"));
}

TEST_CASE("demos: moetb demo lists the five demos; an unknown name is one line and exit 1", "[sweeps]") {
  ctu::Cli cli("demo-list");
  const ctu::Result r = cli.run("demo");
  CHECK(r.rc == 0);
  for (const auto& d : demo_catalogue()) {
    CHECK(ttu::contains(r.out, "  " + d.name + " "));
    CHECK(ttu::contains(r.out, d.summary));
  }
  const ctu::Result bad = cli.run("demo nope");
  CHECK(bad.rc == 1);
  CHECK(ctu::one_line(bad.err));
  CHECK(ttu::contains(bad.err, "moetb demo: error: unknown demo 'nope'"));
  CHECK(ttu::contains(bad.err, "expert-choice"));
  CHECK_FALSE(fs::exists(cli.work.file("out")));
}

TEST_CASE("demos: a demo end to end with the stand-in trainer, then resumed and forced", "[sweeps]") {
  ctu::Cli cli("demo-run");
  const ctu::Result r = cli.run("demo collapse --out d --moetb " + kFake);
  INFO(r.out << r.err);
  REQUIRE(r.rc == 0);
  CHECK(ttu::contains(r.out, "moetb demo collapse: "));
  CHECK(ttu::contains(r.out, "no balancing (coef 0)"));
  CHECK(ttu::contains(r.out, "Switch loss (coef 0.01)"));
  CHECK(ttu::contains(r.out, "load.max_vio"));
  CHECK(ttu::contains(r.out, "What to look for:"));
  // The stand-in's loss is 2 in every run: no difference, said as within seed noise.
  CHECK(ttu::contains(r.out, "Loss (val_bits, bits/token): 2 ± 0 for no balancing against 2 ± 0 for the Switch loss"));
  CHECK(ttu::contains(r.out, "within seed noise"));
  CHECK(ttu::contains(r.out, "10 runs trained now, 0 already complete"));
  // The dataset came from this moetb (the stand-in cannot generate one), and the sweep is collected.
  CHECK(fs::exists(cli.work.file("d/demo.toml")));
  CHECK(fs::exists(cli.work.file("d/summary.md")));
  CHECK(fs::exists(cli.work.file("d/results.csv")));
  bool has_data = false;
  for (const auto& e : fs::directory_iterator(cli.work.file("d")))
    has_data |= e.path().filename().string().rfind("data-", 0) == 0 && fs::exists(e.path() / "manifest.json");
  CHECK(has_data);
  // The report, or (while reports are not built) a warning and no file.
  const bool report = fs::exists(cli.work.file("d/report.html"));
  CHECK(ttu::contains(r.out, report ? "report: d/report.html" : "report: not written"));
  if (report) CHECK(ttu::contains(ttu::read_bytes(cli.work.file("d/report.html")), "What to look for"));
  else CHECK(ttu::contains(r.err, "moetb demo: warning: the report was not written"));

  // A rerun resumes: nothing is trained again.
  const auto plan = SweepDir(cli.work.file("d")).load();
  REQUIRE(plan.runs.size() == 10);
  const std::string calls0 = cli.work.file("d/runs/" + plan.runs[0].id + "/calls");
  CHECK(count_lines(calls0) == 1);
  const ctu::Result again = cli.run("demo collapse --out d --moetb " + kFake);
  CHECK(again.rc == 0);
  CHECK(ttu::contains(again.out, "(resuming: finished runs are kept)"));
  CHECK(ttu::contains(again.out, "0 runs trained now, 10 already complete"));
  CHECK(count_lines(calls0) == 1);
  // --force starts over.
  const ctu::Result forced = cli.run("demo collapse --out d --force --moetb " + kFake);
  CHECK(forced.rc == 0);
  CHECK(ttu::contains(forced.out, "10 runs trained now"));
  CHECK(count_lines(calls0) == 1);  // a fresh folder: one call again
  // A folder that is not a demo's is refused, and left alone, even with --force.
  ttu::write_bytes(cli.work.file("mine.txt"), "keep");
  fs::create_directories(cli.work.file("other"));
  ttu::write_bytes(cli.work.file("other/notes.txt"), "keep");
  const ctu::Result refused = cli.run("demo collapse --out other --force --moetb " + kFake);
  CHECK(refused.rc == 1);
  CHECK(ctu::one_line(refused.err));
  CHECK(ttu::contains(refused.err, "not a demo folder"));
  CHECK(fs::exists(cli.work.file("other/notes.txt")));
}
