// Summary statistics for sweep aggregation over seeds: mean, sample standard deviation
// and a 95% confidence interval for the mean from Student's t distribution (the usual
// small-sample interval: mean +- t_{0.975, n-1} * sd / sqrt(n)). Torch-free, no Eigen.
#pragma once
#include <cstddef>
#include <vector>

namespace moetb::sweeps {

struct SampleSummary {
  std::size_t n = 0;
  double mean = 0;  // NaN when n == 0
  double sd = 0;    // sample standard deviation (n - 1 in the denominator); NaN when n < 2
  double ci95 = 0;  // half-width of the 95% CI of the mean; NaN when n < 2
};

// Summary of finite values (the caller drops missing ones).
SampleSummary summarize(const std::vector<double>& values);

// P(T <= t) for Student's t with df > 0 degrees of freedom (df may be fractional).
double student_t_cdf(double t, double df);

// The p-quantile (0 < p < 1) of Student's t with df > 0 degrees of freedom.
double student_t_quantile(double p, double df);

}  // namespace moetb::sweeps
