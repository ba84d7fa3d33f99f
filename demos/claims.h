// The claim builder of the demos: a demo's runs grouped by label and seed (DemoRuns), and the
// sentences of "what to look for" built from them. A claim states a difference as an effect only
// when its paired-by-seed 95% t interval (sweeps/paired.h) excludes zero; otherwise it says
// "within seed noise" and gives the numbers, so that no demo teaches the noise of one seed.
// Torch-free; tests/core/test_demos.cpp feeds it synthetic results (an effect, no effect).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sweeps/paired.h"
#include "sweeps/results_table.h"

namespace moetb::demos {

using sweeps::ResultRow;

// What a demo found, from its results: short paragraphs of plain text.
struct DemoFindings {
  std::vector<std::string> look_for;  // "what to look for", with the numbers
  std::string meaning;                // what it means for MoE research (one paragraph)
};

// A demo's runs: one label per compared setting, one column per seed.
struct DemoRuns {
  std::vector<std::string> labels;
  std::vector<int64_t> seeds;
  std::vector<std::vector<const ResultRow*>> rows;  // [label][seed]; nullptr: no such run

  // The label's finite values of `column` over its finished seeds.
  std::vector<double> values(std::size_t label, const std::string& column) const;
  // Their mean (nullopt when there are none).
  std::optional<double> mean(std::size_t label, const std::string& column) const;
  // The finished runs of a label, and the seeds.
  std::size_t finished(std::size_t label) const;
  std::size_t n_seeds() const { return seeds.size(); }
};

// The comparison of two labels on one column: each side's mean and sd over its seeds, and the
// paired difference b - a over the seeds both finished.
struct Effect {
  sweeps::SampleSummary a, b;
  sweeps::PairedDifference diff;
  bool real() const { return diff.excludes_zero(); }  // the interval excludes zero
  bool higher_b() const { return real() && diff.mean > 0; }
  bool higher_a() const { return real() && diff.mean < 0; }
};
Effect effect(const DemoRuns& runs, std::size_t a, std::size_t b, const std::string& column);

// "3.91 ± 0.36" (mean ± sd over seeds; the mean alone for one seed; "n/a" for none).
std::string mean_sd(const sweeps::SampleSummary& s);

// The sentence for one comparison:
//   "<what>: <a mean ± sd> for <name_a> against <b mean ± sd> for <name_b> (mean ± sd over n seeds); "
// then either "higher for <name_b> in every seed / in k of n seeds: paired difference +d [lo, hi]
// (95% t interval), larger than the seed-to-seed variation." or "within seed noise: paired
// difference +d [lo, hi] (95% t interval), same direction in k of n seeds." One seed: "one seed,
// so no interval: cannot be told from seed noise."
std::string claim(const DemoRuns& runs, std::size_t a, std::size_t b, const std::string& column, const std::string& what,
                  const std::string& name_a, const std::string& name_b);

// Number formats for prose: num (3 significant digits), pct (a share as a percentage), whole.
std::string num(std::optional<double> x);
std::string pct(std::optional<double> x);
std::string whole(std::optional<double> x);

}  // namespace moetb::demos
