// Closed-form checks of the metrics of shared/spec/metrics.md on hand-built count matrices
// and traces: RS/DI/NER extremes, null rules, RSS, NE, load, Miller-Madow, purity, summary,
// the moetb-metrics/1 JSON schema and digits, expert paths, and trace comparison.
#include <catch2/catch.hpp>

#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "metrics/expert_paths.h"
#include "metrics/routing_metrics.h"
#include "metrics/trace_compare.h"
#include "metrics/trace_metrics.h"

namespace {

using nlohmann::json;
using moetb::CountMatrix;
using moetb::TraceData;
using Sets = std::vector<std::vector<int>>;  // one token's expert set per layer

CountMatrix cm(const std::vector<std::vector<int64_t>>& rows) {
  CountMatrix m;
  m.n_domains = static_cast<int>(rows.size());
  m.n_experts = static_cast<int64_t>(rows.at(0).size());
  for (const auto& r : rows) m.c.insert(m.c.end(), r.begin(), r.end());
  return m;
}

struct Tok {
  int32_t id, pos, dom;
  Sets sets;  // [layer] experts; empty = unrouted in that layer
};

// One slot more than the largest set per layer; slot 0 is always -1 padding.
TraceData build(int64_t E, const std::vector<Tok>& toks, std::vector<std::string> names = {}) {
  TraceData tr;
  tr.meta_data.num_experts = E;
  tr.meta_data.top_k = 2;
  tr.meta_data.domain_names = std::move(names);
  const std::size_t L = toks.at(0).sets.size();
  tr.k.assign(L, 1);
  for (const auto& t : toks)
    for (std::size_t l = 0; l < L; ++l) tr.k[l] = std::max<int64_t>(tr.k[l], static_cast<int64_t>(t.sets[l].size()) + 1);
  tr.experts.resize(L);
  for (const auto& t : toks) {
    tr.token_ids.push_back(t.id);
    tr.positions.push_back(t.pos);
    tr.domain_ids.push_back(t.dom);
    for (std::size_t l = 0; l < L; ++l) {
      std::vector<int32_t> slots(static_cast<std::size_t>(tr.k[l]), -1);
      for (std::size_t i = 0; i < t.sets[l].size(); ++i) slots[i + 1] = t.sets[l][i];
      tr.experts[l].insert(tr.experts[l].end(), slots.begin(), slots.end());
    }
  }
  return tr;
}

json metrics(const TraceData& tr, int groups = 8, std::optional<Sets> ref = std::nullopt) {
  moetb::MetricsOptions o;
  o.ne_groups = groups;
  o.threads = 1;
  o.reference_groups = std::move(ref);
  return moetb::metrics_to_json(moetb::compute_trace_metrics(tr, o));
}

std::set<std::string> keys(const json& j) {
  std::set<std::string> out;
  for (auto it = j.begin(); it != j.end(); ++it) out.insert(it.key());
  return out;
}

Approx near(double x) { return Approx(x).margin(1e-12); }
double xlogx(double x) { return x > 0 ? x * std::log(x) : 0.0; }

}  // namespace

TEST_CASE("RS = DI = NER = 0 when all domains route alike, however unbalanced the load", "[metrics][closed-form]") {
  const CountMatrix m = cm({{90, 9, 1, 0}, {900, 90, 10, 0}, {9, 0, 0, 0}});
  const CountMatrix same = cm({{90, 9, 1, 0}, {900, 90, 10, 0}, {180, 18, 2, 0}});
  const auto rs = moetb::routing_specialization(same);
  CHECK(*rs.rs == near(0));
  CHECK(*rs.rs_mm == near(0));
  for (const auto& d : rs.per_domain) CHECK(*d == near(0));
  CHECK(*moetb::domain_isolation(same).di == near(0));
  CHECK(*moetb::normalized_effective_rank(same) == near(0));
  CHECK(*moetb::routing_specialization(m).rs > 0.0);  // the third row differs
}

TEST_CASE("disjoint experts give RS = DI = NER = 1 for any shares", "[metrics][closed-form]") {
  const CountMatrix m = cm({{5, 3, 0, 0, 0, 0}, {0, 0, 7, 0, 0, 0}, {0, 0, 0, 2, 9, 1}});
  const auto rs = moetb::routing_specialization(m);
  CHECK(*rs.rs == near(1));
  for (const auto& d : rs.per_domain) CHECK(*d == near(1));
  // rs_mm = max(0, I - (B_DE - B_D - B_E + 1)/(2N)) / H(D) with I = H(D), B_DE = 6, B_D = 3,
  // B_E = 6, N = 27: the correction is negative, so rs_mm = 1 + (2/54)/H(D) > 1 (not capped).
  const double h = -(8.0 / 27 * std::log(8.0 / 27) + 7.0 / 27 * std::log(7.0 / 27) + 12.0 / 27 * std::log(12.0 / 27));
  CHECK(*rs.rs_mm == near(1.0 + (2.0 / 54) / h));
  const auto di = moetb::domain_isolation(m);
  CHECK(*di.di == near(1));
  CHECK(*di.pairs[0][2] == near(1));
  CHECK(*di.pairs[1][1] == near(0));
  CHECK(*moetb::normalized_effective_rank(m) == near(1));
}

TEST_CASE("one domain: RS = DI = NER = 0 and rs_per_domain null", "[metrics][closed-form]") {
  const auto rs = moetb::routing_specialization(cm({{4, 1, 0}}));
  CHECK(*rs.rs == 0.0);
  CHECK(*rs.rs_mm == 0.0);
  CHECK_FALSE(rs.per_domain[0]);
  const TraceData tr = build(3, {{1, 0, 0, {{0, 1}}}, {2, 1, 0, {{2}}}, {3, 2, -1, {{1}}}}, {"a", "b"});
  const json j = metrics(tr);
  const json& l = j["layers"][0];
  CHECK(l["rs"] == 0.0);
  CHECK(l["di"] == 0.0);
  CHECK(l["ner"] == 0.0);
  CHECK(l["rs_per_domain"] == json({{"a", nullptr}, {"b", nullptr}}));
  CHECK(l["di_pairs"] == json::parse("[[0.0, null], [null, null]]"));
  CHECK(j["per_domain"] == json::parse(R"({"a": {"rs": null, "tokens": 2}, "b": {"rs": null, "tokens": 0}})"));
}

TEST_CASE("no labelled tokens: null RS, DI, NER and purity, never NaN", "[metrics][closed-form]") {
  const CountMatrix empty = cm({{0, 0, 0}, {0, 0, 0}});
  CHECK_FALSE(moetb::routing_specialization(empty).rs);
  CHECK_FALSE(moetb::normalized_effective_rank(empty));
  CHECK_FALSE(moetb::domain_isolation(empty).di);
  CHECK_FALSE(moetb::purity_against(empty, {{0}, {1}}).purity);
  const TraceData tr = build(3, {{1, 0, -1, {{0, 1}}}, {2, 1, -1, {{2}}}});
  const json j = metrics(tr, 8, Sets{{0}, {1, 2}});
  for (const json* obj : {&j["layers"][0], &j["summary"]}) {
    for (const char* k : {"rs", "rs_mm", "ner", "di", "purity", "purity_ids", "purity_majority"}) {
      INFO(k);
      CHECK((*obj)[k].is_null());
    }
    CHECK((*obj)["load"]["utilization"].is_number());
  }
  CHECK(j["trace"]["domains"] == json::array());
  CHECK(j["layers"][0]["rs_per_domain"] == json::object());
  const std::string text = j.dump();
  CHECK(text.find("nan") == std::string::npos);
  CHECK(text.find("NaN") == std::string::npos);
}

TEST_CASE("RSS: null without repeats, 1 for fixed sets, 19/39 by hand, null at chance 1", "[metrics][closed-form]") {
  const TraceData distinct = build(4, {{1, 0, 0, {{0}}}, {2, 1, 0, {{1}}}, {3, 2, 0, {{0}}}});
  CHECK(metrics(distinct)["layers"][0]["rss"].is_null());
  // each id always gets the same set (set sizes differ between ids)
  const TraceData stiff = build(5, {{7, 0, 0, {{0, 1}}}, {8, 1, 0, {{2}}}, {9, 2, 1, {{3, 1, 4}}}, {8, 0, 1, {{2}}},
                                    {7, 1, 1, {{1, 0}}}, {9, 2, 0, {{4, 3, 1}}}, {8, 3, 0, {{2}}}});
  CHECK(metrics(stiff)["layers"][0]["rss"].get<double>() == near(1));
  // id 7: {0,1}, {0,2}, {0,1}; id 8 once. kbar = 7/4, O = 8 / (kbar 3 2) = 16/21, O_0 = kbar 15/49 = 15/28.
  const TraceData hand = build(4, {{7, 0, 0, {{0, 1}}}, {7, 1, 0, {{0, 2}}}, {8, 2, 0, {{3}}}, {7, 3, 0, {{1, 0}}}});
  CHECK(metrics(hand)["layers"][0]["rss"].get<double>() == near(19.0 / 39.0));
  // every token on both of 2 experts: O_0 = 1, RSS undefined
  const TraceData full = build(2, {{7, 0, 0, {{0, 1}}}, {7, 1, 0, {{1, 0}}}});
  CHECK(metrics(full)["layers"][0]["rss"].is_null());
}

TEST_CASE("NE by hand: windows stay inside sequences and routed tokens; null without windows", "[metrics][closed-form]") {
  // two sequences of 3 (positions 0,1,2) and one unrouted token starting a third sequence
  const TraceData tr = build(4, {{1, 0, 0, {{0, 1}}}, {2, 1, 0, {{1, 2}}}, {3, 2, 0, {{3}}},
                                 {1, 0, 1, {{0}}}, {2, 1, 1, {{0}}}, {3, 2, 1, {{0}}}, {4, 0, 1, {{}}}});
  const json l = metrics(tr, 2)["layers"][0];
  CHECK(keys(l["ne"]) == std::set<std::string>{"2", "4", "10"});
  CHECK(l["ne"]["2"].get<double>() == near(3.0 / 4.0));  // held: (t0,t1) via 1, both of seq 2
  CHECK(l["ne"]["4"].is_null());
  CHECK(l["ne"]["10"].is_null());
  CHECK(l["ne_group"]["2"].get<double>() == near(1.0));  // groups {0,1}, {2,3}: (t1,t2) share group 1
  CHECK(l["ne_group"]["4"].is_null());
  // kbar f_e = load_e / routed = 4/6, 2/6, 1/6, 1/6
  CHECK(l["ne_chance"]["2"].get<double>() == near(22.0 / 36.0));
  CHECK(l["ne_chance"]["4"].get<double>() == near(274.0 / 1296.0));
  const TraceData all = build(2, {{1, 0, 0, {{0, 1}}}, {2, 1, 0, {{0, 1}}}, {3, 2, 0, {{1, 0}}}});
  CHECK(metrics(all)["layers"][0]["ne_chance"]["2"] == 1.0);  // min(1, 1 + 1)
}

TEST_CASE("ne_group only when E is divisible by G", "[metrics][closed-form]") {
  std::vector<Tok> toks;
  for (int t = 0; t < 12; ++t) toks.push_back({t % 3, t, t % 2, {{t % 6, (t + 1) % 6}}});
  const TraceData tr = build(6, toks);
  for (int g : {4, 5, 7, 0}) {
    const json j = metrics(tr, g);
    INFO("G " << g);
    CHECK_FALSE(j["layers"][0].contains("ne_group"));
    CHECK_FALSE(j["summary"].contains("ne_group"));
  }
  for (int g : {1, 2, 3, 6}) {
    const json j = metrics(tr, g);
    INFO("G " << g);
    CHECK(keys(j["layers"][0]["ne_group"]) == std::set<std::string>{"2", "4", "10"});
    CHECK(j["summary"].contains("ne_group"));
  }
  // G = E: groups are single experts, so ne_group = ne
  const json j = metrics(tr, 6);
  CHECK(j["layers"][0]["ne_group"] == j["layers"][0]["ne"]);
}

TEST_CASE("load statistics: balanced, all on one expert, none", "[metrics][closed-form]") {
  const auto b = moetb::load_stats({3, 3, 3, 3});
  CHECK(*b.utilization == near(1));
  CHECK(*b.entropy == near(1));
  CHECK(*b.max_vio == near(0));
  CHECK(*b.cv == near(0));
  CHECK(b.dead_experts == 0);
  const auto one = moetb::load_stats({0, 10, 0, 0});
  CHECK(*one.utilization == near(0.25));
  CHECK(*one.entropy == near(0));
  CHECK(*one.max_vio == near(3));
  CHECK(*one.cv == near(std::sqrt(3.0)));
  CHECK(one.dead_experts == 3);
  const auto half = moetb::load_stats({1, 3});  // f = 1/4, 3/4
  CHECK(*half.utilization == near(0.75));
  CHECK(*half.max_vio == near(0.5));
  CHECK(*half.cv == near(0.5));
  CHECK(*half.entropy == near((0.25 * std::log(4.0) + 0.75 * std::log(4.0 / 3.0)) / std::log(2.0)));
  const auto none = moetb::load_stats({0, 0, 0});
  CHECK_FALSE(none.utilization);
  CHECK(none.dead_experts == 3);
}

TEST_CASE("Miller-Madow rs_mm: below rs with full support, 0 on small independent samples", "[metrics][closed-form]") {
  const auto flat = moetb::routing_specialization(cm({{1, 1}, {1, 1}}));
  CHECK(*flat.rs == near(0));
  CHECK(*flat.rs_mm == 0.0);
  // I = 2/3 log(4/3) + 1/3 log(2/3) = 0.0566 nats < bias (2-1)(2-1)/(2*6) = 0.0833
  const auto small = moetb::routing_specialization(cm({{2, 1}, {1, 2}}));
  const double mi = 2.0 / 3 * std::log(4.0 / 3) + 1.0 / 3 * std::log(2.0 / 3);
  CHECK(*small.rs == near(mi / std::log(2.0)));
  CHECK(*small.rs_mm == 0.0);
  // full support: bias = (D-1)(E-1)/(2N) > 0, so rs_mm = (I - bias) / H <= rs
  for (const auto& rows : std::vector<std::vector<std::vector<int64_t>>>{
           {{30, 5, 1}, {2, 20, 7}}, {{9, 1, 1, 2}, {1, 8, 3, 1}, {2, 2, 9, 4}}, {{100, 90}, {80, 120}}}) {
    const CountMatrix m = cm(rows);
    const auto r = moetb::routing_specialization(m);
    const double n = static_cast<double>(m.total());
    const double bias = static_cast<double>((m.n_domains - 1) * (m.n_experts - 1)) / (2.0 * n);
    double hd = 0;
    for (int d = 0; d < m.n_domains; ++d) hd -= xlogx(static_cast<double>(m.row_sum(d)) / n);
    const double info = *r.rs * hd;
    CHECK(*r.rs_mm <= *r.rs);
    CHECK(*r.rs_mm == near(std::max(0.0, info - bias) / hd));
  }
  // not a law: a forest-shaped support (d0 -> e0; d1, d2 -> e1) has a negative correction,
  // I = log 2, H(D) = H(1/2, 1/3, 1/6), N = 6: rs_mm = (I + 1/12) / H(D) > rs
  const auto forest = moetb::routing_specialization(cm({{3, 0}, {0, 2}, {0, 1}}));
  const double hd = -(0.5 * std::log(0.5) + std::log(1.0 / 3) / 3 + std::log(1.0 / 6) / 6);
  CHECK(*forest.rs == near(std::log(2.0) / hd));
  CHECK(*forest.rs_mm == near((std::log(2.0) + 1.0 / 12) / hd));
}

TEST_CASE("purity: relabelling and unequal group sizes, by hand", "[metrics][closed-form]") {
  // G0 = {3}, G1 = {0, 1, 2}. Best map: d0 <- e0 (5), d1 <- e1, e2, e3 (0 + 2 + 3) = 10 of 15.
  const auto p = moetb::purity_against(cm({{5, 4, 0, 0}, {1, 0, 2, 3}}), {{3}, {0, 1, 2}});
  CHECK(*p.purity_ids == near(3.0 / 15));
  CHECK(*p.purity == near(10.0 / 15));
  CHECK(*p.purity_majority == near(14.0 / 15));
  // the oracle with swapped ids: purity 1, purity_ids 0
  const auto swapped = moetb::purity_against(cm({{0, 0, 4, 6}, {3, 5, 0, 0}}), {{0, 1}, {2, 3}});
  CHECK(*swapped.purity == near(1));
  CHECK(*swapped.purity_ids == near(0));
  CHECK(*swapped.purity_majority == near(1));
  // domain without a group: its assignments can never count
  const auto nogroup = moetb::purity_against(cm({{4, 0}, {0, 6}}), {{1}});
  CHECK(*nogroup.purity == near(4.0 / 10));
  CHECK(*nogroup.purity_ids == near(0));
}

TEST_CASE("summary is the mean over layers of the non-null values; per_domain", "[metrics][closed-form]") {
  // layer 0: labelled tokens disjoint (RS = 1), id 3 routed once (RSS null);
  // layer 1: labelled tokens unrouted (RS null), id 3 -> {0}, {0,1}: RSS = -1 (not clipped).
  const TraceData tr = build(4, {{1, 0, 0, {{0}, {}}}, {2, 1, 1, {{1}, {}}}, {3, 2, -1, {{2}, {0}}}, {3, 3, -1, {{}, {0, 1}}}});
  const json j = metrics(tr);
  CHECK(j["layers"][0]["rs"].get<double>() == near(1));
  CHECK(j["layers"][1]["rs"].is_null());
  CHECK(j["layers"][0]["rss"].is_null());
  CHECK(j["layers"][1]["rss"].get<double>() == near(-1));
  CHECK(j["summary"]["rs"].get<double>() == near(1));
  CHECK(j["summary"]["rss"].get<double>() == near(-1));
  CHECK(j["summary"]["load"]["utilization"].get<double>() == near((0.75 + 0.5) / 2));
  CHECK(j["summary"]["load"]["dead_experts"].get<double>() == near((1 + 2) / 2.0));
  CHECK(keys(j["per_domain"]) == std::set<std::string>{"0", "1"});
  for (const char* d : {"0", "1"}) {
    CHECK(j["per_domain"][d]["tokens"] == 1);
    CHECK(j["per_domain"][d]["rs"].get<double>() == near(1));
  }
}

TEST_CASE("JSON schema: exactly the keys of the spec", "[metrics][closed-form]") {
  std::vector<Tok> toks;
  for (int t = 0; t < 24; ++t) toks.push_back({t % 5, t % 12, t % 3 - 1, {{t % 8, (t + 3) % 8}, {t % 8}}});
  const TraceData tr = build(8, toks, {"code", "math"});
  const std::set<std::string> layer_keys = {"layer", "rs", "rs_per_domain", "rs_mm", "ner", "di", "di_pairs",
                                            "rss", "ne", "ne_chance", "load"};
  const std::set<std::string> summary_keys = {"rs", "rs_mm", "ner", "di", "rss", "ne", "ne_chance", "load"};
  const std::set<std::string> load_keys = {"utilization", "entropy", "max_vio", "cv", "dead_experts"};
  const std::set<std::string> purity_keys = {"purity", "purity_ids", "purity_majority"};
  for (int with_groups = 0; with_groups < 2; ++with_groups)
    for (int g : {3, 4}) {
      INFO("groups " << with_groups << " G " << g);
      const json j = with_groups ? metrics(tr, g, Sets{{0, 1}, {2, 3}}) : metrics(tr, g);
      CHECK(keys(j) == std::set<std::string>{"format", "trace", "summary", "layers", "per_domain"});
      CHECK(j["format"] == "moetb-metrics/1");
      CHECK(keys(j["trace"]) == std::set<std::string>{"tokens", "layers", "num_experts", "top_k", "domains"});
      CHECK(j["trace"]["domains"] == json({"code", "math"}));
      CHECK(j["trace"]["tokens"] == 24);
      CHECK(j["trace"]["layers"] == 2);
      auto want_l = layer_keys, want_s = summary_keys;
      if (g == 4) { want_l.insert("ne_group"); want_s.insert("ne_group"); }
      if (with_groups) for (const auto& k : purity_keys) { want_l.insert(k); want_s.insert(k); }
      CHECK(keys(j["summary"]) == want_s);
      CHECK(keys(j["summary"]["load"]) == load_keys);
      CHECK(keys(j["summary"]["ne"]) == std::set<std::string>{"2", "4", "10"});
      REQUIRE(j["layers"].size() == 2);
      for (std::size_t l = 0; l < 2; ++l) {
        CHECK(keys(j["layers"][l]) == want_l);
        CHECK(j["layers"][l]["layer"] == l);
        CHECK(keys(j["layers"][l]["load"]) == load_keys);
        CHECK(keys(j["layers"][l]["ne_chance"]) == std::set<std::string>{"2", "4", "10"});
        CHECK(keys(j["layers"][l]["rs_per_domain"]) == std::set<std::string>{"code", "math"});
      }
      CHECK(keys(j["per_domain"]) == std::set<std::string>{"code", "math"});
      CHECK(keys(j["per_domain"]["code"]) == std::set<std::string>{"rs", "tokens"});
    }
}

TEST_CASE("numbers are written with at least 9 significant digits", "[metrics][closed-form]") {
  auto sig_digits = [](std::string s) {
    s = s.substr(0, s.find_first_of("eE"));
    std::string d;
    for (char ch : s) if (ch >= '0' && ch <= '9') d += ch;
    return d.size() - std::min(d.size(), d.find_first_not_of('0'));
  };
  CHECK(sig_digits(json(1.0 / 3).dump()) >= 9u);
  // NE(2) = 1/3: windows (t0,t1) held, (t1,t2) and (t2,t3) not
  const TraceData tr = build(4, {{1, 0, 0, {{0}}}, {2, 1, 0, {{0}}}, {3, 2, 0, {{1}}}, {4, 3, 0, {{2}}}});
  const json j = metrics(tr);
  const std::string ne2 = j["layers"][0]["ne"]["2"].dump();
  INFO(ne2);
  CHECK(std::fabs(std::stod(ne2) - 1.0 / 3) < 1e-15);
  CHECK(sig_digits(ne2) >= 9u);
  CHECK(j.dump().find("0.333333333") != std::string::npos);
}

TEST_CASE("expert paths: tau 0.5 and 1.0, ties broken by id", "[metrics][closed-form]") {
  const CountMatrix m = cm({{2, 5, 5, 0, 3}, {1, 1, 1, 1, 0}, {0, 0, 0, 0, 0}});
  CHECK(moetb::expert_path(m, 0, 0.5) == std::vector<int>{1, 2});        // 5, 10 >= 7.5
  CHECK(moetb::expert_path(m, 0, 1.0) == std::vector<int>{1, 2, 4, 0});  // the idle expert 3 never
  CHECK(moetb::expert_path(m, 0, 0.3) == std::vector<int>{1});
  CHECK(moetb::expert_path(m, 1, 0.5) == std::vector<int>{0, 1});        // exactly 1/2 reached
  CHECK(moetb::expert_path(m, 1, 1.0) == std::vector<int>{0, 1, 2, 3});
  CHECK(moetb::expert_path(m, 2, 0.5).empty());
  CHECK(moetb::expert_path(m, 7, 0.5).empty());
  for (double bad : {0.0, -0.5, 1.5, std::nan("")}) CHECK_THROWS_AS(moetb::expert_path(m, 0, bad), std::invalid_argument);
  const TraceData tr = build(4, {{1, 0, 0, {{2}, {3, 1}}}, {2, 1, 0, {{1}, {3}}}, {3, 2, 1, {{0, 3}, {0}}}}, {"a", "b"});
  moetb::MetricsOptions o;
  o.threads = 1;
  CHECK(moetb::expert_paths_json(moetb::compute_trace_metrics(tr, o), 0.5) ==
        json::parse(R"({"a": [[1], [3]], "b": [[0], [0]]})"));
}

TEST_CASE("compare: router saturation, summary deltas, and different tokens rejected", "[metrics][closed-form]") {
  // layer 0: |A∩B|/|B| = 1/2, 1, 0 -> 1/2; layer 1: B routes only token 0: 1/1 -> 1
  const TraceData a = build(4, {{1, 0, 0, {{0, 1}, {2}}}, {2, 1, 1, {{2}, {3}}}, {3, 2, 1, {{}, {1}}}});
  const TraceData b = build(4, {{1, 0, 0, {{1, 3}, {2}}}, {2, 1, 1, {{2}, {}}}, {3, 2, 1, {{0}, {}}}});
  const auto sat = moetb::router_saturation(a, b);
  REQUIRE(sat.size() == 2);
  CHECK(*sat[0] == near(0.5));
  CHECK(*sat[1] == near(1.0));
  moetb::MetricsOptions o;
  o.threads = 1;
  const auto ma = moetb::compute_trace_metrics(a, o), mb = moetb::compute_trace_metrics(b, o);
  const json c = moetb::compare_json(ma, mb, sat);
  const json ja = moetb::metrics_to_json(ma), jb = moetb::metrics_to_json(mb);
  CHECK(c["format"] == "moetb-compare/1");
  CHECK(c["a"] == ja["trace"]);
  CHECK(c["saturation"] == json::parse("[0.5, 1.0]"));
  for (const char* k : {"rs", "di", "load.utilization", "load.max_vio", "ne_chance.2"}) {
    INFO(k);
    const json& e = c["summary"][k];
    CHECK(keys(e) == std::set<std::string>{"a", "b", "delta"});
    CHECK(e["delta"].get<double>() == near(e["b"].get<double>() - e["a"].get<double>()));
  }
  CHECK(c["summary"]["load.utilization"]["a"] == ja["summary"]["load"]["utilization"]);
  CHECK(c["summary"]["ne.10"]["delta"].is_null());  // null on both sides
  CHECK(c["summary"]["rss"]["delta"].is_null());   // B: no id repeats

  TraceData other = b;
  other.token_ids[2] = 99;
  CHECK_THROWS_AS(moetb::router_saturation(a, other), moetb::TraceError);
  other = b;
  other.positions[1] = 5;
  CHECK_THROWS_AS(moetb::router_saturation(a, other), moetb::TraceError);
  const TraceData shorter = build(4, {{1, 0, 0, {{0}, {2}}}, {2, 1, 1, {{2}, {3}}}});
  CHECK_THROWS_AS(moetb::router_saturation(a, shorter), moetb::TraceError);
}
