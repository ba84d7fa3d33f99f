// The training loop (trainer.h).
#include "models/trainer.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/from_blob.h>
#include <torch/cuda.h>
#include <c10/core/GradMode.h>
#include <torch/optim/adamw.h>
#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <thread>

#include "common/machine_info.h"
#include "datagen/dataset.h"
#include "metrics/trace_metrics.h"
#include "models/blas_gemm.h"
#include "models/checkpoint.h"
#include "models/evaluation.h"
#include "models/progress.h"
#include "models/run_model.h"
#include "models/train_step.h"
#include "oracle/reference_groups.h"
#include "runs/run_reader.h"
#include "runs/run_writer.h"

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
double load_violation(const std::vector<RoutingDecision>& decisions, int64_t n_experts, std::vector<runs::LayerLoad>* per_layer) {
  double worst = 0.0;
  for (const auto& d : decisions) {
    const at::Tensor ids = d.experts.reshape({-1});
    const at::Tensor valid = ids.masked_select(ids.ge(0));
    const at::Tensor counts = at::bincount(valid.to(at::kCPU), {}, n_experts).to(at::kDouble);  // [E]
    const double total = std::max(1.0, counts.sum().item<double>());
    const double max_share = counts.max().item<double>() / total, min_share = counts.min().item<double>() / total;
    const double v = max_share * static_cast<double>(n_experts) - 1.0;
    const auto dropped = d.aux_terms.find("dropped_fraction");
    per_layer->push_back({max_share, min_share, v, dropped == d.aux_terms.end() ? 0.0 : dropped->second});
    worst = std::max(worst, v);
  }
  return worst;
}

// One line for the eval record: how the dropless evaluation routes (docs/routers.md).
std::string dropless_rule(const TrainConfig& c) {
  if (c.router.name == "expert_choice") {
    RouterConfig r = c.router;
    r.n_experts = c.n_experts;
    r.top_k = c.top_k;
    return "causal: each token takes its own " + std::to_string(expert_choice_causal_k(r)) +
           " highest-scoring experts of the expert-choice router (the mean per token expert choice gives), no capacity";
  }
  return "no capacity limit: every token keeps its router's top-" + std::to_string(c.top_k);
}

// OpenBLAS keeps its own thread pool (at::set_num_threads does not reach it): size it too,
// when the BLAS in use is OpenBLAS. Looked up at run time, so any BLAS links.
void set_blas_threads(int n) {
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
}

std::string utc_now() {
  char buf[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// run.json's record of this run (the dataset as an absolute path).
runs::RunInfo run_info(const TrainConfig& cfg, const TrainOptions& opts) {
  runs::RunInfo info;
  info.seed = cfg.seed;
  info.git_revision = opts.git_revision;
  info.threads = cfg.threads;
  info.device = cfg.device;
  info.dataset = fs::absolute(cfg.data_dir).lexically_normal().string();
  info.config = opts.config_json.is_object() ? opts.config_json : nlohmann::json::object();
  info.provenance = opts.provenance.is_object() ? opts.provenance : nlohmann::json::object();
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) info.provenance["host"] = host;
  info.provenance["started_utc"] = utc_now();
  info.machine = machine_provenance();  // CPU, BLAS kernel
  info.machine["gemm_jit"] = blas::jit_gemm_info();  // libxsmm for the fused paths' products, and its instruction set
  return info;
}

// Opens the run directory under its lock: a new run (replacing a moetb run only with
// --force), or the run to resume, after checking that nothing it was trained with changed.
runs::RunWriter open_run(const TrainConfig& cfg, const TrainOptions& opts) {
  if (!opts.resume) return runs::RunWriter::create(opts.run_dir, run_info(cfg, opts), opts.config_toml, opts.force);
  runs::RunWriter writer = runs::RunWriter::resume(opts.run_dir);
  std::vector<std::string> notes;
  const std::optional<runs::RunInfo> stored = runs::read_run_info(opts.run_dir, &notes);
  for (const auto& n : notes) std::cerr << "note: " << n << "\n";
  if (stored) runs::check_resume(*stored, opts.config_json.is_object() ? opts.config_json : nlohmann::json::object());
  if (latest_checkpoint_step(opts.run_dir) < 0) throw std::invalid_argument(opts.run_dir + ": --resume needs a run directory with a checkpoint");
  return writer;
}

// Bounds before work (train_config.h): refusals throw, warnings go to stderr.
void preflight(const TrainConfig& cfg, const Dataset& data) {
  TrainingMachine m;
  m.vocab_size = data.vocab_size();
  m.seq_len = data.seq_len();
  m.train_sequences = data.n_sequences(Split::kTrain);
  m.cores = std::thread::hardware_concurrency();
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) m.memory_bytes = static_cast<double>(pages) * static_cast<double>(page);
  for (const auto& w : check_training_bounds(cfg, m)) std::cerr << "warning: " << w << "\n";
}

}  // namespace

TrainResult train_model(const TrainConfig& cfg, const TrainOptions& opts) {
  validate_train_config(cfg);
  if (opts.run_dir.empty()) throw std::invalid_argument("--out: no run directory given");
  if (opts.resume && opts.force)
    throw std::invalid_argument("--resume and --force cannot be combined: --resume continues the run, --force replaces it");
  at::Device device(at::kCPU);
  if (cfg.device == "cuda") {
    if (!torch::cuda::is_available())
      throw std::invalid_argument("train.device: cuda requested, but this LibTorch has no CUDA support or no GPU is visible");
    device = at::Device(at::kCUDA);
  }
  at::set_num_threads(static_cast<int>(cfg.threads));
  set_blas_threads(static_cast<int>(cfg.threads));
  const Dataset data(cfg.data_dir);
  const std::vector<std::vector<int>> groups = run_reference_groups(cfg, data);
  if (groups.empty() && cfg.router.name == "oracle")
    throw std::invalid_argument("router.name: the oracle needs at least one expert per domain (" + std::to_string(data.n_domains()) +
                                " domains, " + std::to_string(cfg.n_experts) + " experts)");

  preflight(cfg, data);
  const fs::path run(opts.run_dir);
  const runs::RunWriter writer = open_run(cfg, opts);  // held (locked) until training returns

  at::manual_seed(static_cast<uint64_t>(cfg.seed));
  MoETransformer model(run_model_config(cfg, data, groups));
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
    writer.truncate_log(start);
    if (start >= cfg.steps) {  // nothing left to do: report the finished run
      TrainResult done;
      done.last_step = start;
      done.finished = true;
      std::optional<runs::FinalEval> final_eval;
      try {
        final_eval = runs::read_final_eval(run);
      } catch (const std::exception&) {
      }
      if (!final_eval)
        throw std::runtime_error(opts.run_dir + ": finished at step " + std::to_string(start) + " but eval.json is missing or unreadable");
      done.eval = final_eval->to_json();
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
    zero_grads(model->parameters());  // models/train_step.h
    double ce_sum = 0.0, aux_sum = 0.0, violation = 0.0;
    std::map<std::string, double> terms;
    std::vector<runs::LayerLoad> load;
    for (int64_t a = 0; a < cfg.accum_steps; ++a) {
      data.gather(Split::kTrain, sampler.next(), tok.data(), dom.data(), nullptr);
      const at::Tensor tokens = at::from_blob(tok.data(), {B, S}, at::kLong).to(device);   // [B, S]
      const at::Tensor domains = at::from_blob(dom.data(), {B, S}, at::kLong).to(device);  // [B, S]
      const MicroStep m = forward_backward(*model, tokens, domains, cfg.accum_steps, step == cfg.nan_at_step);  // models/train_step.h
      if (!std::isfinite(m.loss)) {
        const int64_t kept = latest_checkpoint_step(opts.run_dir);
        throw std::runtime_error("step " + std::to_string(step) + ": loss is " + std::to_string(m.loss) +
                                 (kept >= 0 ? "; the last good checkpoint (step " + std::to_string(kept) + ") is kept in " + opts.run_dir
                                            : "; no checkpoint was written yet"));
      }
      ce_sum += m.ce;
      aux_sum += m.aux;
      for (const auto& d : m.out.decisions)
        for (const auto& [k, v] : d.aux_terms) terms[k] += v / static_cast<double>(m.out.decisions.size() * cfg.accum_steps);
      if (a == cfg.accum_steps - 1) violation = load_violation(m.out.decisions, cfg.n_experts, &load);
    }
    optimizer_step(opt, model->parameters(), lr, cfg.grad_clip);
    for (Router* r : model->routers()) r->end_step();
    tokens_since += B * S * cfg.accum_steps;

    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double ce_mean = ce_sum / static_cast<double>(cfg.accum_steps);
    runs::StepRecord line;
    line.step = step;
    line.lr = lr;
    line.loss_bits = ce_mean / ln2;
    line.aux_loss = aux_sum / static_cast<double>(cfg.accum_steps);
    line.aux_terms = terms;
    line.load = std::move(load);
    line.max_load_violation = violation;
    line.tokens_per_s = static_cast<double>(tokens_since) / std::max(elapsed, 1e-9);
    writer.append_step(line);
    progress.update(step, line.tokens_per_s, line.loss_bits, line.aux_loss, violation);

    const bool last = step == cfg.steps;
    if (step % cfg.eval_every == 0 || last) {
      const std::string routing = resolved_eval_routing(cfg);  // train, dropless or both
      // One evaluation and its trace: router streams restored after (evaluation must not move them).
      auto run_eval = [&](EvalRouting how, const std::string& name, const std::string& source) {
        const auto saved = router_states(*model);
        EvalResult ev = evaluate(*model, data, cfg.eval_sequences, B, device, groups, how);
        restore_router_states(*model, saved);
        ev.trace.meta_data.model = "moetb " + cfg.router.name + " d" + std::to_string(cfg.d_model) + " L" + std::to_string(cfg.n_layers) +
                                   " E" + std::to_string(cfg.n_experts) + " k" + std::to_string(cfg.top_k);
        ev.trace.meta_data.source = source;
        fs::create_directories((run / name).parent_path());
        write_trace_file(ev.trace, (run / name).string(), cfg.n_experts <= 32767 ? DType::kI16 : DType::kI32);
        return ev;
      };
      MetricsOptions mo;
      mo.threads = 1;
      const std::string name = runs::trace_name(step);
      const std::string source = "moetb train step " + std::to_string(step);
      EvalResult ev = run_eval(routing == "dropless" ? EvalRouting::kDropless : EvalRouting::kTrain, name,
                               routing == "dropless" ? source + " (dropless evaluation)" : source);
      const nlohmann::json metrics = metrics_to_json(compute_trace_metrics(ev.trace, mo));
      runs::EvalRecord record;
      record.step = step;
      record.eval = ev.summary();
      record.trace = name;
      record.metrics_summary = metrics.value("summary", nlohmann::json::object());
      record.routing = routing == "dropless" ? "dropless" : "train";
      if (routing == "both") {
        runs::SecondEval second;
        second.rule = dropless_rule(cfg);
        second.trace = runs::dropless_trace_name(step);
        const EvalResult dl = run_eval(EvalRouting::kDropless, second.trace, source + " (dropless evaluation)");
        second.eval = dl.summary();
        second.metrics_summary = metrics_to_json(compute_trace_metrics(dl.trace, mo)).value("summary", nlohmann::json::object());
        record.dropless = std::move(second);
      }
      writer.append_eval(record);
      progress.note("step " + std::to_string(step) + ": val loss " +
                    (ev.loss_bits ? std::to_string(*ev.loss_bits) + " bits" : std::string("n/a (no evaluation tokens)")) +
                    (ev.floor_bits ? " (floor " + std::to_string(*ev.floor_bits) + ")" : ""));
      if (last) {
        const runs::FinalEval final_eval{record, cfg.router.name, metrics, cfg.seed, opts.git_revision};  // record, router, metrics, seed, git
        writer.write_final_eval(final_eval);
        result.eval = final_eval.to_json();
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
