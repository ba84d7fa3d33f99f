// run_finetune (finetune.h): load the run, pick the arm's experts from the routing trace,
// freeze the rest (frozen slices restored after every step), train on the target domain's
// tokens, evaluate before and after, write a run directory through runs/ with finetune.json.
// DBES expert paths (arXiv 2605.18498) and the random/least controls.
#include "models/finetune.h"

#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <c10/core/GradMode.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/safe_output.h"
#include "metrics/expert_selection.h"
#include "metrics/trace.h"
#include "metrics/trace_metrics.h"
#include "models/evaluation.h"
#include "models/finetune_flops.h"
#include "models/progress.h"
#include "models/run_model.h"
#include "models/train_step.h"
#include "runs/run_reader.h"
#include "runs/run_writer.h"

namespace moetb {
namespace fs = std::filesystem;
namespace {

// An expert tensor ([E, ...]) of which only some experts train: gradients of the others
// are zeroed before the step and their values restored after it (weight decay included),
// so they stay bit for bit.
struct PartialTensor {
  at::Tensor param;   // [E, a, b]
  at::Tensor keep;    // [E, 1, 1] bool: true = trainable
  at::Tensor frozen;  // a copy of the initial values
};

double learning_rate(const FinetuneOptions& o, int64_t warmup, int64_t step) {  // 1-based
  if (step <= warmup) return o.lr * static_cast<double>(step) / static_cast<double>(warmup);
  const double t = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, o.steps - warmup));
  const double floor = 0.1 * o.lr;
  return floor + 0.5 * (o.lr - floor) * (1.0 + std::cos(M_PI * std::min(1.0, t)));
}

int domain_index(const Dataset& data, const std::string& name, const std::string& label) {
  const auto& names = data.domain_names();
  const auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end()) {
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("--domain: '" + name + "' is not a domain of " + label + " (domains: " + known + ")");
  }
  return static_cast<int>(it - names.begin());
}

nlohmann::json opt_json(const std::optional<double>& x) { return x ? nlohmann::json(*x) : nlohmann::json(nullptr); }

nlohmann::json domain_losses(const EvalResult& ev) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& d : ev.domains) j[d.name] = {{"loss_bits", opt_json(d.loss_bits)}, {"n_tokens", d.n_tokens}};
  return j;
}

}  // namespace

nlohmann::json run_finetune(const FinetuneOptions& o) {
  const auto t_start = std::chrono::steady_clock::now();
  if (o.out_dir.empty()) throw std::invalid_argument("--out: no output directory given");
  if (o.steps < 1) throw std::invalid_argument("--steps: must be >= 1, got " + std::to_string(o.steps));
  if (!(o.lr > 0.0) || !std::isfinite(o.lr)) throw std::invalid_argument("--lr: must be > 0");
  if (o.weight_decay < 0.0) throw std::invalid_argument("--weight-decay: must be >= 0");
  if (o.draw < 0) throw std::invalid_argument("--draw: must be >= 0");
  const auto& arms = finetune_arms();
  if (std::find(arms.begin(), arms.end(), o.arm) == arms.end())
    throw std::invalid_argument("--arm: unknown arm '" + o.arm + "' (known: paths, random, least, experts, full)");
  if (!(o.tau > 0.0 && o.tau <= 1.0)) throw std::invalid_argument("--tau " + std::to_string(o.tau) + " is not in (0, 1]");
  OutputOptions out_opt;
  out_opt.force = o.force;
  out_opt.inputs = {o.run_dir};
  if (!o.data_dir.empty()) out_opt.inputs.push_back(o.data_dir);
  check_not_input(o.out_dir, out_opt.inputs);
  {
    std::error_code ec;
    if (!o.force && fs::is_directory(o.out_dir, ec) && !fs::is_empty(o.out_dir, ec))
      throw std::invalid_argument(o.out_dir + ": already exists (pass --force to replace a moetb run there)");
    if (fs::exists(o.out_dir, ec) && !fs::is_directory(o.out_dir, ec))
      throw std::invalid_argument(o.out_dir + ": exists and is not a folder");
    if (o.force && fs::is_directory(o.out_dir, ec) && !fs::is_empty(o.out_dir, ec) && !holds_output(o.out_dir, OutputKind::run))
      throw std::invalid_argument(o.out_dir + ": --force replaces only a moetb run, and this folder holds none");
  }

  LoadedRun run = load_run(o.run_dir, o.device);
  MoETransformerImpl& model = *run.model;
  const TrainConfig& rc = run.cfg;
  const bool own_data = o.data_dir.empty() || fs::equivalent(o.data_dir, rc.data_dir);
  std::unique_ptr<Dataset> foreign;
  if (!own_data) {
    foreign = std::make_unique<Dataset>(o.data_dir);
    if (foreign->vocab_size() != run.data->vocab_size())
      throw std::invalid_argument("--data " + o.data_dir + ": vocabulary of " + std::to_string(foreign->vocab_size()) +
                                  " tokens, the run's model has " + std::to_string(run.data->vocab_size()));
    if (foreign->seq_len() > run.data->seq_len())
      throw std::invalid_argument("--data " + o.data_dir + ": seq_len " + std::to_string(foreign->seq_len()) +
                                  " exceeds the model's " + std::to_string(run.data->seq_len()));
    if (rc.router.name == "oracle")
      throw std::invalid_argument("--data: the oracle router routes by the run's domain ids; fine-tune it on its own dataset");
  }
  const Dataset& target = own_data ? *run.data : *foreign;
  const int domain = domain_index(target, o.domain, own_data ? "the run's dataset" : o.data_dir);
  const int64_t n_eval = o.eval_sequences > 0 ? o.eval_sequences : rc.eval_sequences;
  const int64_t B = o.micro_batch > 0 ? o.micro_batch : rc.micro_batch;
  const uint64_t seed = static_cast<uint64_t>(o.seed >= 0 ? o.seed : rc.seed);
  const auto router_start = save_router_states(model);
  auto eval = [&](const Dataset& data) {
    const auto saved = save_router_states(model);
    EvalResult r = evaluate(model, data, n_eval, B, run.device, run.groups);
    load_router_states(model, saved);
    return r;
  };

  // Before: the target data (and, for a foreign dataset, the pretraining mix).
  EvalResult target_before = eval(target);
  std::optional<EvalResult> mix_before;
  if (!own_data) mix_before = eval(*run.data);
  if (!target_before.domains[static_cast<std::size_t>(domain)].loss_bits)
    throw std::invalid_argument("--domain " + o.domain + ": no validation token of the target dataset (first " +
                                std::to_string(n_eval) + " sequences) is in this domain; raise --eval-sequences");
  // The routing the selection reads: the run's last evaluation trace for its own data
  // (what `moetb paths` would read), the base model's routing of the target data otherwise.
  MetricsOptions mo;
  mo.threads = 1;
  std::string selection_trace = own_data ? runs::final_trace(o.run_dir).string() : "";
  const TraceMetrics routing = selection_trace.empty() ? compute_trace_metrics(target_before.trace, mo)
                                                       : compute_trace_metrics(Trace({selection_trace}), mo);
  if (selection_trace.empty()) selection_trace = "(the base model on " + o.data_dir + ")";
  std::vector<CountMatrix> counts;
  for (const auto& lm : routing.layers) counts.push_back(lm.stats.counts);
  if (counts.size() != run.moe.size())
    throw std::runtime_error(selection_trace + ": " + std::to_string(counts.size()) + " layers, the model has " +
                             std::to_string(run.moe.size()) + " MoE blocks");
  const auto selected = select_finetune_experts(counts, domain, o.arm, o.tau, seed, static_cast<uint64_t>(o.draw));
  const std::vector<std::vector<int>> path =
      select_finetune_experts(counts, domain, "paths", o.tau, seed, 0);  // recorded for every arm

  // Trainable parameters.
  const bool full = o.arm == "full";
  const int64_t E = rc.n_experts;
  std::vector<at::Tensor> trainable;
  std::vector<PartialTensor> partial;
  std::vector<at::Tensor> layer_mask;  // per MoE layer: [E] bool trainable experts
  int64_t n_trainable = 0, n_total = 0;
  for (const auto& p : model.parameters()) {
    n_total += p.numel();
    p.set_requires_grad(full);
    if (full) trainable.push_back(p), n_trainable += p.numel();
  }
  for (std::size_t l = 0; l < run.moe.size(); ++l) {
    at::Tensor mask = at::zeros({E}, at::kBool);  // [E]
    for (int e : selected[l]) mask[e] = true;
    layer_mask.push_back(mask.to(run.device));
    if (full || selected[l].empty()) continue;
    const bool all = static_cast<int64_t>(selected[l].size()) == E;
    for (at::Tensor* w : {&run.moe[l]->w_gate, &run.moe[l]->w_up, &run.moe[l]->w_down}) {
      w->set_requires_grad(true);
      trainable.push_back(*w);
      n_trainable += w->numel() / E * static_cast<int64_t>(selected[l].size());
      if (!all) partial.push_back({*w, layer_mask.back().view({E, 1, 1}), w->detach().clone()});
    }
  }
  if (trainable.empty())
    throw std::invalid_argument("--arm " + o.arm + ": no expert to train (domain '" + o.domain +
                                "' has no routing in " + selection_trace + ")");

  // Training data: the target split's sequences holding the domain; loss on its tokens only.
  const int64_t S = target.seq_len();
  std::vector<int64_t> seqs;
  {
    std::vector<int64_t> dom(static_cast<std::size_t>(S));
    for (int64_t q = 0; q < target.n_sequences(Split::kTrain); ++q) {
      target.gather(Split::kTrain, {q}, nullptr, dom.data(), nullptr);
      if (std::find(dom.begin() + 1, dom.end(), domain) != dom.end()) seqs.push_back(q);
    }
  }
  if (seqs.empty()) throw std::invalid_argument("--domain " + o.domain + ": no training sequence of the target dataset holds it");
  BatchSampler sampler(static_cast<int64_t>(seqs.size()), B, /*shuffle=*/true, seed);
  torch::optim::AdamW opt(trainable, torch::optim::AdamWOptions(o.lr).betas({rc.beta1, rc.beta2}).weight_decay(o.weight_decay));
  const int64_t warmup = o.warmup_steps >= 0 ? o.warmup_steps : o.steps / 10;

  FlopShape shape;
  shape.d_model = rc.d_model;
  shape.n_heads = rc.n_heads;
  shape.vocab = run.data->vocab_size();
  shape.d_ff = rc.d_ff;
  shape.n_shared = rc.n_shared_experts;
  shape.dense_d_ff = rc.dense_d_ff > 0 ? rc.dense_d_ff : rc.d_ff * rc.top_k;
  shape.n_experts = E;
  for (int64_t b = 0; b < rc.n_layers; ++b) shape.moe_index.push_back(b < rc.first_k_dense ? -1 : b - rc.first_k_dense);

  // The fine-tune is a run directory (runs/, moetb-run/1): the base run's config (same
  // model; load_run works on it, so `moetb knockout` does too), its log, the evaluation
  // after it (eval.json, traces/), its checkpoint and the result, finetune.json.
  runs::RunInfo info;
  info.seed = rc.seed;
  info.git_revision = o.git_revision;
  info.threads = rc.threads;
  info.device = rc.device;
  info.dataset = fs::absolute(rc.data_dir).lexically_normal().string();
  if (const auto base_info = runs::read_run_info(o.run_dir)) info.config = base_info->config;
  info.provenance = {{"kind", "finetune"}, {"base_run", fs::absolute(o.run_dir).lexically_normal().string()},
                     {"base_step", run.state.step}, {"domain", o.domain}, {"arm", o.arm}, {"tau", o.tau}, {"draw", o.draw},
                     {"steps", o.steps}, {"target_data", fs::absolute(target.dir()).lexically_normal().string()}};
  std::string config_toml;
  {
    std::ifstream cfg_in(fs::path(o.run_dir) / runs::kConfigFile);
    std::stringstream text;
    text << cfg_in.rdbuf();
    config_toml = text.str();
  }
  const runs::RunWriter writer = runs::RunWriter::create(o.out_dir, info, config_toml, o.force);
  Progress progress(o.progress, o.steps, 10);
  double flops = 0.0, flops_full = 0.0, last_loss = 0.0;
  std::vector<int64_t> tok(static_cast<std::size_t>(B * S)), dom(static_cast<std::size_t>(B * S));
  const bool freeze_router_state = !full;
  const auto t_train = std::chrono::steady_clock::now();  // the aux-loss-free bias and router streams are router state
  for (int64_t step = 1; step <= o.steps; ++step) {
    const double lr = learning_rate(o, warmup, step);
    for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    opt.zero_grad();
    std::vector<int64_t> batch;
    for (int64_t i : sampler.next()) batch.push_back(seqs[static_cast<std::size_t>(i)]);
    target.gather(Split::kTrain, batch, tok.data(), dom.data(), nullptr);
    const at::Tensor tokens = at::from_blob(tok.data(), {B, S}, at::kLong).to(run.device);   // [B, S]
    const at::Tensor domains = at::from_blob(dom.data(), {B, S}, at::kLong).to(run.device);  // [B, S]
    LMOutput fwd = model.forward(tokens, own_data ? domains : at::Tensor(), /*training=*/true);
    const int64_t V = fwd.logits.size(-1);
    const at::Tensor next = tokens.narrow(1, 1, S - 1);                                        // [B, S-1]
    const at::Tensor labels = next.masked_fill(domains.narrow(1, 1, S - 1).ne(domain), -100);  // [B, S-1]
    const at::Tensor ce = at::cross_entropy_loss(fwd.logits.narrow(1, 0, S - 1).reshape({-1, V}), labels.reshape({-1}),
                                                 {}, at::Reduction::Mean, -100);  // [] nats over target tokens
    const at::Tensor loss = ce + fwd.aux_loss;
    last_loss = ce.item<double>() / std::log(2.0);
    if (!std::isfinite(loss.item<double>())) throw std::runtime_error("step " + std::to_string(step) + ": loss is not finite");
    loss.backward();
    {
      const c10::NoGradGuard no_grad;
      for (auto& pt : partial)
        if (pt.param.grad().defined()) pt.param.mutable_grad().mul_(pt.keep.to(pt.param.scalar_type()));
    }
    if (rc.grad_clip > 0.0) clip_grad_norm(trainable, rc.grad_clip);
    opt.step();
    {
      const c10::NoGradGuard no_grad;
      for (auto& pt : partial) pt.param.copy_(at::where(pt.keep, pt.param, pt.frozen));
    }
    for (Router* r : model.routers()) r->end_step();
    if (freeze_router_state) load_router_states(model, router_start);
    StepRouting routing_counts;
    routing_counts.batch = B;
    routing_counts.seq_len = S;
    for (std::size_t l = 0; l < fwd.decisions.size(); ++l) {
      const at::Tensor ids = fwd.decisions[l].experts;  // [B*S, slots]
      const at::Tensor valid = ids.ge(0);
      routing_counts.assignments.push_back(valid.sum().item<int64_t>());
      routing_counts.trainable_assignments.push_back(
          layer_mask[l].index_select(0, ids.clamp_min(0).reshape({-1})).logical_and(valid.reshape({-1})).sum().item<int64_t>());
    }
    const StepFlops f = step_flops(shape, routing_counts, full);
    flops += f.forward + f.backward;
    flops_full += f.full;
    runs::StepRecord record;
    record.step = step;
    record.lr = lr;
    record.loss_bits = last_loss;
    record.aux_loss = fwd.aux_loss.item<double>();
    for (const auto& d : fwd.decisions)
      for (const auto& [k, v] : d.aux_terms) record.aux_terms[k] += v / static_cast<double>(fwd.decisions.size());
    record.tokens_per_s = static_cast<double>(step * B * S) /
                          std::max(1e-9, std::chrono::duration<double>(std::chrono::steady_clock::now() - t_train).count());
    writer.append_step(record);
    progress.update(step, 0.0, last_loss, fwd.aux_loss.item<double>(), 0.0);
  }
  progress.finish();
  for (const auto& p : model.parameters()) p.set_requires_grad(true);

  // After.
  EvalResult target_after = eval(target);
  std::optional<EvalResult> mix_after;
  if (!own_data) mix_after = eval(*run.data);
  const EvalResult& mb = own_data ? target_before : *mix_before;
  const EvalResult& ma = own_data ? target_after : *mix_after;
  const auto& td_before = target_before.domains[static_cast<std::size_t>(domain)];
  const auto& td_after = target_after.domains[static_cast<std::size_t>(domain)];
  nlohmann::json others = nlohmann::json::object();
  double change_sum = 0.0;
  int64_t change_tokens = 0;
  for (std::size_t d = 0; d < mb.domains.size(); ++d) {
    if (own_data && static_cast<int>(d) == domain) continue;
    if (!mb.domains[d].loss_bits || !ma.domains[d].loss_bits) continue;  // no validation tokens
    const double change = *ma.domains[d].loss_bits - *mb.domains[d].loss_bits;
    others[mb.domains[d].name] = {{"loss_before_bits", *mb.domains[d].loss_bits}, {"loss_after_bits", *ma.domains[d].loss_bits},
                                  {"change_bits", change}, {"n_tokens", mb.domains[d].n_tokens}};
    change_sum += change * static_cast<double>(mb.domains[d].n_tokens);
    change_tokens += mb.domains[d].n_tokens;
  }
  nlohmann::json experts_json = nlohmann::json::array(), path_json = nlohmann::json::array();
  for (std::size_t l = 0; l < selected.size(); ++l) {
    experts_json.push_back(selected[l]);
    path_json.push_back(path[l]);
  }
  const double loss_before = *td_before.loss_bits, loss_after = td_after.loss_bits.value_or(NAN);
  const double gain = loss_before - loss_after;
  nlohmann::json result = {
      {"format", "moetb-finetune/1"},
      {"run", fs::absolute(o.run_dir).string()},
      {"run_step", run.state.step},
      {"router", rc.router.name},
      {"seed", rc.seed},
      {"domain", o.domain},
      {"domain_in_pretraining", own_data},
      {"data", fs::absolute(target.dir()).string()},
      {"arm", o.arm},
      {"tau", o.tau},
      {"draw", o.arm == "random" ? nlohmann::json(o.draw) : nlohmann::json(nullptr)},
      {"selection_trace", selection_trace},
      {"experts", experts_json},
      {"path", path_json},
      {"steps", o.steps},
      {"optimizer", {{"name", "adamw"}, {"lr", o.lr}, {"warmup_steps", warmup}, {"min_lr_ratio", 0.1},
                     {"weight_decay", o.weight_decay}, {"betas", {rc.beta1, rc.beta2}}, {"grad_clip", rc.grad_clip},
                     {"micro_batch", B}, {"batch_seed", seed}, {"train_sequences", seqs.size()}}},
      {"eval_sequences", n_eval},
      {"trainable_parameters", n_trainable},
      {"total_parameters", n_total},
      {"trainable_fraction", static_cast<double>(n_trainable) / static_cast<double>(n_total)},
      {"training_flops", flops},
      {"training_flops_full", flops_full},
      {"flops_fraction", flops_full > 0 ? flops / flops_full : 0.0},
      {"target", {{"loss_before_bits", loss_before}, {"loss_after_bits", loss_after},
                  {"gain_bits", gain}, {"floor_bits", td_before.floor_bits ? nlohmann::json(*td_before.floor_bits) : nlohmann::json(nullptr)},
                  {"n_tokens", td_before.n_tokens}, {"final_train_loss_bits", last_loss}}},
      {"other_domains", others},
      {"forgetting_bits", change_tokens > 0 ? change_sum / static_cast<double>(change_tokens) : 0.0},
      {"eval_before", {{"target_data", domain_losses(target_before)}}},
      {"eval_after", {{"target_data", domain_losses(target_after)}}},
      {"git_revision", o.git_revision},
      {"wall_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count()}};

  const int64_t last_step = run.state.step + o.steps;
  const std::string trace_name = runs::trace_name(last_step);
  write_trace_file(target_after.trace, (writer.dir() / trace_name).string(), E <= 32767 ? DType::kI16 : DType::kI32);
  runs::EvalRecord record;
  record.step = last_step;
  record.eval = target_after.summary();
  record.trace = trace_name;
  const nlohmann::json metrics = metrics_to_json(compute_trace_metrics(target_after.trace, mo));
  record.metrics_summary = metrics.value("summary", nlohmann::json::object());
  writer.append_eval(record);
  const runs::FinalEval final_eval{record, rc.router.name, metrics, rc.seed, o.git_revision};  // record, router, metrics, seed, git
  writer.write_final_eval(final_eval);
  torch::optim::AdamW fresh(model.parameters(), torch::optim::AdamWOptions(o.lr));  // the checkpoint format wants one
  save_checkpoint(writer.dir().string(), model, fresh, {last_step, sampler.state(), save_router_states(model)}, 1);
  result["wall_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  replace_owned_file(writer.dir() / "finetune.json", result.dump(2) + "\n");
  return result;
}

}  // namespace moetb
