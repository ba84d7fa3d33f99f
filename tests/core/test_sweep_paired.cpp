// Tests of sweeps/paired.h: the paired-by-seed difference against hand-worked values (mean, sd,
// t interval from t_{0.975,2} = 4.3026527, sign counts), which groups are paired (one axis apart,
// same seeds only), the summary.md section, paired.csv and the chart, and the table number format.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "sweeps/paired.h"

using namespace moetb::sweeps;

namespace {

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

ResultRow row(const std::string& router, const std::string& coef, int64_t seed, double loss, const std::string& status = "ok") {
  ResultRow r;
  r.entry.id = router + coef + std::to_string(seed);
  r.entry.seed = seed;
  r.entry.axes = {{"router.name", router}, {"router.balance_coef", coef}};
  r.router = router;
  r.status = status;
  if (status == "ok") r.values["val_bits"] = loss;
  return r;
}

}  // namespace

TEST_CASE("paired difference: hand-worked mean, sd, t interval and sign counts", "[sweeps]") {
  // b - a = {0.2, 0.1, 0.3}: mean 0.2, sd 0.1, half-width 4.3026527 * 0.1 / sqrt(3) = 0.248414.
  const PairedDifference d = paired_difference({3.0, 3.5, 4.0}, {3.2, 3.6, 4.3});
  CHECK(d.n == 3);
  CHECK(d.mean == Approx(0.2));
  CHECK(d.sd == Approx(0.1));
  CHECK(d.ci95 == Approx(0.2484138).epsilon(1e-6));
  CHECK(d.lo == Approx(-0.0484138).epsilon(1e-5));
  CHECK(d.hi == Approx(0.4484138).epsilon(1e-6));
  CHECK(d.b_higher == 3);
  CHECK(d.a_higher == 0);
  CHECK(d.agree() == 3);
  CHECK_FALSE(d.excludes_zero());  // every seed agrees, and still within seed noise at n = 3
  CHECK(paired_text(d) == "+0.2 [-0.0484, +0.448], 3 of 3 seeds");

  // b - a = {-1.0, -1.1, -0.9}: mean -1, sd 0.1: the interval [-1.248, -0.752] excludes zero.
  const PairedDifference e = paired_difference({2, 2, 2}, {1.0, 0.9, 1.1});
  CHECK(e.mean == Approx(-1.0));
  CHECK(e.hi == Approx(-0.7515862).epsilon(1e-6));
  CHECK(e.excludes_zero());
  CHECK(e.agree() == 3);
  CHECK(e.a_higher == 3);

  // Mixed signs and a tie: {+1, -1, 0, +3}: mean 0.75, sd sqrt(35/12) = 1.7078; t_{0.975,3} = 3.1824463.
  const PairedDifference m = paired_difference({0, 0, 0, 0}, {1, -1, 0, 3});
  CHECK(m.mean == Approx(0.75));
  CHECK(m.sd == Approx(std::sqrt(35.0 / 12)));
  CHECK(m.ci95 == Approx(3.1824463 * std::sqrt(35.0 / 12) / 2).epsilon(1e-6));
  CHECK(m.b_higher == 2);
  CHECK(m.a_higher == 1);
  CHECK(m.ties == 1);
  CHECK(m.agree() == 2);

  const PairedDifference one = paired_difference({1}, {2});
  CHECK(one.n == 1);
  CHECK(std::isnan(one.ci95));
  CHECK_FALSE(one.excludes_zero());
  CHECK(paired_text(one) == "+1 (n = 1: no interval)");
  CHECK(paired_text(paired_difference({}, {})) == "no paired seeds");
  CHECK_THROWS_WITH(paired_difference({1, 2}, {1}), Catch::Contains("2 values against 1"));
}

TEST_CASE("paired comparisons: groups one axis apart, matched by seed", "[sweeps]") {
  ResultsTable t;
  t.axis_keys = {"router.name", "router.balance_coef"};
  t.seed_key = "train.seed";
  t.columns = {"val_bits"};
  // topk at coef 0.0 and 0.01 over seeds 1-3; random at 0.01 over seeds 1-2 and a failed seed 3.
  const double base[] = {3.0, 3.5, 4.0}, bal[] = {3.2, 3.6, 4.3};
  for (int s = 1; s <= 3; ++s) t.rows.push_back(row("topk", "0.0", s, base[s - 1]));
  for (int s = 1; s <= 3; ++s) t.rows.push_back(row("topk", "0.01", s, bal[s - 1]));
  t.rows.push_back(row("random", "0.01", 2, 5.6));
  t.rows.push_back(row("random", "0.01", 1, 5.0));  // out of seed order: still paired with seed 1
  t.rows.push_back(row("random", "0.01", 3, 0, "failed"));
  const auto groups = summarize_groups(t);
  REQUIRE(groups.size() == 3);
  const auto comps = paired_comparisons(t, groups);
  REQUIRE(comps.size() == 2);  // (topk, 0.0) and (random, 0.01) differ in both axes: not paired
  // router: random - topk at coef 0.01 (seeds 1, 2): {5.0 - 3.2, 5.6 - 3.6} = {1.8, 2.0}.
  const PairedComparison& by_router = comps[0];
  CHECK(comparison_label(t, groups, by_router) == "router: random - topk");
  CHECK(by_router.context == "balance_coef=0.01");
  const PairedDifference* r = by_router.find("val_bits");
  REQUIRE(r != nullptr);
  CHECK(r->n == 2);
  CHECK(r->mean == Approx(1.9));
  CHECK(r->sd == Approx(std::sqrt(0.02)));
  CHECK(r->ci95 == Approx(12.7062047 * std::sqrt(0.02) / std::sqrt(2.0)).epsilon(1e-6));  // t_{0.975,1}
  CHECK(r->excludes_zero());  // 1.9 +- 1.27
  // balance_coef: 0.01 - 0.0 for topk (seeds 1-3): the first hand-worked case.
  const PairedComparison& by_coef = comps[1];
  CHECK(comparison_label(t, groups, by_coef) == "balance_coef: 0.01 - 0.0");
  CHECK(by_coef.context == "router=topk");
  CHECK(by_coef.find("val_bits")->mean == Approx(0.2));
  CHECK(by_coef.find("val_bits")->n == 3);

  const std::string md = paired_markdown(t, groups, comps, {"val_bits"});
  CHECK(has(md, "## Paired differences (by seed)"));
  CHECK(has(md, "| router: random - topk | balance_coef=0.01 | 2 | **+1.9 [+0.629, +3.17], 2 of 2 seeds** |"));
  CHECK(has(md, "| balance_coef: 0.01 - 0.0 | router=topk | 3 | +0.2 [-0.0484, +0.448], 3 of 3 seeds |"));
  CHECK(has(md, "within seed noise"));
  const std::string csv = paired_csv(t, groups, comps);
  CHECK(has(csv, "axis,context,a,b,column,n,mean_diff,sd,ci95,lo,hi,b_higher,a_higher,ties,excludes_zero\n"));
  CHECK(has(csv, "router.balance_coef,router=topk,0.0,0.01,val_bits,3,0.2"));
  CHECK(has(csv, ",3,0,0,false\n"));
  const auto plots = paired_plots(t, groups, comps, {"val_bits"});
  REQUIRE(plots.size() == 1);
  CHECK(plots[0].first == "plots/paired-val_bits.svg");
  CHECK(has(plots[0].second, "n = 2-3 seeds"));
  CHECK(has(plots[0].second, "err-bar"));
  CHECK(has(plots[0].second, "no difference"));

  // One seed per group: pairs, but no interval and no bold verdict.
  ResultsTable single = t;
  single.rows = {row("topk", "0.0", 1, 3.0), row("topk", "0.01", 1, 3.4)};
  const auto g1 = summarize_groups(single);
  const auto c1 = paired_comparisons(single, g1);
  REQUIRE(c1.size() == 1);
  CHECK(has(paired_markdown(single, g1, c1, {"val_bits"}), "| +0.4 (n = 1: no interval) |"));
  // Nothing to pair: no section.
  single.rows = {row("topk", "0.0", 1, 3.0)};
  const auto g0 = summarize_groups(single);
  CHECK(paired_comparisons(single, g0).empty());
  CHECK(paired_markdown(single, g0, {}, {"val_bits"}).empty());
}

TEST_CASE("table numbers: one format, 3 significant digits, whole numbers from 1000", "[sweeps]") {
  CHECK(table_number(3.91234) == "3.91");
  CHECK(table_number(0.215) == "0.215");
  CHECK(table_number(52.34) == "52.3");
  CHECK(table_number(1234.4) == "1234");
  CHECK(table_number(0.2, 3, true) == "+0.2");
  CHECK(table_number(-0.0484138, 3, true) == "-0.0484");
  CHECK(table_number(-0.0, 3, true) == "0");
  CHECK(table_number(NAN).empty());
  CHECK(table_number(0.36, 2) == "0.36");
}
