// Streams a planted trace to disk (simulate_to_disk): one file, or a directory of
// shards. Written through the output layer (common/safe_output.h): built under a temporary
// name and renamed into place when complete, so a failed or interrupted run never leaves a
// partial trace; --force replaces a file or a folder of shards, never a device or any other
// folder (a single file is written through a device or FIFO).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "common/safe_output.h"

#include "oracle/planted_simulator.h"

namespace moetb {
namespace {

void write_shard(PlantedSimulator& sim, const SimOutput& out, int64_t begin, int64_t n, const std::string& path,
                 const OutputOptions& opt) {
  const SimConfig& cfg = sim.config();
  const int k = cfg.top_k;
  TraceShardLayout layout;
  layout.n_tokens = n;
  layout.k.assign(cfg.n_layers, k);
  layout.experts_dtype = out.experts_dtype;
  layout.weights_dtype = out.weights_dtype;
  layout.probs_dtype = out.probs_dtype;
  layout.num_experts = cfg.n_experts;
  SafetensorsWriter w(path, trace_tensor_specs(layout), make_trace_metadata(sim.meta(), {{"planted_config", sim.config_json()}}), opt);
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
  OutputOptions opt;
  opt.force = out.force;
  const bool sharded = out.shard_tokens > 0 && out.shard_tokens < cfg.n_tokens;
  if (check_output(out.path, OutputKind::trace, opt) == Existing::special && sharded)
    throw OutputError(out.path + ": is " + describe_existing(out.path) + "; a sharded trace is a folder, so it cannot go there");
  PlantedSimulator sim(cfg);  // validates the config before anything is written

  // Bounds before work: the file size, and the memory of one layer of one shard (probs are
  // tokens x experts floats, plus their 16-bit copy).
  const auto T = static_cast<uint64_t>(cfg.n_tokens), k = static_cast<uint64_t>(cfg.top_k);
  const auto E = static_cast<uint64_t>(cfg.n_experts), L = static_cast<uint64_t>(cfg.n_layers);
  const uint64_t per_token = k * dtype_size(out.experts_dtype) + (out.weights_dtype != DType::kOther ? k * dtype_size(out.weights_dtype) : 0) +
                             (out.probs_dtype != DType::kOther ? E * dtype_size(out.probs_dtype) : 0);
  check_space_for(out.path, 12 * T + L * T * per_token, "the trace (" + std::to_string(T) + " tokens x " + std::to_string(L) + " layers)");
  const uint64_t shard_n = sharded ? static_cast<uint64_t>(out.shard_tokens) : T;
  const uint64_t memory = shard_n * (8 * k + (out.probs_dtype != DType::kOther ? 6 * E : 0) + 12);
  const auto ram = static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  if (ram > 0 && memory > ram / 2)
    throw std::invalid_argument("simulate: one layer of " + std::to_string(shard_n) + " tokens needs about " + format_bytes(memory) +
                                " of memory, more than half of this machine's " + format_bytes(ram) +
                                ": write shards (--shard-tokens)");

  if (!sharded) {
    write_shard(sim, out, 0, cfg.n_tokens, out.path, opt);
    return;
  }
  OutputDir dir(out.path, OutputKind::trace, opt);
  int shard = 0;
  for (int64_t begin = 0; begin < cfg.n_tokens; begin += out.shard_tokens, ++shard) {
    char name[32];
    std::snprintf(name, sizeof name, "shard-%05d.safetensors", shard);
    write_shard(sim, out, begin, std::min(out.shard_tokens, cfg.n_tokens - begin), (dir.tmp() / name).string(), opt);
  }
  dir.commit();
}

}  // namespace moetb
