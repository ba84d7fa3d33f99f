// Summary statistics for sweep aggregation (see stats.h): mean, sample sd, and the 95% CI
// half-width from Student's t. The t distribution is computed from scratch: the CDF from the
// regularized incomplete beta function (Lentz continued fraction, with log-beta evaluated
// without cancellation for large df), the quantile by bisection on the bit patterns of
// doubles, which always terminates and lands within an ulp of the computed root. Tails and
// the centre are solved in separate, relatively accurate forms.
#include "sweeps/stats.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>

namespace moetb::sweeps {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kPi = 3.14159265358979323846;

// Stirling series for lgamma(z) - [(z - 0.5) ln z - z + 0.5 ln(2 pi)], accurate for z >= 10.
double stirling_correction(double z) {
  const double inv = 1.0 / z;
  const double inv2 = inv * inv;
  return inv * (1.0 / 12 - inv2 * (1.0 / 360 - inv2 * (1.0 / 1260 - inv2 * (1.0 / 1680 - inv2 / 1188))));
}

// ln B(a, b), without the cancellation of lgamma(big) - lgamma(big + small) for large big.
double log_beta(double a, double b) {
  const double small = std::fmin(a, b);
  const double big = std::fmax(a, b);
  if (big < 10) return std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b);
  const double sum = big + small;
  // lgamma(big) - lgamma(sum) from the Stirling form, the large terms cancelled by hand.
  const double big_minus_sum = -(big - 0.5) * std::log1p(small / big) - small * std::log(sum) + small +
                               stirling_correction(big) - stirling_correction(sum);
  return std::lgamma(small) + big_minus_sum;
}

// Continued fraction for I_x(a, b) (modified Lentz); converges fast for x < (a+1)/(a+b+2).
double incomplete_beta_fraction(double a, double b, double x) {
  constexpr double kTiny = 1e-300;
  constexpr double kEps = 1e-16;
  const double qab = a + b;
  const double qap = a + 1;
  const double qam = a - 1;
  double c = 1;
  double d = 1 - qab * x / qap;
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 10'000'000; ++m) {
    const double md = m;
    const double m2 = 2 * md;
    double aa = md * (b - md) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + md) * (qab + md) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1) < kEps) break;
  }
  return h;
}

// I_x(a, b), given x, its complement 1 - x, and both logarithms, each computed accurately
// by the caller (x is often within 1e-12 of 1, where 1 - x would lose all digits).
double regularized_incomplete_beta(double a, double b, double x, double complement, double log_x,
                                   double log_complement) {
  if (x <= 0) return 0;
  if (complement <= 0) return 1;
  const double log_front = a * log_x + b * log_complement - log_beta(a, b);
  if (x < (a + 1) / (a + b + 2)) return std::exp(log_front) * incomplete_beta_fraction(a, b, x) / a;
  return 1 - std::exp(log_front) * incomplete_beta_fraction(b, a, complement) / b;
}

// The two beta arguments of Student's t at |t|: x = df/(df+t^2), complement = t^2/(df+t^2).
struct BetaArgument {
  double x, complement, log_x, log_complement;
};

BetaArgument beta_argument(double abs_t, double df) {
  const double u = abs_t / std::sqrt(df);
  if (u <= 1) {
    const double u2 = u * u;
    return {1 / (1 + u2), u2 / (1 + u2), -std::log1p(u2), 2 * std::log(u) - std::log1p(u2)};
  }
  const double v = 1 / u;
  const double v2 = v * v;
  return {v2 / (1 + v2), 1 / (1 + v2), 2 * std::log(v) - std::log1p(v2), -std::log1p(v2)};
}

double normal_density(double t) { return std::exp(-0.5 * t * t) / std::sqrt(2 * kPi); }

// For large df the continued fraction loses ~df/t^2 ulps (its terms cancel near x = 1), while
// the expansion of the t CDF around the normal one,
//   F(t) = Phi(t) - phi(t) [(t^3 + t) / (4 df) + (3t^7 - 7t^5 - 5t^3 - 3t) / (96 df^2)] + O(df^-3),
// is within ~1e-11 relative wherever 400 t^4 <= df (checked against 40-digit references).
bool use_large_df_expansion(double abs_t, double df) {
  const double t2 = abs_t * abs_t;
  return df >= 1e5 && 400 * t2 * t2 <= df;
}

double large_df_correction(double t, double df) {
  const double t2 = t * t;
  const double first = (t2 * t + t) / (4 * df);
  const double second = t * (((3 * t2 - 7) * t2 - 5) * t2 - 3) / (96 * df * df);
  return normal_density(t) * (first + second);
}

// P(T > s) for s >= 0.
double upper_tail(double s, double df) {
  if (std::isinf(s)) return 0;
  if (use_large_df_expansion(s, df)) return 0.5 * std::erfc(s / std::sqrt(2.0)) + large_df_correction(s, df);
  const BetaArgument arg = beta_argument(s, df);
  return 0.5 * regularized_incomplete_beta(0.5 * df, 0.5, arg.x, arg.complement, arg.log_x, arg.log_complement);
}

// P(0 < T < s) for s >= 0.
double central_mass(double s, double df) {
  if (std::isinf(s)) return 0.5;
  if (use_large_df_expansion(s, df)) return 0.5 * std::erf(s / std::sqrt(2.0)) - large_df_correction(s, df);
  const BetaArgument arg = beta_argument(s, df);
  return 0.5 * regularized_incomplete_beta(0.5, 0.5 * df, arg.complement, arg.x, arg.log_complement, arg.log_x);
}

void check_df(double df, const char* function) {
  if (!(df > 0)) throw std::invalid_argument(std::string(function) + ": degrees of freedom must be > 0, got " + std::to_string(df));
}

std::uint64_t bits_of(double v) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  return bits;
}

double double_of(std::uint64_t bits) {
  double v = 0;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// The s >= 0 where an increasing function of s crosses target, by bisection on the bit
// patterns of non-negative doubles (whose order matches the order of the values): at most
// 64 evaluations, and the answer is within one ulp of where the computed function crosses.
double solve_increasing(const std::function<double(double)>& f, double target) {
  std::uint64_t lo = bits_of(0.0);
  std::uint64_t hi = bits_of(std::numeric_limits<double>::max());
  double f_lo = f(0.0);
  double f_hi = f(std::numeric_limits<double>::max());
  if (target <= f_lo) return 0;
  if (target >= f_hi) return std::numeric_limits<double>::max();
  while (hi - lo > 1) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    const double f_mid = f(double_of(mid));
    if (f_mid < target) {
      lo = mid;
      f_lo = f_mid;
    } else {
      hi = mid;
      f_hi = f_mid;
    }
  }
  return (target - f_lo <= f_hi - target) ? double_of(lo) : double_of(hi);
}

}  // namespace

SampleSummary summarize(const std::vector<double>& values) {
  SampleSummary summary;
  summary.n = values.size();
  if (values.empty()) {
    summary.mean = summary.sd = summary.ci95 = kNaN;
    return summary;
  }
  double sum = 0;
  for (double v : values) sum += v;
  const double count = static_cast<double>(values.size());
  summary.mean = sum / count;
  if (values.size() < 2) {
    summary.sd = summary.ci95 = kNaN;
    return summary;
  }
  // Two passes: squares of deviations from the mean, plus the usual rounding correction.
  double squares = 0;
  double deviations = 0;
  for (double v : values) {
    const double deviation = v - summary.mean;
    squares += deviation * deviation;
    deviations += deviation;
  }
  const double variance = std::fmax(0.0, (squares - deviations * deviations / count) / (count - 1));
  summary.sd = std::sqrt(variance);
  summary.ci95 = student_t_quantile(0.975, count - 1) * summary.sd / std::sqrt(count);
  return summary;
}

double student_t_cdf(double t, double df) {
  check_df(df, "student_t_cdf");
  if (std::isnan(t)) return kNaN;
  const double s = std::fabs(t);
  const double tail = upper_tail(s, df);
  if (t < 0) return tail;
  return tail < 0.25 ? 1 - tail : 0.5 + central_mass(s, df);
}

double student_t_quantile(double p, double df) {
  check_df(df, "student_t_quantile");
  if (!(p > 0 && p < 1)) throw std::invalid_argument("student_t_quantile: p must be in (0, 1), got " + std::to_string(p));
  if (p == 0.5) return 0;
  const double sign = p < 0.5 ? -1.0 : 1.0;
  const double tail = p < 0.5 ? p : 1 - p;  // exact for p >= 0.5 (Sterbenz)
  double s = 0;
  if (tail < 0.25) {
    s = solve_increasing([df](double x) { return -upper_tail(x, df); }, -tail);
  } else {
    const double centre = std::fabs(p - 0.5);  // exact for p in [0.25, 0.75]
    s = solve_increasing([df](double x) { return central_mass(x, df); }, centre);
  }
  return sign * s;
}

}  // namespace moetb::sweeps
