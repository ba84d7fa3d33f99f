// The sweep directory: planning (merge with an existing plan, stable indices), the plan
// file sweep.json, run results written atomically, and the dataset location.
#include "sweeps/sweep_dir.h"

#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "sweeps/sweep_spec.h"
#include "sweeps/train_check.h"

namespace fs = std::filesystem;

namespace moetb::sweeps {
namespace {

constexpr const char* kPlanFormat = "moetb-sweep/1";

nlohmann::json entry_json(const PlanEntry& e) {
  nlohmann::json axes = nlohmann::json::array();
  for (const auto& [k, v] : e.axes) axes.push_back({k, v});
  return {{"index", e.index}, {"id", e.id}, {"active", e.active}, {"axes", axes}, {"seed", e.seed}};
}

nlohmann::json plan_json(const SweepPlan& p) {
  nlohmann::json runs = nlohmann::json::array();
  for (const auto& e : p.runs) runs.push_back(entry_json(e));
  return {{"format", kPlanFormat}, {"name", p.name},          {"seed_key", p.seed_key}, {"axis_keys", p.axis_keys},
          {"metrics", p.metrics},  {"data_dir", p.data_dir}, {"datagen_id", p.datagen_id}, {"runs", runs}};
}

}  // namespace

void write_file_atomic(const fs::path& path, const std::string& text) { replace_owned_file(path, text); }

OutputLock SweepDir::lock(OutputLock::Mode mode) const {
  return OutputLock::take(root_ / "sweep.lock", root_.string(), mode);
}

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument(path.string() + ": cannot read");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

PlanReport SweepDir::plan(const std::string& spec_path) const {
  const SweepSpec spec = load_spec(spec_path);
  const std::vector<PlannedRun> runs = expand(spec);
  check_train_configs(spec, runs, spec_path);  // before anything is written
  std::error_code ec;
  if (fs::exists(root_, ec) && !fs::is_directory(root_, ec))
    throw OutputError(root_.string() + ": is " + describe_existing(root_) + ", not a sweep folder");
  if (fs::is_directory(root_, ec) && !fs::exists(root_ / "sweep.json", ec)) {  // only the spec itself may be there
    for (const auto& e : fs::directory_iterator(root_, ec))  // (and the lock of a plan that failed)
      if (!fs::equivalent(e.path(), spec_path, ec) && e.path().filename() != "sweep.lock")
        throw OutputError(root_.string() + ": is " + describe_existing(root_) +
                          ", not a moetb sweep folder (no sweep.json); choose another --out");
  }
  fs::create_directories(root_);
  const OutputLock held = lock(OutputLock::Mode::exclusive);
  SweepPlan plan;
  if (fs::exists(root_ / "sweep.json")) plan = load();
  plan.name = spec.name;
  plan.seed_key = spec.seed_key;
  plan.axis_keys = spec.axis_keys;
  plan.metrics = spec.metrics;
  plan.data_dir.clear();
  plan.datagen_id.clear();
  if (spec.has_datagen) {
    plan.datagen_id = config_id(spec.datagen);
  } else {  // for the record; each run's config.toml holds its own absolute data.dir
    fs::path data = spec.base.at("data.dir").display();
    if (data.is_relative()) data = fs::absolute(fs::path(spec_path).parent_path() / data).lexically_normal();
    plan.data_dir = data.string();
  }
  std::map<std::string, std::size_t> known;  // id -> position in plan.runs
  for (std::size_t i = 0; i < plan.runs.size(); ++i) {
    known[plan.runs[i].id] = i;
    plan.runs[i].active = false;
  }
  PlanReport report;
  fs::create_directories(root_ / "runs");
  for (const PlannedRun& run : runs) {
    PlanEntry entry;
    entry.id = run.id;
    entry.seed = run.seed;
    for (const auto& [k, v] : run.axes) entry.axes.emplace_back(k, v.display());
    if (auto it = known.find(run.id); it != known.end()) {
      plan.runs[it->second].active = true;
      plan.runs[it->second].axes = entry.axes;
      ++report.kept;
      continue;
    }
    entry.index = static_cast<int64_t>(plan.runs.size());
    fs::create_directories(run_dir(run.id));
    FlatConfig config = run.config;
    if (auto it = config.find("data.dir"); it != config.end()) {  // relative to the spec's folder
      fs::path data = it->second.display();
      if (data.is_relative()) data = fs::absolute(fs::path(spec_path).parent_path() / data).lexically_normal();
      it->second = ConfigValue::of_string(data.string());
    }  // a generated dataset is passed as --data at run time, so the sweep folder can move
    write_file_atomic(config_path(run.id), "# moetb sweep " + spec.name + ", run " + run.id + "\n" + to_toml(config));
    plan.runs.push_back(entry);
    known[run.id] = plan.runs.size() - 1;
    ++report.added;
  }
  for (const auto& e : plan.runs) report.inactive += e.active ? 0 : 1;
  report.total = runs.size();
  if (spec.has_datagen) write_file_atomic(datagen_config_path(plan), "# moetb sweep " + spec.name + ": dataset\n" + to_toml(spec.datagen));
  write_file_atomic(root_ / "spec.toml", read_text_file(spec_path));
  write_file_atomic(root_ / "sweep.json", plan_json(plan).dump(1) + "\n");
  return report;
}

SweepPlan SweepDir::load() const {
  const fs::path path = root_ / "sweep.json";
  if (!fs::exists(path)) throw std::invalid_argument(root_.string() + ": not a sweep directory (no sweep.json; run moetb sweep plan SPEC --out DIR)");
  const nlohmann::json j = nlohmann::json::parse(read_text_file(path), nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != kPlanFormat || !j.contains("runs"))
    throw std::invalid_argument(path.string() + ": not a " + std::string(kPlanFormat) + " plan");
  SweepPlan p;
  try {
    p.name = j.at("name").get<std::string>();
    p.seed_key = j.at("seed_key").get<std::string>();
    p.axis_keys = j.at("axis_keys").get<std::vector<std::string>>();
    p.metrics = j.at("metrics").get<std::vector<std::string>>();
    p.data_dir = j.at("data_dir").get<std::string>();
    p.datagen_id = j.at("datagen_id").get<std::string>();
    for (const auto& r : j.at("runs")) {
      PlanEntry e;
      e.index = r.at("index").get<int64_t>();
      e.id = r.at("id").get<std::string>();
      e.active = r.at("active").get<bool>();
      e.seed = r.at("seed").get<int64_t>();
      for (const auto& kv : r.at("axes")) e.axes.emplace_back(kv.at(0).get<std::string>(), kv.at(1).get<std::string>());
      if (e.index != static_cast<int64_t>(p.runs.size())) throw std::invalid_argument("run indices out of order");
      p.runs.push_back(std::move(e));
    }
  } catch (const std::exception& e) {
    throw std::invalid_argument(path.string() + ": malformed plan (" + e.what() + ")");
  }
  return p;
}

fs::path SweepDir::data_dir(const SweepPlan& plan) const {
  if (!plan.data_dir.empty()) return plan.data_dir;
  return fs::absolute(root_ / ("data-" + plan.datagen_id));
}

fs::path SweepDir::datagen_config_path(const SweepPlan& plan) const { return root_ / ("datagen-" + plan.datagen_id + ".toml"); }

std::optional<nlohmann::json> SweepDir::read_result(const std::string& id) const {
  const fs::path path = result_path(id);
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(read_text_file(path), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("status"))
    throw std::invalid_argument(path.string() + ": not a run result (delete it to rerun the run)");
  return j;
}

RunState SweepDir::state(const std::string& id) const {
  const auto r = read_result(id);
  if (!r) return RunState::pending;
  return (*r)["status"] == "ok" ? RunState::ok : RunState::failed;
}

void SweepDir::write_result(const std::string& id, const nlohmann::json& result) const {
  write_file_atomic(result_path(id), result.dump(1) + "\n");
}

}  // namespace moetb::sweeps
