// Streams a planted trace to disk (simulate_to_disk): one file, or a directory of
// shards. Built in a temporary location and renamed into place when complete, so a
// failed or interrupted run never leaves a partial trace at the requested path.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "oracle/planted_simulator.h"

namespace moetb {
namespace fs = std::filesystem;
namespace {

void write_shard(PlantedSimulator& sim, const SimOutput& out, int64_t begin, int64_t n, const std::string& path) {
  const SimConfig& cfg = sim.config();
  const int k = cfg.top_k;
  TraceShardLayout layout;
  layout.n_tokens = n;
  layout.k.assign(cfg.n_layers, k);
  layout.experts_dtype = out.experts_dtype;
  layout.weights_dtype = out.weights_dtype;
  layout.probs_dtype = out.probs_dtype;
  layout.num_experts = cfg.n_experts;
  SafetensorsWriter w(path, trace_tensor_specs(layout), make_trace_metadata(sim.meta(), {{"planted_config", sim.config_json()}}));
  w.write(sim.token_ids().data() + begin, static_cast<std::size_t>(n) * 4);
  w.write(sim.positions().data() + begin, static_cast<std::size_t>(n) * 4);
  w.write(sim.domain_ids().data() + begin, static_cast<std::size_t>(n) * 4);

  // Slot j's combine weight (k - j) / (k (k + 1) / 2): descending, as in router order.
  std::vector<float> slot_weight(k);
  for (int j = 0; j < k; ++j) slot_weight[j] = static_cast<float>(k - j) / (0.5f * static_cast<float>(k * (k + 1)));
  auto write_floats = [&](const std::vector<float>& v, DType dtype) {
    if (dtype == DType::kF32) {
      w.write(v.data(), v.size() * 4);
      return;
    }
    std::vector<uint16_t> half(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) half[i] = dtype == DType::kF16 ? float_to_f16(v[i]) : float_to_bf16(v[i]);
    w.write(half.data(), half.size() * 2);
  };

  std::vector<int32_t> experts(static_cast<std::size_t>(n * k));  // [n, k]
  std::vector<int16_t> narrow;
  for (int l = 0; l < cfg.n_layers; ++l) {
    sim.generate_layer(l, begin, n, experts.data());
    if (out.experts_dtype == DType::kI16) {
      narrow.assign(experts.begin(), experts.end());
      w.write(narrow.data(), narrow.size() * 2);
    } else {
      w.write(experts.data(), experts.size() * 4);
    }
    if (out.weights_dtype != DType::kOther) {
      std::vector<float> weights(static_cast<std::size_t>(n * k));  // [n, k]
      for (int64_t t = 0; t < n; ++t)
        for (int j = 0; j < k; ++j) weights[t * k + j] = slot_weight[j];
      write_floats(weights, out.weights_dtype);
    }
    if (out.probs_dtype != DType::kOther) {
      // [n, E]: 0.2 spread evenly plus 0.8 x the slot weight on each selected expert.
      const auto n_e = static_cast<std::size_t>(cfg.n_experts);
      std::vector<float> probs(static_cast<std::size_t>(n) * n_e, 0.2f / static_cast<float>(n_e));
      for (int64_t t = 0; t < n; ++t)
        for (int j = 0; j < k; ++j) probs[t * n_e + experts[t * k + j]] += 0.8f * slot_weight[j];
      write_floats(probs, out.probs_dtype);
    }
  }
  w.commit();
}

}  // namespace

void simulate_to_disk(const SimConfig& cfg, const SimOutput& out) {
  if (out.path.empty()) throw std::invalid_argument("--out is required");
  if (out.experts_dtype != DType::kI16 && out.experts_dtype != DType::kI32)
    throw std::invalid_argument("expert dtype must be I16 or I32");
  if (out.experts_dtype == DType::kI16 && cfg.n_experts > 32767)
    throw std::invalid_argument("experts = " + std::to_string(cfg.n_experts) + " do not fit I16 ids: use --expert-dtype I32");
  if (out.shard_tokens < 0) throw std::invalid_argument("--shard-tokens must be non-negative");
  std::error_code ec;
  if (fs::exists(out.path, ec) && !out.force)
    throw std::invalid_argument(out.path + ": already exists (pass --force to replace it)");
  PlantedSimulator sim(cfg);  // validates the config before anything is written

  const std::string tmp = out.path + ".tmp-" + std::to_string(::getpid());
  const bool sharded = out.shard_tokens > 0 && out.shard_tokens < cfg.n_tokens;
  try {
    if (!sharded) {
      write_shard(sim, out, 0, cfg.n_tokens, tmp);
    } else {
      fs::create_directories(tmp);
      int shard = 0;
      for (int64_t begin = 0; begin < cfg.n_tokens; begin += out.shard_tokens, ++shard) {
        char name[32];
        std::snprintf(name, sizeof name, "shard-%05d.safetensors", shard);
        write_shard(sim, out, begin, std::min(out.shard_tokens, cfg.n_tokens - begin), (fs::path(tmp) / name).string());
      }
    }
    if (fs::exists(out.path, ec)) fs::remove_all(out.path);
    fs::rename(tmp, out.path);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace moetb
