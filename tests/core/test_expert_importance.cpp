// metrics/expert_selection.h and metrics/expert_importance.h: the fine-tune arms pick
// equal-size subsets (paths = moetb paths, least = the lowest counts, random = seeded by the
// draw), Spearman on hand-worked cases (ties get average ranks), and knockout_json's
// specialization, concentration and correlations on a two-expert example.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>
#include <stdexcept>

#include "metrics/expert_importance.h"
#include "metrics/expert_paths.h"
#include "metrics/expert_selection.h"
#include "reports/knockout_figures.h"

using namespace moetb;

namespace {
CountMatrix matrix(int domains, int64_t experts, std::vector<int64_t> c) {
  CountMatrix m;
  m.n_domains = domains;
  m.n_experts = experts;
  m.c = std::move(c);
  return m;
}
}  // namespace

TEST_CASE("fine-tune arms: paths, equal-size random and least, every expert", "[metrics]") {
  // domain 0 routes 50/30/15/5/0/0 over six experts; domain 1 the other way round.
  const CountMatrix c = matrix(2, 6, {50, 30, 15, 5, 0, 0, 0, 0, 5, 15, 30, 50});
  const std::vector<CountMatrix> layers = {c, c};
  const auto paths = select_finetune_experts(layers, 0, "paths", 0.75, 1, 0);
  REQUIRE(paths[0] == std::vector<int>{0, 1});
  REQUIRE(paths[0] == expert_path(c, 0, 0.75));
  REQUIRE(select_finetune_experts(layers, 0, "least", 0.75, 1, 0)[0] == std::vector<int>{4, 5});
  REQUIRE(select_finetune_experts(layers, 0, "experts", 0.75, 1, 0)[1].size() == 6);
  REQUIRE(select_finetune_experts(layers, 0, "full", 0.75, 1, 0)[1].size() == 6);
  const auto r1 = select_finetune_experts(layers, 0, "random", 0.75, 1, 7);
  REQUIRE(r1 == select_finetune_experts(layers, 0, "random", 0.75, 1, 7));  // seeded
  REQUIRE(r1[0].size() == 2);
  REQUIRE(r1[1].size() == 2);
  std::set<std::vector<int>> seen;
  for (uint64_t draw = 0; draw < 20; ++draw) seen.insert(select_finetune_experts(layers, 0, "random", 0.75, 1, draw)[0]);
  REQUIRE(seen.size() > 5);  // draws differ
  REQUIRE_THROWS_WITH(select_finetune_experts(layers, 0, "nope", 0.5, 1, 0), Catch::Contains("unknown arm 'nope'"));
  REQUIRE_THROWS_WITH(select_finetune_experts(layers, 0, "paths", 1.5, 1, 0), Catch::Contains("--tau"));
}

TEST_CASE("spearman: monotone, reversed, ties and degenerate input", "[metrics]") {
  REQUIRE(*spearman({1, 2, 3, 4}, {10, 20, 30, 1000}) == Approx(1.0));
  REQUIRE(*spearman({1, 2, 3, 4}, {4, 3, 2, 1}) == Approx(-1.0));
  // x ranks 1, 2.5, 2.5, 4; y ranks 1, 2, 3, 4: r = 4.5 / sqrt(4.5 * 5)
  REQUIRE(*spearman({1, 2, 2, 3}, {1, 2, 3, 4}) == Approx(4.5 / std::sqrt(4.5 * 5.0)));
  REQUIRE(!spearman({1, 2}, {1, 2}));
  REQUIRE(!spearman({1, 1, 1}, {1, 2, 3}));
}

TEST_CASE("knockout_json: specialization, concentration and the correlations", "[metrics]") {
  KnockoutLayer l;
  l.counts = matrix(2, 3, {90, 10, 0, 10, 90, 0});  // expert 2 idle
  l.loss_increase = {{0.5, 0.1}, {0.0, 0.3}, {0.0, 0.0}};
  const nlohmann::json j = knockout_json({l}, {"a", "b"}, {2.0, 3.0}, {100, 100});
  const auto& e0 = j["layers"][0]["experts"][0];
  REQUIRE(e0["specialization"].get<double>() == Approx(0.9));
  REQUIRE(e0["top_domain"] == "a");
  REQUIRE(e0["knockout_concentration"].get<double>() == Approx(0.5 / 0.6));
  REQUIRE(e0["p_d"]["a"].get<double>() == Approx(0.9));
  REQUIRE(e0["loss_increase_all_bits"].get<double>() == Approx(0.3));
  REQUIRE(j["layers"][0]["experts"][2]["specialization"].is_null());
  REQUIRE(j["correlation"]["cell"]["n"] == 6);
  REQUIRE(j["correlation"]["cell"]["spearman"].is_number());
  REQUIRE(j["correlation"]["expert"]["n"] == 2);
  REQUIRE(j["correlation"]["expert"]["spearman"].is_null());  // two points
}

TEST_CASE("knockout_figures: one heatmap per layer with the correlations; a foreign document is a note", "[reports]") {
  KnockoutLayer l;
  l.counts = matrix(2, 3, {90, 10, 0, 10, 90, 0});
  l.loss_increase = {{0.5, 0.1}, {0.0, 0.3}, {0.0, 0.0}};
  nlohmann::json j = knockout_json({l, l}, {"a", "b"}, {2.0, 3.0}, {100, 100});
  j["format"] = "moetb-knockout/1";
  const std::string html = moetb::reports::knockout_figures(j);
  std::size_t figures = 0;
  for (std::size_t at = html.find("chart heatmap knockout"); at != std::string::npos; at = html.find("chart heatmap knockout", at + 1))
    ++figures;
  REQUIRE(figures == 2);
  REQUIRE(html.find("Spearman") != std::string::npos);
  REQUIRE(moetb::reports::knockout_figures(nlohmann::json::object()).find("not a moetb-knockout/1") != std::string::npos);
}
