// The `moetb validate` scenarios as Catch2 tests: every planted check must pass, and
// the suite itself must be able to fail (a broken metric is caught).
// Also checks properties of the planted simulator the scenarios rely on.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "metrics/trace_metrics.h"
#include "oracle/planted_simulator.h"
#include "oracle/reference_groups.h"
#include "oracle/validation.h"

using namespace moetb;

TEST_CASE("every validation scenario passes", "[oracle][validation]") {
  for (const auto& scenario : validation_scenarios()) {
    SECTION(scenario.name) {
      const auto checks = scenario.run();
      REQUIRE_FALSE(checks.empty());
      for (const auto& c : checks) {
        INFO(c.scenario << " / " << c.metric << ": expected " << c.expected << ", measured "
                        << (c.measured ? std::to_string(*c.measured) : "null"));
        CHECK(c.pass);
      }
    }
  }
}

TEST_CASE("validation output reports failures", "[oracle][validation]") {
  std::vector<ValidationCheck> checks = {{"s", "m", "1 (exact)", 0.5, false}, {"s", "n", "0", 0.0, true}};
  const nlohmann::json j = validation_json(checks);
  CHECK(j["failed"] == 1);
  CHECK(j["passed"] == 1);
  CHECK(validation_table(checks).find("1 passed, 1 failed") != std::string::npos);
  CHECK_THROWS_AS(run_validation({"no-such-scenario"}), std::invalid_argument);
}

TEST_CASE("max_metric_difference sees differences, nulls and missing keys", "[oracle][validation]") {
  const nlohmann::json a = {{"x", 1.0}, {"y", {{"z", 2.0}}}, {"n", nullptr}};
  nlohmann::json b = a;
  CHECK(max_metric_difference(a, b, {}) == 0.0);
  b["y"]["z"] = 2.5;
  CHECK(max_metric_difference(a, b, {}) == Approx(0.5));
  CHECK(max_metric_difference(a, b, {".y."}) == 0.0);
  b = a;
  b["n"] = 0.0;
  CHECK(std::isinf(max_metric_difference(a, b, {})));
  b = a;
  b.erase("x");
  CHECK(std::isinf(max_metric_difference(a, b, {})));
}

TEST_CASE("reference groups are contiguous blocks with cyclic overlap", "[oracle]") {
  const auto g = make_reference_groups(8, 4, 1);
  REQUIRE(g.size() == 4);
  CHECK(g[0] == std::vector<int>{0, 1, 2});
  CHECK(g[3] == std::vector<int>{6, 7, 0});
  CHECK(make_reference_groups(10, 3, 0)[2] == std::vector<int>{6, 7, 8});  // expert 9 belongs to no group
  CHECK_THROWS_AS(make_reference_groups(4, 5, 0), std::invalid_argument);
  CHECK_THROWS_AS(make_reference_groups(8, 4, 7), std::invalid_argument);
}

TEST_CASE("reference groups reject a top_k larger than a group (an oracle cannot route outside it)", "[oracle]") {
  CHECK(make_reference_groups(8, 4, 0, 2).size() == 4);  // 2 experts per domain: top-2 fits
  CHECK(make_reference_groups(8, 4, 1, 3).size() == 4);  // 2 + 1 shared
  try {
    make_reference_groups(8, 4, 0, 3);
    FAIL("top_k 3 over groups of 2 was accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("top_k 3 exceeds the 2 experts of each domain group") != std::string::npos);
  }
  CHECK(make_reference_groups(8, 4, 0).size() == 4);  // no top_k: the planted simulator's groups, any k
}

TEST_CASE("planted routing honours alpha, shares and the unlabeled fraction", "[oracle]") {
  SimConfig c;
  c.n_experts = 16, c.top_k = 1, c.n_domains = 4, c.n_layers = 2, c.alpha = {0.0, 1.0};
  c.domain_shares = {1, 1, 1, 5}, c.unlabeled = 0.25, c.seq_len = 16, c.n_tokens = 1 << 15, c.seed = 3;
  const TraceData t = simulate_trace(c);
  const auto groups = *t.meta_data.reference_groups;
  int64_t in_group[2] = {0, 0}, labelled = 0, dom3 = 0;
  for (std::size_t i = 0; i < t.token_ids.size(); ++i) {
    const int d = t.token_ids[i] / c.vocab_per_domain;  // true domain from the disjoint vocabularies
    dom3 += d == 3;
    labelled += t.domain_ids[i] >= 0;
    if (t.domain_ids[i] >= 0) CHECK(t.domain_ids[i] == d);
    for (int l = 0; l < 2; ++l) {
      const int e = t.experts[l][i];
      in_group[l] += std::find(groups[d].begin(), groups[d].end(), e) != groups[d].end();
    }
  }
  const double n = static_cast<double>(t.token_ids.size());
  auto share = [&](int64_t count) { return static_cast<double>(count) / n; };
  CHECK(in_group[1] == static_cast<int64_t>(n));               // alpha = 1: always own group
  CHECK(share(in_group[0]) == Approx(0.25).margin(0.02));      // alpha = 0: 4 of 16 experts by chance
  CHECK(share(dom3) == Approx(5.0 / 8.0).margin(0.05));        // shares 1:1:1:5 (by sequence)
  CHECK(share(labelled) == Approx(0.75).margin(0.02));
}

TEST_CASE("planted traces are deterministic per seed", "[oracle]") {
  SimConfig c;
  c.n_tokens = 4096, c.beta = 0.3, c.gamma = 0.3, c.load_profile = "zipf";
  const TraceData a = simulate_trace(c), b = simulate_trace(c);
  CHECK(a.experts == b.experts);
  CHECK(a.token_ids == b.token_ids);
  c.seed = 2;
  CHECK(simulate_trace(c).experts != a.experts);
}

TEST_CASE("bad simulator configs are rejected with the field named", "[oracle]") {
  auto message = [](SimConfig c) {
    try {
      PlantedSimulator sim(c);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  SimConfig c;
  c.alpha = {1.5};
  CHECK(message(c).find("alpha") != std::string::npos);
  c = SimConfig{};
  c.top_k = 0;
  CHECK(message(c).find("top-k") != std::string::npos);
  c = SimConfig{};
  c.domain_shares = {1, 1};
  CHECK(message(c).find("shares") != std::string::npos);
  c = SimConfig{};
  c.domain_shares = {0, 0, 0, 0};
  CHECK(message(c).find("positive") != std::string::npos);
  c = SimConfig{};
  c.load_profile = "pareto";
  CHECK(message(c).find("load-profile") != std::string::npos);
  c = SimConfig{};
  c.n_domains = 100;
  CHECK(message(c).find("domains") != std::string::npos);
}
