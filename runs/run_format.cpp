// The moetb-run/1 records (run_format.h) to and from JSON. The writers emit exactly the keys
// docs/run-format.md lists; the readers take what is there, so a log line missing a number
// reads as NaN (or null for an optional), never as a made-up zero.
#include "runs/run_format.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <stdexcept>

namespace moetb::runs {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

nlohmann::json opt(const std::optional<double>& x) { return x ? nlohmann::json(*x) : nlohmann::json(nullptr); }

std::optional<double> opt_number(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

double number(const nlohmann::json& j, const char* key) { return opt_number(j, key).value_or(kNaN); }

int64_t integer(const nlohmann::json& j, const char* key, int64_t fallback = 0) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int64_t>() : fallback;
}

std::string text(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

nlohmann::json object_or_empty(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : nlohmann::json::object();
}

void flatten(const nlohmann::json& j, const std::string& prefix, std::map<std::string, nlohmann::json>& out) {
  if (!j.is_object()) {
    out[prefix] = j;
    return;
  }
  for (const auto& [k, v] : j.items()) flatten(v, prefix.empty() ? k : prefix + "." + k, out);
}

std::string shown(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

bool fixed(const std::string& key) {
  for (const std::string& k : resume_fixed_keys())
    if (k.back() == '.' ? key.compare(0, k.size(), k) == 0 : key == k) return true;
  return false;
}

std::string absolute_normal(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path p = std::filesystem::absolute(path, ec);
  std::filesystem::path n = (ec ? std::filesystem::path(path) : p).lexically_normal();
  if (n.filename().empty() && n.has_parent_path() && n != n.root_path()) n = n.parent_path();  // "/a/b/" -> "/a/b"
  return n.string();
}

bool same_folder(const std::string& a, const std::string& b) {
  if (absolute_normal(a) == absolute_normal(b)) return true;
  std::error_code ec;
  return std::filesystem::equivalent(a, b, ec) && !ec;
}

}  // namespace

// ---- run.json ----

nlohmann::json RunInfo::to_json() const {
  return {{"format", format},   {"seed", seed},       {"git_revision", git_revision}, {"threads", threads},
          {"device", device},   {"dataset", dataset}, {"config", config},             {"provenance", provenance}, {"machine", machine}};
}

RunInfo RunInfo::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw std::invalid_argument(where + ": not a run.json (not a JSON object)");
  RunInfo r;
  r.format = text(j, "format");
  if (r.format.empty() && !j.contains("config"))
    throw std::invalid_argument(where + ": not a run.json written by moetb train (no \"format\" and no \"config\")");
  if (!r.format.empty() && r.format != kFormat) {
    const std::string prefix = std::string(kFormatName) + "/";
    if (r.format.compare(0, prefix.size(), prefix) == 0)
      throw std::invalid_argument(where + ": format " + r.format + " is newer than this moetb reads (" + kFormat + ")");
    throw std::invalid_argument(where + ": format '" + r.format + "' is not a moetb run (" + kFormat + ")");
  }
  r.seed = integer(j, "seed");
  r.git_revision = text(j, "git_revision");
  r.threads = integer(j, "threads", 1);
  r.device = text(j, "device");
  r.dataset = text(j, "dataset");
  r.config = object_or_empty(j, "config");
  r.provenance = object_or_empty(j, "provenance");
  r.machine = object_or_empty(j, "machine");
  return r;
}

// ---- steps ----

nlohmann::json StepRecord::to_json() const {
  nlohmann::json l = nlohmann::json::array();
  for (const LayerLoad& x : load)
    l.push_back({{"max_share", x.max_share}, {"min_share", x.min_share}, {"violation", x.violation},
                 {"dropped_fraction", x.dropped_fraction}});
  return {{"step", step},   {"lr", lr},         {"loss_bits", loss_bits},          {"aux_loss", aux_loss},
          {"aux_terms", aux_terms}, {"load", l}, {"max_load_violation", max_load_violation}, {"tokens_per_s", tokens_per_s}};
}

StepRecord StepRecord::from_json(const nlohmann::json& j) {
  StepRecord s;
  s.step = integer(j, "step");
  s.lr = number(j, "lr");
  s.loss_bits = number(j, "loss_bits");
  s.aux_loss = number(j, "aux_loss");
  const nlohmann::json terms = object_or_empty(j, "aux_terms");  // items() of a temporary would dangle
  for (const auto& [k, v] : terms.items())
    if (v.is_number()) s.aux_terms[k] = v.get<double>();
  if (const auto it = j.find("load"); it != j.end() && it->is_array())
    for (const auto& x : *it) {
      if (!x.is_object()) continue;
      s.load.push_back({number(x, "max_share"), number(x, "min_share"), number(x, "violation"), number(x, "dropped_fraction")});
    }
  s.max_load_violation = number(j, "max_load_violation");
  s.tokens_per_s = number(j, "tokens_per_s");
  return s;
}

// ---- evaluations ----

nlohmann::json EvalSummary::to_json() const {
  nlohmann::json j;
  j["loss_bits"] = opt(loss_bits);
  j["floor_bits"] = opt(floor_bits);
  j["unigram_bits"] = opt(unigram_bits);
  j["gap_bits"] = opt(gap_bits);
  j["gap_closed"] = opt(gap_closed);
  j["n_tokens"] = n_tokens;
  for (const DomainEval& d : domains)
    j["domains"].push_back({{"name", d.name},
                            {"n_tokens", d.n_tokens},
                            {"loss_bits", opt(d.loss_bits)},
                            {"floor_bits", opt(d.floor_bits)},
                            {"gap_bits", opt(d.gap_bits)}});
  return j;
}

EvalSummary EvalSummary::from_json(const nlohmann::json& j) {
  EvalSummary e;
  if (!j.is_object()) return e;
  e.loss_bits = opt_number(j, "loss_bits");
  e.floor_bits = opt_number(j, "floor_bits");
  e.unigram_bits = opt_number(j, "unigram_bits");
  e.gap_bits = opt_number(j, "gap_bits");
  e.gap_closed = opt_number(j, "gap_closed");
  e.n_tokens = integer(j, "n_tokens");
  if (const auto it = j.find("domains"); it != j.end() && it->is_array())
    for (const auto& d : *it) {
      if (!d.is_object()) continue;
      e.domains.push_back({text(d, "name"), integer(d, "n_tokens"), opt_number(d, "loss_bits"), opt_number(d, "floor_bits"),
                           opt_number(d, "gap_bits")});
    }
  return e;
}

nlohmann::json EvalRecord::to_json() const {
  nlohmann::json j = {{"step", step}, {"eval", eval.to_json()}, {"trace", trace}, {"metrics_summary", metrics_summary}};
  if (!routing.empty()) j["routing"] = routing;
  if (dropless)
    j["dropless"] = {{"rule", dropless->rule},
                     {"eval", dropless->eval.to_json()},
                     {"trace", dropless->trace},
                     {"metrics_summary", dropless->metrics_summary}};
  return j;
}

EvalRecord EvalRecord::from_json(const nlohmann::json& j) {
  EvalRecord r;
  r.step = integer(j, "step");
  if (const auto it = j.find("eval"); it != j.end()) r.eval = EvalSummary::from_json(*it);
  r.trace = text(j, "trace");
  r.metrics_summary = object_or_empty(j, "metrics_summary");
  r.routing = text(j, "routing");
  if (const auto it = j.find("dropless"); it != j.end() && it->is_object()) {
    SecondEval d;
    d.rule = text(*it, "rule");
    if (const auto e = it->find("eval"); e != it->end()) d.eval = EvalSummary::from_json(*e);
    d.trace = text(*it, "trace");
    d.metrics_summary = object_or_empty(*it, "metrics_summary");
    r.dropless = d;
  }
  return r;
}

nlohmann::json FinalEval::to_json() const {
  nlohmann::json j = record.to_json();
  j["router"] = router;
  j["metrics"] = metrics;
  j["seed"] = seed;
  j["git_revision"] = git_revision;
  return j;
}

FinalEval FinalEval::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("eval") || !j["eval"].is_object() || !j.contains("metrics_summary"))
    throw std::invalid_argument(where + ": not an eval.json written by moetb train");
  FinalEval f;
  f.record = EvalRecord::from_json(j);
  f.router = text(j, "router");
  f.metrics = object_or_empty(j, "metrics");
  f.seed = integer(j, "seed");
  f.git_revision = text(j, "git_revision");
  return f;
}

std::string trace_name(int64_t step) {
  char name[48];
  std::snprintf(name, sizeof name, "%s/step-%06lld.safetensors", kTracesDir, static_cast<long long>(step));
  return name;
}

std::string dropless_trace_name(int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "%s/step-%06lld.safetensors", kDroplessTracesDir, static_cast<long long>(step));
  return name;
}

// ---- resume ----

const std::vector<std::string>& resume_fixed_keys() {
  static const std::vector<std::string> keys = {
      "data.",           "model.",           "moe.",              "router.",         "train.seed",
      "train.micro_batch", "train.accum_steps", "train.lr",        "train.min_lr_ratio", "train.warmup_steps",
      "train.weight_decay", "train.beta1",     "train.beta2",       "train.grad_clip", "eval.sequences"};
  return keys;
}

void check_resume(const RunInfo& stored, const nlohmann::json& now) {
  std::map<std::string, nlohmann::json> was, is;
  flatten(stored.config, "", was);
  flatten(now, "", is);
  // The data: the stored absolute dataset path (older runs: their data.dir) against now's.
  const auto now_data = is.find("data.dir");
  std::string old_data = stored.dataset;
  if (old_data.empty() && was.count("data.dir") && was["data.dir"].is_string()) old_data = was["data.dir"].get<std::string>();
  if (now_data != is.end() && now_data->second.is_string() && !old_data.empty() &&
      !same_folder(old_data, now_data->second.get<std::string>()))
    throw std::invalid_argument("data.dir cannot change on resume: was " + absolute_normal(old_data) + ", now " +
                                absolute_normal(now_data->second.get<std::string>()));
  for (const auto& [key, value] : was) {
    if (key == "data.dir" || !fixed(key)) continue;
    const auto it = is.find(key);
    if (it == is.end()) continue;
    const bool same = value == it->second || (value.is_number() && it->second.is_number() &&
                                              value.get<double>() == it->second.get<double>());
    if (!same) throw std::invalid_argument(key + " cannot change on resume: was " + shown(value) + ", now " + shown(it->second));
  }
}

}  // namespace moetb::runs
