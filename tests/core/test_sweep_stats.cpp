// Tests of sweeps/stats.h: Student's t quantiles against printed t tables and the closed forms
// for df = 1 and 2, symmetry, CDF/quantile round trips from df = 1 to 1e6, argument checks, and
// summarize() on a hand-worked example and its n = 0, 1 edge cases.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "sweeps/stats.h"

using moetb::sweeps::student_t_cdf;
using moetb::sweeps::student_t_quantile;
using moetb::sweeps::summarize;

namespace {

constexpr double kPi = 3.14159265358979323846;
const std::vector<double> kProbabilities = {1e-6, 1e-4, 0.001, 0.01,  0.025, 0.1,  0.25,     0.3,
                                            0.45, 0.5,  0.55,  0.6,   0.75,  0.9,  0.975,    0.99,
                                            0.999, 0.9999, 1 - 1e-6};
const std::vector<double> kDegreesOfFreedom = {1, 1.5, 2, 3, 4, 7.25, 10, 29, 100, 1e3, 1e4, 1e5, 1e6};

// The t(1) (Cauchy) and t(2) CDFs in forms that stay accurate in the lower tail.
double cauchy_cdf(double t) { return t < 0 ? std::atan(-1 / t) / kPi : 0.5 + std::atan(t) / kPi; }
double t2_cdf(double t) {
  if (t >= 0) return 0.5 + t / (2 * std::sqrt(2 + t * t));
  const double root = std::sqrt(2 + t * t);
  return 1 / (root * (root - t));  // 0.5 - s / (2 sqrt(2 + s^2)) without cancellation, s = -t
}

}  // namespace

TEST_CASE("t quantiles match printed t tables", "[sweeps]") {
  // Two-sided 95% critical values t_{0.975, df}, tables to 7 decimals.
  CHECK(student_t_quantile(0.975, 1) == Approx(12.7062047).margin(1e-7));
  CHECK(student_t_quantile(0.975, 2) == Approx(4.3026527).margin(1e-7));
  CHECK(student_t_quantile(0.975, 3) == Approx(3.1824463).margin(1e-7));
  CHECK(student_t_quantile(0.975, 4) == Approx(2.7764451).margin(1e-7));
  CHECK(student_t_quantile(0.975, 9) == Approx(2.2621572).margin(1e-7));
  CHECK(student_t_quantile(0.975, 29) == Approx(2.0452296).margin(1e-7));
  CHECK(student_t_quantile(0.975, 1e6) == Approx(1.959964).margin(1e-5));
  CHECK(student_t_quantile(0.995, 5) == Approx(4.0321430).margin(1e-7));
  CHECK(student_t_quantile(0.95, 10) == Approx(1.8124611).margin(1e-7));
  CHECK(student_t_quantile(0.5, 3) == 0.0);
}

TEST_CASE("t quantiles match the closed forms for df = 1 and df = 2", "[sweeps]") {
  for (double p : kProbabilities) {
    INFO("p = " << p);
    const double cauchy = std::tan(kPi * (p - 0.5));
    CHECK(student_t_quantile(p, 1) == Approx(cauchy).epsilon(1e-10).margin(1e-12));
    const double t2 = (2 * p - 1) / std::sqrt(2 * p * (1 - p));
    CHECK(student_t_quantile(p, 2) == Approx(t2).epsilon(1e-10).margin(1e-12));
  }
}

TEST_CASE("t quantiles are antisymmetric: q(1 - p) = -q(p)", "[sweeps]") {
  for (double df : kDegreesOfFreedom) {
    for (double p : kProbabilities) {
      INFO("df = " << df << ", p = " << p);
      // 1 - p rounds (by up to 1e-10 relative for p = 1e-6); 1 - (1 - p) is exact.
      CHECK(student_t_quantile(1 - p, df) == Approx(-student_t_quantile(p, df)).epsilon(1e-9).margin(1e-12));
      const double upper = 1 - p;
      CHECK(student_t_quantile(upper, df) == Approx(-student_t_quantile(1 - upper, df)).epsilon(1e-13).margin(1e-13));
    }
  }
}

TEST_CASE("t quantile and CDF invert each other from df = 1 to 1e6", "[sweeps]") {
  for (double df : kDegreesOfFreedom) {
    double previous = -std::numeric_limits<double>::infinity();
    for (double p : kProbabilities) {
      INFO("df = " << df << ", p = " << p);
      const double q = student_t_quantile(p, df);
      CHECK(q > previous);  // increasing in p
      previous = q;
      CHECK(student_t_cdf(q, df) == Approx(p).epsilon(1e-9));
    }
  }
}

TEST_CASE("t CDF matches the Cauchy (df = 1) and df = 2 closed forms", "[sweeps]") {
  for (double t : {-1e5, -300.0, -30.0, -4.0, -1.0, -0.3, -1e-6, 0.0, 1e-6, 0.5, 1.0, 2.5, 10.0, 1e3, 1e6}) {
    INFO("t = " << t);
    CHECK(student_t_cdf(t, 1) == Approx(cauchy_cdf(t)).epsilon(1e-12));
    CHECK(student_t_cdf(t, 1) == Approx(0.5 + std::atan(t) / kPi).epsilon(1e-9).margin(1e-15));
    CHECK(student_t_cdf(t, 2) == Approx(t2_cdf(t)).epsilon(1e-12));
    CHECK(student_t_cdf(t, 2) == Approx(0.5 + t / (2 * std::sqrt(2 + t * t))).epsilon(1e-9).margin(1e-15));
  }
}

TEST_CASE("t CDF edge values and the normal limit", "[sweeps]") {
  CHECK(student_t_cdf(0, 5) == 0.5);
  CHECK(student_t_cdf(std::numeric_limits<double>::infinity(), 3) == 1.0);
  CHECK(student_t_cdf(-std::numeric_limits<double>::infinity(), 3) == 0.0);
  CHECK(std::isnan(student_t_cdf(std::numeric_limits<double>::quiet_NaN(), 3)));
  const double normal = 0.5 * std::erfc(-1.96 / std::sqrt(2.0));
  CHECK(student_t_cdf(1.96, 1e12) == Approx(normal).epsilon(1e-11));
  CHECK(student_t_cdf(-1.96, std::numeric_limits<double>::infinity()) == Approx(1 - normal).epsilon(1e-12));
  // Heavier tails than the normal for finite df.
  CHECK(student_t_cdf(-3, 10) > student_t_cdf(-3, 1e6));
}

TEST_CASE("t functions reject p outside (0, 1) and df <= 0", "[sweeps]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (double p : {0.0, 1.0, -0.1, 1.5, nan}) CHECK_THROWS_AS(student_t_quantile(p, 5), std::invalid_argument);
  for (double df : {0.0, -1.0, nan}) {
    CHECK_THROWS_AS(student_t_quantile(0.5, df), std::invalid_argument);
    CHECK_THROWS_AS(student_t_cdf(1.0, df), std::invalid_argument);
  }
  CHECK_THROWS_WITH(student_t_quantile(1.0, 5), Catch::Contains("p must be in (0, 1)"));
  CHECK_THROWS_WITH(student_t_cdf(1.0, 0), Catch::Contains("degrees of freedom"));
}

TEST_CASE("summarize: mean, sample sd and t-based 95% CI on a hand-worked example", "[sweeps]") {
  const auto s = summarize({1, 2, 3, 4});
  CHECK(s.n == 4);
  CHECK(s.mean == Approx(2.5));
  CHECK(s.sd == Approx(1.2909944).epsilon(1e-7));              // sqrt(5/3)
  CHECK(s.ci95 == Approx(3.1824463 * 1.2909944 / 2).epsilon(1e-7));  // t_{0.975,3} sd / sqrt(4)

  const auto pair = summarize({10, 12});
  CHECK(pair.sd == Approx(std::sqrt(2.0)));
  CHECK(pair.ci95 == Approx(12.7062047 * std::sqrt(2.0) / std::sqrt(2.0)).epsilon(1e-7));
}

TEST_CASE("summarize: n = 0 and n = 1 give NaN where undefined", "[sweeps]") {
  const auto empty = summarize({});
  CHECK(empty.n == 0);
  CHECK(std::isnan(empty.mean));
  CHECK(std::isnan(empty.sd));
  CHECK(std::isnan(empty.ci95));

  const auto single = summarize({0.75});
  CHECK(single.n == 1);
  CHECK(single.mean == 0.75);
  CHECK(std::isnan(single.sd));
  CHECK(std::isnan(single.ci95));
}

TEST_CASE("summarize: constant samples and large offsets", "[sweeps]") {
  const auto constant = summarize({0.1, 0.1, 0.1});
  CHECK(constant.mean == Approx(0.1));
  CHECK(constant.sd == Approx(0.0).margin(1e-15));
  CHECK(constant.ci95 == Approx(0.0).margin(1e-14));

  // Two-pass summation: an offset of 1e9 does not swamp a spread of 1.
  const auto offset = summarize({1e9 + 1, 1e9 + 2, 1e9 + 3});
  CHECK(offset.mean == Approx(1e9 + 2));
  CHECK(offset.sd == Approx(1.0).epsilon(1e-9));
}
