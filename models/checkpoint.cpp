// Checkpoint save/load (checkpoint.h).
#include "models/checkpoint.h"

#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace moetb {
namespace fs = std::filesystem;
namespace {

std::string step_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%06lld", static_cast<long long>(step));
  return name;
}

void write_text_atomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    if (!out.flush()) throw std::runtime_error(tmp.string() + ": write failed");
  }
  fs::rename(tmp, path);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot read");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::string save_checkpoint(const std::string& run_dir, MoETransformerImpl& model, torch::optim::Optimizer& opt,
                            const CheckpointState& state, int keep) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  fs::create_directories(root);
  const fs::path dir = root / step_name(state.step);
  const fs::path tmp = root / (".tmp-" + step_name(state.step) + "-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp);
  {
    torch::serialize::OutputArchive archive;
    model.save(archive);
    archive.save_to((tmp / "model.pt").string());
  }
  {
    torch::serialize::OutputArchive archive;
    opt.save(archive);
    archive.save_to((tmp / "optimizer.pt").string());
  }
  nlohmann::json j;
  j["step"] = state.step;
  j["sampler"] = {{"epoch", state.sampler.epoch}, {"position", state.sampler.position}};
  j["router_states"] = state.router_states;
  write_text_atomic(tmp / "state.json", j.dump(2) + "\n");
  fs::remove_all(dir, ec);
  fs::rename(tmp, dir);
  write_text_atomic(root / "latest", step_name(state.step) + "\n");
  // Keep the newest `keep` checkpoints.
  std::vector<fs::path> all;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && e.path().filename().string().rfind("step-", 0) == 0) all.push_back(e.path());
  std::sort(all.begin(), all.end());
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < all.size(); ++i) fs::remove_all(all[i], ec);
  return dir.string();
}

int64_t latest_checkpoint_step(const std::string& run_dir) {
  const fs::path latest = fs::path(run_dir) / "checkpoints" / "latest";
  std::error_code ec;
  if (!fs::exists(latest, ec)) return -1;
  const std::string name = read_text(latest);
  return std::stoll(name.substr(5));
}

CheckpointState load_checkpoint(const std::string& run_dir, MoETransformerImpl& model, torch::optim::Optimizer& opt) {
  const int64_t step = latest_checkpoint_step(run_dir);
  if (step < 0) throw std::runtime_error(run_dir + ": no checkpoint to resume from (checkpoints/latest is missing)");
  const fs::path dir = fs::path(run_dir) / "checkpoints" / step_name(step);
  CheckpointState s;
  try {
    const nlohmann::json j = nlohmann::json::parse(read_text(dir / "state.json"));
    s.step = j.at("step").get<int64_t>();
    s.sampler.epoch = j.at("sampler").at("epoch").get<uint64_t>();
    s.sampler.position = j.at("sampler").at("position").get<int64_t>();
    s.router_states = j.at("router_states").get<std::vector<std::vector<uint64_t>>>();
    torch::serialize::InputArchive model_archive;
    model_archive.load_from((dir / "model.pt").string());
    model.load(model_archive);
    torch::serialize::InputArchive opt_archive;
    opt_archive.load_from((dir / "optimizer.pt").string());
    opt.load(opt_archive);
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    throw std::runtime_error(dir.string() + ": cannot load checkpoint: " + what);
  }
  return s;
}

}  // namespace moetb
