// Training curves of a run report, from RUN/train_log.jsonl (docs/run-format.md), read
// through runs/ and kept as the plotted numbers only (a few per step), so long runs stay
// small; plotted series are thinned to bucket means. Figures: loss with validation and the
// entropy floor, validation loss per domain with its floors, aux losses, load violation per
// layer, learning rate, and the routing metrics at each evaluation.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace moetb::reports {

struct TrainLog {
  // (step, value) per plotted quantity: "loss_bits", "lr", "aux_loss", "aux_terms.NAME",
  // "max_load_violation", "violation.L" (layer L).
  std::map<std::string, std::vector<std::pair<double, double>>> steps;
  std::vector<nlohmann::json> evals;  // the evaluation lines, in order
  std::size_t step_lines = 0;
  bool torn_tail = false;             // the last line was cut short (a killed run) and left out
};

// Reads the log through runs/ (run_reader.h); a missing file gives an empty log, a torn last
// line is left out, a malformed earlier line is a one-line error.
TrainLog read_train_log(const std::string& path);

// The <figure class="chart curve"> figures (in a flex container).
std::string curve_figures(const TrainLog& log);

// Several runs on shared axes (this run first, then the runs beside it, by name): training loss,
// validation loss, RS and utilization at each evaluation, one colour per run. "" for fewer than 2.
std::string overlay_figures(const std::vector<std::pair<std::string, TrainLog>>& runs);

// The final evaluation per domain (<table id="eval-table">) from an "eval" object.
std::string eval_table(const nlohmann::json& eval);

}  // namespace moetb::reports
