// The training loop (trainer.h).
#include "models/trainer.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/from_blob.h>
#include <torch/cuda.h>
#include <c10/core/GradMode.h>
#include <torch/optim/adamw.h>
#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "datagen/dataset.h"
#include "metrics/trace_metrics.h"
#include "models/checkpoint.h"
#include "models/evaluation.h"
#include "models/progress.h"
#include "oracle/reference_groups.h"

namespace moetb {
namespace fs = std::filesystem;
namespace {

double learning_rate(const TrainConfig& c, int64_t step) {  // step is 1-based
  if (step <= c.warmup_steps) return c.lr * static_cast<double>(step) / static_cast<double>(c.warmup_steps);
  const double span = static_cast<double>(std::max<int64_t>(1, c.steps - c.warmup_steps));
  const double t = std::min(1.0, static_cast<double>(step - c.warmup_steps) / span);
  const double floor = c.lr * c.min_lr_ratio;
  return floor + 0.5 * (c.lr - floor) * (1.0 + std::cos(M_PI * t));
}

ModelConfig model_config(const TrainConfig& c, const Dataset& data, const std::vector<std::vector<int>>& groups) {
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
  m.moe.router = c.router;
  m.moe.router.seed = static_cast<uint64_t>(c.seed);
  m.moe.router.domain_groups = groups;
  return m;
}

void append_line(const fs::path& path, const nlohmann::json& j) {
  std::ofstream out(path, std::ios::app);
  out << j.dump() << "\n";
  if (!out.flush()) throw std::runtime_error(path.string() + ": write failed");
}

// Keeps the log entries up to `step` (a resumed run rewrites what came after its checkpoint).
void truncate_log(const fs::path& path, int64_t step) {
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", int64_t{0}) <= step) kept += line + "\n";
  }
  in.close();
  std::ofstream(path, std::ios::trunc) << kept;
}

std::vector<std::vector<uint64_t>> router_states(MoETransformerImpl& model) {
  std::vector<std::vector<uint64_t>> out;
  for (Router* r : model.routers()) out.push_back(r->save_state());
  return out;
}

void restore_router_states(MoETransformerImpl& model, const std::vector<std::vector<uint64_t>>& states) {
  auto routers = model.routers();
  if (states.size() != routers.size()) throw std::runtime_error("checkpoint: router state count does not match the model");
  for (std::size_t i = 0; i < routers.size(); ++i) routers[i]->load_state(states[i]);
}

// Per MoE block: max over experts of (load share * E) - 1, the worst overload (of the
// assignments kept after capacity), and the share of assignments the capacity dropped.
double load_violation(const std::vector<RoutingDecision>& decisions, int64_t n_experts, nlohmann::json* per_layer) {
  double worst = 0.0;
  for (const auto& d : decisions) {
    const at::Tensor ids = d.experts.reshape({-1});
    const at::Tensor valid = ids.masked_select(ids.ge(0));
    const at::Tensor counts = at::bincount(valid.to(at::kCPU), {}, n_experts).to(at::kDouble);  // [E]
    const double total = std::max(1.0, counts.sum().item<double>());
    const double max_share = counts.max().item<double>() / total, min_share = counts.min().item<double>() / total;
    const double v = max_share * static_cast<double>(n_experts) - 1.0;
    const auto dropped = d.aux_terms.find("dropped_fraction");
    per_layer->push_back({{"max_share", max_share}, {"min_share", min_share}, {"violation", v},
                          {"dropped_fraction", dropped == d.aux_terms.end() ? 0.0 : dropped->second}});
    worst = std::max(worst, v);
  }
  return worst;
}

// Scales all gradients down so that their global L2 norm is at most max_norm.
void clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  const c10::NoGradGuard no_grad;
  double sq = 0.0;
  for (const auto& p : params)
    if (p.grad().defined()) sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  const double norm = std::sqrt(sq);
  if (norm > max_norm)
    for (const auto& p : params)
      if (p.grad().defined()) p.mutable_grad().mul_(max_norm / (norm + 1e-6));
}

// OpenBLAS keeps its own thread pool (at::set_num_threads does not reach it): size it too,
// when the BLAS in use is OpenBLAS. Looked up at run time, so any BLAS links.
void set_blas_threads(int n) {
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
}

}  // namespace

TrainResult train_model(const TrainConfig& cfg, const TrainOptions& opts) {
  validate_train_config(cfg);
  if (opts.run_dir.empty()) throw std::invalid_argument("--out: no run directory given");
  at::Device device(at::kCPU);
  if (cfg.device == "cuda") {
    if (!torch::cuda::is_available())
      throw std::invalid_argument("train.device: cuda requested, but this LibTorch has no CUDA support or no GPU is visible");
    device = at::Device(at::kCUDA);
  }
  at::set_num_threads(static_cast<int>(cfg.threads));
  set_blas_threads(static_cast<int>(cfg.threads));
  const Dataset data(cfg.data_dir);
  std::vector<std::vector<int>> groups;
  if (data.n_domains() <= cfg.n_experts) groups = make_reference_groups(cfg.n_experts, static_cast<int>(data.n_domains()), static_cast<int>(cfg.oracle_overlap));
  else if (cfg.router.name == "oracle")
    throw std::invalid_argument("router.name: the oracle needs at least one expert per domain (" + std::to_string(data.n_domains()) +
                                " domains, " + std::to_string(cfg.n_experts) + " experts)");

  const fs::path run(opts.run_dir);
  std::error_code ec;
  if (opts.resume) {
    if (latest_checkpoint_step(opts.run_dir) < 0) throw std::invalid_argument(opts.run_dir + ": --resume needs a run directory with a checkpoint");
  } else {
    if (fs::exists(run, ec) && !opts.force) throw std::invalid_argument(opts.run_dir + ": already exists (pass --force to replace it, or --resume)");
    if (fs::exists(run, ec)) fs::remove_all(run);
    fs::create_directories(run / "traces");
    std::ofstream(run / "config.toml") << opts.config_toml;
    nlohmann::json info = {{"seed", cfg.seed}, {"git_revision", opts.git_revision}, {"threads", cfg.threads},
                           {"device", cfg.device}, {"dataset", fs::absolute(cfg.data_dir).string()},
                           {"config", opts.config_json}};
    std::ofstream(run / "run.json") << info.dump(2) << "\n";
  }

  at::manual_seed(static_cast<uint64_t>(cfg.seed));
  MoETransformer model(model_config(cfg, data, groups));
  model->to(device);
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(cfg.lr)
                                                   .betas({cfg.beta1, cfg.beta2})
                                                   .weight_decay(cfg.weight_decay));
  BatchSampler sampler(data.n_sequences(Split::kTrain), cfg.micro_batch, /*shuffle=*/true, static_cast<uint64_t>(cfg.seed));
  int64_t start = 0;
  if (opts.resume) {
    const CheckpointState s = load_checkpoint(opts.run_dir, *model, opt);
    start = s.step;
    sampler.restore(s.sampler);
    restore_router_states(*model, s.router_states);
    truncate_log(run / "train_log.jsonl", start);
    if (start >= cfg.steps) {  // nothing left to do: report the finished run
      TrainResult done;
      done.last_step = start;
      done.finished = true;
      std::ifstream in(run / "eval.json");
      done.eval = nlohmann::json::parse(in, nullptr, false);
      if (done.eval.is_discarded() || !done.eval.contains("eval"))
        throw std::runtime_error(opts.run_dir + ": finished at step " + std::to_string(start) + " but eval.json is missing or unreadable");
      return done;
    }
  }

  const int64_t S = data.seq_len(), B = cfg.micro_batch;
  const double ln2 = std::log(2.0);
  Progress progress(opts.progress, cfg.steps, cfg.log_every);
  TrainResult result;
  auto t0 = std::chrono::steady_clock::now();
  int64_t tokens_since = 0;
  std::vector<int64_t> tok(static_cast<std::size_t>(B * S)), dom(static_cast<std::size_t>(B * S));
  for (int64_t step = start + 1; step <= cfg.steps; ++step) {
    const double lr = learning_rate(cfg, step);
    for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    opt.zero_grad();
    double ce_sum = 0.0, aux_sum = 0.0, violation = 0.0;
    std::map<std::string, double> terms;
    nlohmann::json load = nlohmann::json::array();
    for (int64_t a = 0; a < cfg.accum_steps; ++a) {
      data.gather(Split::kTrain, sampler.next(), tok.data(), dom.data(), nullptr);
      const at::Tensor tokens = at::from_blob(tok.data(), {B, S}, at::kLong).to(device);   // [B, S]
      const at::Tensor domains = at::from_blob(dom.data(), {B, S}, at::kLong).to(device);  // [B, S]
      LMOutput out = model->forward(tokens, domains, /*training=*/true);
      const int64_t V = out.logits.size(-1);
      const at::Tensor ce = at::cross_entropy_loss(out.logits.narrow(1, 0, S - 1).reshape({-1, V}),
                                                   tokens.narrow(1, 1, S - 1).reshape({-1}));  // [] nats
      at::Tensor loss = ce + out.aux_loss;
      if (step == cfg.nan_at_step) loss = loss * std::numeric_limits<double>::quiet_NaN();
      const double loss_value = loss.item<double>();
      if (!std::isfinite(loss_value)) {
        const int64_t kept = latest_checkpoint_step(opts.run_dir);
        throw std::runtime_error("step " + std::to_string(step) + ": loss is " + std::to_string(loss_value) +
                                 (kept >= 0 ? "; the last good checkpoint (step " + std::to_string(kept) + ") is kept in " + opts.run_dir
                                            : "; no checkpoint was written yet"));
      }
      (loss / static_cast<double>(cfg.accum_steps)).backward();
      ce_sum += ce.item<double>();
      aux_sum += out.aux_loss.item<double>();
      for (const auto& d : out.decisions)
        for (const auto& [k, v] : d.aux_terms) terms[k] += v / static_cast<double>(out.decisions.size() * cfg.accum_steps);
      if (a == cfg.accum_steps - 1) violation = load_violation(out.decisions, cfg.n_experts, &load);
    }
    if (cfg.grad_clip > 0.0) clip_grad_norm(model->parameters(), cfg.grad_clip);
    opt.step();
    for (Router* r : model->routers()) r->end_step();
    tokens_since += B * S * cfg.accum_steps;

    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double ce_mean = ce_sum / static_cast<double>(cfg.accum_steps);
    nlohmann::json line = {{"step", step}, {"lr", lr}, {"loss_bits", ce_mean / ln2},
                           {"aux_loss", aux_sum / static_cast<double>(cfg.accum_steps)}, {"aux_terms", terms},
                           {"load", load}, {"max_load_violation", violation},
                           {"tokens_per_s", static_cast<double>(tokens_since) / std::max(elapsed, 1e-9)}};
    append_line(run / "train_log.jsonl", line);
    progress.update(step, line["tokens_per_s"].get<double>(), ce_mean / ln2, aux_sum / static_cast<double>(cfg.accum_steps), violation);

    const bool last = step == cfg.steps;
    if (step % cfg.eval_every == 0 || last) {
      const auto saved = router_states(*model);  // evaluation must not move the routers' streams
      EvalResult ev = evaluate(*model, data, cfg.eval_sequences, B, device, groups);
      restore_router_states(*model, saved);
      char name[48];
      std::snprintf(name, sizeof name, "traces/step-%06lld.safetensors", static_cast<long long>(step));
      ev.trace.meta_data.model = "moetb " + cfg.router.name + " d" + std::to_string(cfg.d_model) + " L" + std::to_string(cfg.n_layers) +
                                 " E" + std::to_string(cfg.n_experts) + " k" + std::to_string(cfg.top_k);
      ev.trace.meta_data.source = "moetb train step " + std::to_string(step);
      write_trace_file(ev.trace, (run / name).string(), cfg.n_experts <= 32767 ? DType::kI16 : DType::kI32);
      MetricsOptions mo;
      mo.threads = 1;
      const nlohmann::json metrics = metrics_to_json(compute_trace_metrics(ev.trace, mo));
      nlohmann::json record = {{"step", step}, {"eval", ev.to_json()}, {"trace", name},
                               {"metrics_summary", metrics.value("summary", nlohmann::json::object())}};
      append_line(run / "train_log.jsonl", record);
      progress.note("step " + std::to_string(step) + ": val loss " + std::to_string(ev.loss_bits) + " bits" +
                    (ev.floor_bits ? " (floor " + std::to_string(*ev.floor_bits) + ")" : ""));
      if (last) {
        result.eval = record;
        result.eval["router"] = cfg.router.name;
        result.eval["metrics"] = metrics;
        result.eval["seed"] = cfg.seed;
        result.eval["git_revision"] = opts.git_revision;
        std::ofstream(run / "eval.json.tmp") << result.eval.dump(2) << "\n";
        fs::rename(run / "eval.json.tmp", run / "eval.json");
      }
    }
    const bool stop_here = step == opts.stop_after;
    if ((cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0) || last || stop_here)
      save_checkpoint(opts.run_dir, *model, opt, {step, sampler.state(), router_states(*model)});
    result.last_step = step;
    if (stop_here && !last) {
      progress.finish();
      return result;
    }
  }
  progress.finish();
  result.finished = true;
  return result;
}

}  // namespace moetb
