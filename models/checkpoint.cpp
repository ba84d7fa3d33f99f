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
#include <iostream>
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

namespace {

// The step named by checkpoints/latest, or -1 when it is missing or unreadable.
int64_t named_latest(const fs::path& root) {
  std::error_code ec;
  if (!fs::exists(root / "latest", ec)) return -1;
  try {
    const std::string name = read_text(root / "latest");
    if (name.rfind("step-", 0) != 0) return -1;
    return std::stoll(name.substr(5));
  } catch (const std::exception&) {
    return -1;
  }
}

// Every step-NNNNNN checkpoint folder's step, newest first.
std::vector<int64_t> checkpoint_steps(const fs::path& root) {
  std::vector<int64_t> steps;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory(ec) || name.rfind("step-", 0) != 0 || name.size() != 11) continue;
    if (name.find_first_not_of("0123456789", 5) != std::string::npos) continue;
    steps.push_back(std::stoll(name.substr(5)));
  }
  std::sort(steps.rbegin(), steps.rend());
  return steps;
}

// The checkpoints to try, in order: the one `latest` names, then the others, newest first.
std::vector<int64_t> candidates(const fs::path& root) {
  std::vector<int64_t> out;
  const int64_t named = named_latest(root);
  if (named >= 0) out.push_back(named);
  for (int64_t s : checkpoint_steps(root))
    if (s != named) out.push_back(s);
  return out;
}

CheckpointState load_one(const fs::path& dir, MoETransformerImpl& model, torch::optim::Optimizer& opt, int64_t step) {
  CheckpointState s;
  try {
    const nlohmann::json j = nlohmann::json::parse(read_text(dir / "state.json"));
    s.step = j.at("step").get<int64_t>();
    if (s.step != step) throw std::runtime_error("state.json says step " + std::to_string(s.step));
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

}  // namespace

int64_t latest_checkpoint_step(const std::string& run_dir) {
  const auto c = candidates(fs::path(run_dir) / "checkpoints");
  return c.empty() ? -1 : c.front();
}

CheckpointState load_checkpoint(const std::string& run_dir, MoETransformerImpl& model, torch::optim::Optimizer& opt) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const std::vector<int64_t> steps = candidates(root);
  if (steps.empty()) throw std::runtime_error(run_dir + ": no checkpoint to resume from (checkpoints/ has none)");
  std::string first_error;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    try {
      CheckpointState s = load_one(root / step_name(steps[i]), model, opt, steps[i]);
      if (i > 0)
        std::cerr << "warning: " << first_error << "; resuming from the newest valid checkpoint, " << step_name(steps[i]) << "\n";
      return s;
    } catch (const std::exception& e) {
      if (first_error.empty()) first_error = e.what();
    }
  }
  throw std::runtime_error(first_error + (steps.size() > 1 ? " (and no older checkpoint loads either)" : ""));
}

}  // namespace moetb
