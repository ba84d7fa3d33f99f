// run_knockout (knockout.h): one unablated evaluation, then one per (layer, expert) with
// that expert removed (models/expert_mask.h), router states restored before each pass so
// random routers draw the same choices; routing counts from the unablated trace.
#include "models/knockout.h"

#include <ATen/ops/zeros.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <cstdio>

#include "metrics/expert_importance.h"
#include "metrics/trace_metrics.h"
#include "models/evaluation.h"

namespace moetb {

nlohmann::json run_knockout(LoadedRun& run, const KnockoutOptions& options) {
  const c10::NoGradGuard no_grad;
  MoETransformerImpl& model = *run.model;
  const int64_t n_seq = options.eval_sequences > 0 ? options.eval_sequences : run.cfg.eval_sequences;
  const int64_t batch = run.cfg.micro_batch;
  const auto states = save_router_states(model);
  auto eval = [&] {
    EvalResult r = evaluate(model, *run.data, n_seq, batch, run.device, run.groups);
    load_router_states(model, states);  // every evaluation sees the same random streams
    return r;
  };
  const EvalResult base = eval();
  MetricsOptions mo;
  mo.threads = 1;
  const TraceMetrics metrics = compute_trace_metrics(base.trace, mo);
  const std::size_t n_domains = base.domains.size();
  std::vector<double> base_loss;
  std::vector<int64_t> tokens;
  for (const auto& d : base.domains) {
    base_loss.push_back(d.loss_bits.value_or(NAN));
    tokens.push_back(d.n_tokens);
  }
  std::vector<KnockoutLayer> layers;
  const int64_t n_experts = run.cfg.n_experts;
  for (std::size_t l = 0; l < run.moe.size(); ++l) {
    KnockoutLayer kl;
    kl.layer = static_cast<int>(l);
    kl.block = run.moe_blocks[l];
    kl.counts = metrics.layers[l].stats.counts;
    for (int64_t e = 0; e < n_experts; ++e) {
      at::Tensor removed = at::zeros({n_experts}, at::kBool);  // [E]
      removed[e] = true;
      run.moe[l]->removed_experts = removed.to(run.device);
      const EvalResult ev = eval();
      run.moe[l]->removed_experts = at::Tensor();
      std::vector<double> inc(n_domains);
      for (std::size_t d = 0; d < n_domains; ++d) inc[d] = ev.domains[d].loss_bits.value_or(NAN) - base_loss[d];
      kl.loss_increase.push_back(inc);
    }
    if (options.progress)
      std::fprintf(stderr, "knockout: layer %zu of %zu done (%lld experts)\n", l + 1, run.moe.size(),
                   static_cast<long long>(n_experts));
    layers.push_back(std::move(kl));
  }
  nlohmann::json out = {{"format", "moetb-knockout/1"}, {"run", run.dir}, {"step", run.state.step},
                        {"router", run.cfg.router.name}, {"eval_sequences", n_seq}, {"base_eval", base.to_json()}};
  out.update(knockout_json(layers, metrics.domains, base_loss, tokens));
  out["definitions"] = {
      {"removal", "the expert is never selected: its slots are emptied and the token's other routing weights "
                  "are rescaled to the total they had (a renormalising router's still sum to 1)"},
      {"loss_increase_bits", "validation loss with the expert removed minus without, per domain, bits per token"},
      {"p_d", "C[d,e] / n_d: the share of domain d's assignments in this layer that go to e"},
      {"specialization", "max_d C[d,e] / sum_d C[d,e]: the share of e's load from its top domain"},
      {"knockout_concentration", "max_d max(0, inc(e,d)) / sum_d max(0, inc(e,d))"}};
  return out;
}

}  // namespace moetb
