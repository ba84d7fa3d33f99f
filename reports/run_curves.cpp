// Training curves of a run report (see run_curves.h). Step lines give training loss, learning
// rate, aux losses and per-layer load violation; evaluation lines give validation loss overall
// and per domain, the entropy floors and the routing metric summary.
#include "reports/run_curves.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <stdexcept>

#include "reports/html.h"
#include "reports/metric_table.h"
#include "runs/run_reader.h"
#include "charts/line_chart.h"

namespace moetb::reports {
namespace {

constexpr std::size_t kMaxPoints = 500;  // per plotted series
constexpr int kWidth = 560, kHeight = 340;  // two side by side in the page

using Points = std::vector<std::pair<double, double>>;

// At most kMaxPoints points: runs of consecutive points replaced by their mean.
Points thin(const Points& p, std::size_t* bucket = nullptr) {
  const std::size_t b = (p.size() + kMaxPoints - 1) / kMaxPoints;
  if (bucket) *bucket = std::max<std::size_t>(1, b);
  if (b <= 1) return p;
  Points out;
  for (std::size_t i = 0; i < p.size(); i += b) {
    const std::size_t end = std::min(p.size(), i + b);
    double x = 0, y = 0;
    for (std::size_t j = i; j < end; ++j) x += p[j].first, y += p[j].second;
    out.emplace_back(x / static_cast<double>(end - i), y / static_cast<double>(end - i));
  }
  return out;
}

charts::ChartSeries series(const std::string& name, const Points& p, int colour, bool markers, bool dashed = false) {
  charts::ChartSeries s;
  s.name = name;
  for (const auto& [x, y] : p) {
    s.x.push_back(x);
    s.y.push_back(y);
  }
  s.colour = colour;
  s.markers = markers;
  s.dashed = dashed;
  return s;
}

charts::LineChart chart(const std::string& title, const std::string& y_label) {
  charts::LineChart c;
  c.title = title;
  c.x_label = "training step";
  c.y_label = y_label;
  c.width = kWidth;
  c.height = kHeight;
  return c;
}

std::string curve(const charts::LineChart& c, const std::string& name, const std::string& caption) {
  return figure("chart curve", " data-curve=\"" + esc(name) + "\"", charts::render_line_chart(c), caption);
}

double number_or_nan(const nlohmann::json& j) { return j.is_number() ? j.get<double>() : NAN; }

void add_point(TrainLog& log, const std::string& key, double step, double v) {
  if (std::isfinite(v)) log.steps[key].emplace_back(step, v);
}

std::string thinned_note(std::size_t bucket) {
  return bucket > 1 ? " Each point is the mean of " + std::to_string(bucket) + " consecutive logged steps." : "";
}

}  // namespace

TrainLog read_train_log(const std::string& path) {
  TrainLog log;
  const runs::TrainLog records = runs::read_train_log(path);
  log.torn_tail = records.torn_tail;
  for (const runs::EvalRecord& e : records.evals) log.evals.push_back(e.to_json());
  for (const runs::StepRecord& s : records.steps) {
    ++log.step_lines;
    const double step = static_cast<double>(s.step);
    add_point(log, "loss_bits", step, s.loss_bits);
    add_point(log, "lr", step, s.lr);
    add_point(log, "aux_loss", step, s.aux_loss);
    add_point(log, "max_load_violation", step, s.max_load_violation);
    for (const auto& [name, value] : s.aux_terms) add_point(log, "aux_terms." + name, step, value);
    for (std::size_t l = 0; l < s.load.size(); ++l) add_point(log, "violation." + std::to_string(l), step, s.load[l].violation);
  }
  return log;
}

std::string curve_figures(const TrainLog& log) {
  auto get = [&](const std::string& key) {
    const auto it = log.steps.find(key);
    return it == log.steps.end() ? Points{} : it->second;
  };
  double first = INFINITY, last = -INFINITY;  // the step range of the whole log
  for (const auto& [key, points] : log.steps)
    if (!points.empty()) first = std::min(first, points.front().first), last = std::max(last, points.back().first);
  for (const auto& e : log.evals) {
    const double s = number_or_nan(e.value("step", nlohmann::json()));
    if (std::isfinite(s)) first = std::min(first, s), last = std::max(last, s);
  }
  auto flat = [&](double y) { return Points{{first, y}, {last, y}}; };
  std::string out = "<div class=\"figures\">\n";

  // Loss: training, validation, floor.
  {
    auto c = chart("Training and validation loss", "cross-entropy (bits/token)");
    std::size_t bucket = 1;
    const Points train = thin(get("loss_bits"), &bucket);
    Points val;
    double floor = NAN;
    for (const auto& e : log.evals) {
      const double s = number_or_nan(e.value("step", nlohmann::json()));
      const double v = number_or_nan(at_path(e, "eval.loss_bits"));
      if (std::isfinite(s) && std::isfinite(v)) val.emplace_back(s, v);
      if (std::isfinite(number_or_nan(at_path(e, "eval.floor_bits")))) floor = number_or_nan(at_path(e, "eval.floor_bits"));
    }
    if (!train.empty()) c.series.push_back(series("training loss", train, 0, false));
    if (!val.empty()) c.series.push_back(series("validation loss", val, 1, true));
    if (std::isfinite(floor) && std::isfinite(first)) c.series.push_back(series("entropy floor", flat(floor), 2, false, true));
    out += curve(c, "loss",
                 "Cross-entropy in bits per token against the training step. <b>Training loss</b> is measured on each "
                 "step's batch; <b>validation loss</b> on held-out sequences at every evaluation; the <b>dashed line</b> "
                 "is the entropy-rate floor of the data, the lowest loss any model can reach, so the distance from "
                 "validation loss down to it is what is left to learn." + thinned_note(bucket));
  }
  // Validation loss per domain, with each domain's floor dashed in the same colour.
  if (!log.evals.empty() && at_path(log.evals.back(), "eval.domains").is_array()) {
    auto c = chart("Validation loss per domain", "cross-entropy (bits/token)");
    const nlohmann::json domains = at_path(log.evals.back(), "eval.domains");
    for (std::size_t d = 0; d < domains.size(); ++d) {
      const std::string name = domains[d].value("name", "domain " + std::to_string(d));
      Points val;
      for (const auto& e : log.evals) {
        const nlohmann::json ds = at_path(e, "eval.domains");
        const double s = number_or_nan(e.value("step", nlohmann::json()));
        if (ds.is_array() && d < ds.size() && std::isfinite(s) && ds[d].is_object())
          if (const double v = number_or_nan(ds[d].value("loss_bits", nlohmann::json())); std::isfinite(v)) val.emplace_back(s, v);
      }
      const int colour = static_cast<int>(d);
      c.series.push_back(series(name, val, colour, true));
      const double floor = number_or_nan(domains[d].value("floor_bits", nlohmann::json()));
      if (std::isfinite(floor)) c.series.push_back(series(name + " floor", flat(floor), colour, false, true));
    }
    out += curve(c, "domain-loss",
                 "Validation loss of each domain at every evaluation (solid, with markers) and that domain's entropy-rate "
                 "floor (dashed, same colour), in bits per token. The domain whose loss sits furthest above its own floor "
                 "is the one the model has learned least.");
  }
  // Aux losses: the weighted total, and the unweighted terms that are not zero throughout.
  if (!get("aux_loss").empty()) {
    auto c = chart("Auxiliary loss (weighted, added to the loss)", "aux loss (unitless)");
    std::size_t bucket = 1;
    c.series.push_back(series("aux loss", thin(get("aux_loss"), &bucket), 0, false));
    out += curve(c, "aux-loss",
                 "The router's auxiliary loss as added to the training objective: each term below times its coefficient "
                 "(balance_coef, z_loss_coef, ...). Zero throughout for routers without auxiliary terms." + thinned_note(bucket));
  }
  {
    auto c = chart("Auxiliary loss terms (before weighting)", "term value (unitless)");
    std::vector<std::string> zero;
    std::size_t bucket = 1;
    for (const auto& [key, points] : log.steps) {
      if (key.rfind("aux_terms.", 0) != 0) continue;
      const std::string name = key.substr(10);
      if (std::all_of(points.begin(), points.end(), [](const auto& p) { return p.second == 0; })) {
        zero.push_back(name);
        continue;
      }
      c.series.push_back(series(name, thin(points, &bucket), static_cast<int>(c.series.size()), false));
    }
    if (!c.series.empty() || !zero.empty()) {
      std::string caption = "Each auxiliary term before its coefficient: <b>balance</b> is the load-balancing loss "
                            "(E \xC2\xB7 \xCE\xA3 f_e P_e, 1 at perfect balance), <b>seq_balance</b> its per-sequence form, <b>z_loss</b> the router z-loss "
                            "(mean squared log-sum-exp of the router logits), <b>dropped_fraction</b> the share of "
                            "assignments dropped by the capacity limit.";
      if (!zero.empty()) {
        caption += " Zero at every step and not drawn:";
        for (std::size_t i = 0; i < zero.size(); ++i) caption += (i ? ", " : " ") + esc(zero[i]);
        caption += ".";
      }
      out += curve(c, "aux-terms", caption + thinned_note(bucket));
    }
  }
  // Load violation per layer.
  {
    auto c = chart("Load violation per MoE layer during training", "MaxVio = E \xC2\xB7 max share \xE2\x88\x92 1");
    std::size_t bucket = 1;
    for (int l = 0;; ++l) {
      const Points p = get("violation." + std::to_string(l));
      if (p.empty()) break;
      c.series.push_back(series("layer " + std::to_string(l), thin(p, &bucket), l, false));
    }
    if (c.series.empty() && !get("max_load_violation").empty())
      c.series.push_back(series("max over layers", thin(get("max_load_violation"), &bucket), 0, false));
    if (!c.series.empty())
      out += curve(c, "load-violation",
                   "How far the busiest expert of each MoE layer sits above its balanced share on each step's batch: "
                   "E times the largest expert share, minus 1. 0 means perfectly balanced; 1 means the busiest expert "
                   "gets twice its share." + thinned_note(bucket));
  }
  // Learning rate.
  if (!get("lr").empty()) {
    auto c = chart("Learning rate schedule", "learning rate");
    std::size_t bucket = 1;
    c.series.push_back(series("learning rate", thin(get("lr"), &bucket), 0, false));
    out += curve(c, "lr", "The learning rate at each step (warmup, then cosine decay to min_lr_ratio times the peak)." + thinned_note(bucket));
  }
  // Routing metrics at each evaluation.
  if (!log.evals.empty()) {
    auto c = chart("Routing metrics at each evaluation", "value (mean over MoE layers)");
    const std::vector<std::pair<const char*, const char*>> keys = {
        {"rs", "RS"}, {"di", "DI"}, {"ner", "NER"}, {"rss", "RSS"}, {"purity", "purity"}, {"load.utilization", "utilization"}};
    for (const auto& [key, label] : keys) {
      Points p;
      for (const auto& e : log.evals) {
        const double s = number_or_nan(e.value("step", nlohmann::json()));
        const double v = number_or_nan(at_path(e, std::string("metrics_summary.") + key));
        if (std::isfinite(s) && std::isfinite(v)) p.emplace_back(s, v);
      }
      if (!p.empty()) c.series.push_back(series(label, p, static_cast<int>(c.series.size()), true));
    }
    out += curve(c, "routing-metrics",
                 "The routing metric summary (mean over MoE layers) of each evaluation's trace: RS, DI and NER measure "
                 "how specialised routing is by domain (1 = disjoint experts per domain), RSS how much a token's id alone "
                 "decides its experts, purity the agreement with the reference expert groups, utilization the load "
                 "balance (1 = balanced). The Metrics section explains each one.");
  }
  return out + "</div>\n";
}

std::string eval_table(const nlohmann::json& eval) {
  Table t;
  t.id = "eval-table";
  t.caption = "Final validation loss against the entropy-rate floor (bits/token)";
  t.header = {"domain", "tokens", "validation loss", "floor", "gap above floor"};
  t.numeric = {1, 2, 3, 4};
  if (eval.contains("domains") && eval["domains"].is_array())
    for (const auto& d : eval["domains"]) {
      if (!d.is_object()) continue;
      t.rows.push_back({esc(d.value("name", std::string("?"))), number_cell(d.value("n_tokens", nlohmann::json()), 0),
                        number_cell(d.value("loss_bits", nlohmann::json()), 4), number_cell(d.value("floor_bits", nlohmann::json()), 4),
                        number_cell(d.value("gap_bits", nlohmann::json()), 4)});
      t.row_attrs.push_back(" data-domain=\"" + esc(d.value("name", std::string("?"))) + "\"");
    }
  t.rows.push_back({"<th scope=\"row\">all domains</th>", number_cell(eval.value("n_tokens", nlohmann::json()), 0),
                    number_cell(eval.value("loss_bits", nlohmann::json()), 4), number_cell(eval.value("floor_bits", nlohmann::json()), 4),
                    number_cell(eval.value("gap_bits", nlohmann::json()), 4)});
  t.row_attrs.push_back(" data-domain=\"*\"");
  std::string out = table(t);
  if (eval.contains("gap_closed") || eval.contains("unigram_bits"))
    out += "<p>A unigram model (no context) would score " + fmt(eval.value("unigram_bits", nlohmann::json()), 4) +
           " bits/token; this run closes " + fmt(eval.value("gap_closed", nlohmann::json()), 3) +
           " of the gap between that and the floor (1 = reaches the floor).</p>\n";
  return out;
}

std::string overlay_figures(const std::vector<std::pair<std::string, TrainLog>>& runs) {
  if (runs.size() < 2) return "";
  std::string out = "<div class=\"figures\">\n";
  {
    auto c = chart("Training loss of the runs compared", "cross-entropy (bits/token)");
    std::size_t bucket = 1;
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const auto it = runs[i].second.steps.find("loss_bits");
      if (it == runs[i].second.steps.end()) continue;
      std::size_t b = 1;
      c.series.push_back(series(runs[i].first, thin(it->second, &b), static_cast<int>(i), false));
      bucket = std::max(bucket, b);
    }
    if (!c.series.empty())
      out += curve(c, "overlay-loss",
                   "Training loss of this run (first in the legend) and of each run beside it, one colour per run, on the "
                   "same axes." + thinned_note(bucket));
  }
  struct Overlay {
    std::string key, label, id;
  };
  const std::vector<Overlay> keys = {{"eval.loss_bits", "Validation loss", "overlay-val"},
                                     {"metrics_summary.rs", "RS", "overlay-rs"},
                                     {"metrics_summary.load.utilization", "Utilization", "overlay-utilization"}};
  for (const auto& [key, label, id] : keys) {
    auto c = chart(label + " at each evaluation, runs compared", key == "eval.loss_bits" ? "cross-entropy (bits/token)" : label);
    for (std::size_t i = 0; i < runs.size(); ++i) {
      Points p;
      for (const auto& e : runs[i].second.evals) {
        const double st = number_or_nan(e.value("step", nlohmann::json()));
        const double v = number_or_nan(at_path(e, key));
        if (std::isfinite(st) && std::isfinite(v)) p.emplace_back(st, v);
      }
      if (!p.empty()) c.series.push_back(series(runs[i].first, p, static_cast<int>(i), true));
    }
    if (!c.series.empty())
      out += curve(c, id,
                   label + " at every evaluation of each run, one colour per run (the same colours as the loss overlay). "
                   "One run per setting: a gap between curves smaller than the spread between seeds is not an effect "
                   "(compare seeds with moetb compare --a RUN... --b RUN...).");
  }
  return out + "</div>\n";
}

}  // namespace moetb::reports
