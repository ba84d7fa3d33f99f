// load_run and friends (run_model.h): config.toml -> TrainConfig -> model + checkpoint,
// the dataset path from run.json (runs/), MoE layers found by module name. Builds the
// same model config as the trainer (docs/training.md).
#include "models/run_model.h"

#include <torch/cuda.h>
#include <torch/optim/adamw.h>

#include <filesystem>
#include <stdexcept>

#include "common/config_binder.h"
#include "oracle/reference_groups.h"
#include "runs/run_reader.h"

namespace moetb {
namespace fs = std::filesystem;

ModelConfig run_model_config(const TrainConfig& c, const Dataset& data, const std::vector<std::vector<int>>& groups) {
  ModelConfig m;
  m.vocab_size = data.vocab_size();
  m.max_seq_len = data.seq_len();
  m.d_model = c.d_model;
  m.n_layers = c.n_layers;
  m.n_heads = c.n_heads;
  m.first_k_dense = c.first_k_dense;
  m.dense_d_ff = c.dense_d_ff;
  m.tie_embeddings = c.tie_embeddings;
  m.rope_theta = c.rope_theta;
  m.moe.d_ff = c.d_ff;
  m.moe.n_experts = c.n_experts;
  m.moe.top_k = c.top_k;
  m.moe.n_shared_experts = c.n_shared_experts;
  m.moe.router = c.router;  // the one router config (routers/router_config.h)
  m.moe.router.seed = static_cast<uint64_t>(c.seed);
  m.moe.router.domain_groups = groups;
  return m;
}

std::vector<std::vector<int>> run_reference_groups(const TrainConfig& c, const Dataset& data) {
  if (data.n_domains() > c.n_experts) return {};
  // The oracle routes inside its group: a top_k larger than a group is refused there.
  const int top_k = c.router.name == "oracle" ? static_cast<int>(c.top_k) : 0;
  return make_reference_groups(c.n_experts, static_cast<int>(data.n_domains()), static_cast<int>(c.oracle_overlap), top_k);
}

std::vector<std::vector<uint64_t>> save_router_states(MoETransformerImpl& model) {
  std::vector<std::vector<uint64_t>> out;
  for (Router* r : model.routers()) out.push_back(r->save_state());
  return out;
}

void load_router_states(MoETransformerImpl& model, const std::vector<std::vector<uint64_t>>& states) {
  auto routers = model.routers();
  if (states.size() != routers.size()) throw std::runtime_error("checkpoint: router state count does not match the model");
  for (std::size_t i = 0; i < routers.size(); ++i) routers[i]->load_state(states[i]);
}

LoadedRun load_run(const std::string& run_dir, const std::string& device) {
  LoadedRun r;
  r.dir = run_dir;
  const fs::path run(run_dir);
  std::error_code ec;
  if (!fs::exists(run / "config.toml", ec))
    throw std::invalid_argument(run_dir + ": not a moetb run directory (config.toml is missing)");
  ConfigBinder binder;
  bind_train_config(binder, r.cfg);
  binder.load_file((run / "config.toml").string());
  // run.json records the dataset's absolute path; older config.toml files hold it as the user wrote it.
  if (const auto info = runs::read_run_info(run); info && !info->dataset.empty() && fs::exists(info->dataset, ec))
    r.cfg.data_dir = info->dataset;
  if (!device.empty()) r.cfg.device = device;
  validate_train_config(r.cfg);
  if (r.cfg.device == "cuda") {
    if (!torch::cuda::is_available())
      throw std::invalid_argument("train.device: cuda requested, but this LibTorch has no CUDA support or no GPU is visible");
    r.device = at::Device(at::kCUDA);
  }
  if (latest_checkpoint_step(run_dir) < 0)
    throw std::invalid_argument(run_dir + ": the run has no checkpoint (checkpoints/latest is missing)");
  r.data = std::make_unique<Dataset>(r.cfg.data_dir);
  r.groups = run_reference_groups(r.cfg, *r.data);
  r.model = MoETransformer(run_model_config(r.cfg, *r.data, r.groups));
  r.model->to(r.device);
  torch::optim::AdamW scratch(r.model->parameters(), torch::optim::AdamWOptions(r.cfg.lr));  // load_checkpoint wants one
  r.state = load_checkpoint(run_dir, *r.model, scratch);
  load_router_states(*r.model, r.state.router_states);
  for (const auto& child : r.model->named_children()) {
    auto moe = std::dynamic_pointer_cast<MoEFeedForwardImpl>(child.value());
    if (!moe) continue;
    r.moe.push_back(moe.get());
    const std::string& name = child.key();  // "block<l>_moe"
    r.moe_blocks.push_back(std::stoll(name.substr(5, name.find('_') - 5)));
  }
  if (static_cast<int64_t>(r.moe.size()) != r.model->n_moe_layers())
    throw std::runtime_error(run_dir + ": cannot find the model's MoE layers by name");
  return r;
}

}  // namespace moetb
