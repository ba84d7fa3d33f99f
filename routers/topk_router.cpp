// Token-choice top-k router (Switch Transformer arXiv 2101.03961, ST-MoE arXiv 2202.08906)
// with the options the MoE Routing Testbed (arXiv 2604.07030) compares: the balance scope
// of the Switch loss (micro_batch, sequence, global_batch; routers/balance.h), DeepSeek-V3's
// aux-loss-free bias and sequence-wise loss (arXiv 2412.19437), group-limited routing
// (DeepSeek-V2 arXiv 2405.04434), multiplicative jitter and top-k before softmax.
// Simplifications: jitter multiplies the logits (not the router input); P_e of the balance
// loss always uses the softmax probabilities (also under sigmoid scores), as `probs` does.
#include <ATen/core/Tensor.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/topk.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "common/rng.h"
#include "routers/balance.h"
#include "routers/router.h"
#include "routers/router_internal.h"
#include "routers/softmax_topk.h"

namespace moetb {

namespace {

constexpr uint64_t kJitterSalt = 0x4a49545445524e53ull;  // separates the jitter stream from other seed users

class TopkRouter final : public Router {
 public:
  explicit TopkRouter(const RouterConfig& cfg)
      : Router(cfg), step_(cfg.n_experts), votes_(cfg.n_experts), bias_(static_cast<std::size_t>(cfg.n_experts), 0.0),
        rng_(mix_seed({cfg.seed, kJitterSalt})) {}
  std::string name() const override { return "topk"; }
  bool needs_sequence_ids() const override {
    return cfg_.balance_scope == BalanceScope::kSequence || cfg_.seq_aux_coef > 0.0 ||
           (cfg_.bias_update_rate > 0.0 && cfg_.bias_scope == BalanceScope::kSequence);
  }

  void end_step() override {
    if (cfg_.bias_scope == BalanceScope::kGlobalBatch) update_balance_bias(bias_, step_.counts(), cfg_.bias_update_rate);
    else votes_.apply(bias_, cfg_.bias_update_rate);
    step_.reset();
  }
  // [bias (E doubles), step counts (E doubles), jitter RNG (4 words)], then for the sequence
  // and micro-batch bias scopes [votes (E doubles), blocks (1 double)]; empty = fresh.
  std::vector<uint64_t> save_state() const override {
    std::vector<uint64_t> out;
    append_doubles(out, bias_);
    append_doubles(out, step_.counts());
    for (uint64_t w : rng_.state()) out.push_back(w);
    if (cfg_.bias_scope != BalanceScope::kGlobalBatch) {
      append_doubles(out, votes_.votes());
      append_doubles(out, {votes_.blocks()});
    }
    return out;
  }
  void load_state(const std::vector<uint64_t>& s) override {
    const auto e = static_cast<std::size_t>(cfg_.n_experts);
    if (s.empty()) return;  // a checkpoint from before the router had state
    const std::size_t want = cfg_.bias_scope == BalanceScope::kGlobalBatch ? 2 * e + 4 : 3 * e + 5;
    if (s.size() != want)
      throw std::invalid_argument("topk router: a saved state has " + std::to_string(want) + " words, got " +
                                  std::to_string(s.size()));
    bias_ = read_doubles(s, 0, e);
    step_.mutable_counts() = read_doubles(s, e, e);
    rng_.set_state({s[2 * e], s[2 * e + 1], s[2 * e + 2], s[2 * e + 3]});
    if (want > 2 * e + 4) {
      votes_.votes() = read_doubles(s, 2 * e + 4, e);
      votes_.blocks() = read_doubles(s, 3 * e + 4, 1)[0];
    }
  }

 protected:
  RoutingDecision do_route(const at::Tensor& logits_in, const RouteContext& ctx) override {
    if (fused_path(logits_in, ctx)) return fused_route(logits_in, ctx);
    const at::Tensor logits = ctx.training && cfg_.jitter > 0.0 ? jittered(logits_in) : logits_in;  // [n_tokens, E]
    const at::Tensor probs = at::softmax(logits, 1);                                                 // [n_tokens, E]
    const at::Tensor scores = cfg_.score == Score::kSigmoid ? at::sigmoid(logits) : probs;                 // [n_tokens, E]
    at::Tensor select = scores.detach();  // [n_tokens, E]: selection only, never the weights
    if (cfg_.bias_update_rate > 0.0)
      select = select.add(at::from_blob(bias_.data(), {cfg_.n_experts}, at::kDouble).to(select.options()));
    if (cfg_.n_groups > 1) select = limit_to_groups(select);
    const at::Tensor top_ids = topk_indices(select, cfg_.top_k);  // [n_tokens, k], as at::topk's (router_kernels.h)
    RoutingDecision d;
    d.experts = top_ids;
    if (cfg_.topk_before_softmax) {
      d.weights = at::softmax(logits.gather(1, top_ids), 1);  // softmax over the k selected logits
    } else {
      const at::Tensor top_scores = scores.gather(1, top_ids);  // [n_tokens, k]
      d.weights = combine_weights(top_scores, cfg_);  // at top-1: the score itself (Switch)
    }
    d.probs = probs;
    if (ctx.training) step_.add(top_ids);
    const at::Tensor balance = scoped_balance_loss(cfg_, probs, top_ids, ctx, step_);  // []
    const at::Tensor z = router_z_loss(logits);                                        // []
    d.aux_loss = balance.mul(cfg_.balance_coef).add(z.mul(cfg_.z_loss_coef));
    d.aux_terms["balance"] = balance.item<double>();
    d.aux_terms["z_loss"] = z.item<double>();
    add_votes_and_sequence_loss(d, ctx);
    return d;
  }

 private:
  // The usual configuration on the CPU as one autograd function (softmax_topk.h): softmax
  // scores, no jitter, groups or top-k before softmax, a micro-batch or global-batch balance
  // scope. The same decision and losses as do_route's composition (tests hold them equal).
  bool fused_path(const at::Tensor& logits, const RouteContext& ctx) const {
    return logits.device().is_cpu() && logits.size(0) > 0 && cfg_.score == Score::kSoftmax && !(ctx.training && cfg_.jitter > 0.0) &&
           cfg_.n_groups <= 1 && !cfg_.topk_before_softmax && cfg_.balance_scope != BalanceScope::kSequence;
  }
  RoutingDecision fused_route(const at::Tensor& logits, const RouteContext& ctx) {
    SoftmaxTopkOptions opt;
    opt.top_k = cfg_.top_k;
    opt.renormalize = cfg_.renormalize;
    opt.balance_coef = cfg_.balance_coef;
    opt.z_loss_coef = cfg_.z_loss_coef;
    if (cfg_.bias_update_rate > 0.0) opt.bias = bias_;
    if (cfg_.balance_scope == BalanceScope::kGlobalBatch && ctx.training) opt.prior_counts = step_.counts();  // before this batch's
    const SoftmaxTopk r = softmax_topk(logits, opt);
    RoutingDecision d;
    d.experts = r.experts;
    d.weights = r.weights;
    d.probs = r.probs;
    if (ctx.training)
      for (std::size_t e = 0; e < r.counts.size(); ++e) step_.mutable_counts()[e] += r.counts[e];
    d.aux_loss = r.aux_loss;
    d.aux_terms["balance"] = r.balance;
    d.aux_terms["z_loss"] = r.z_loss;
    add_votes_and_sequence_loss(d, ctx);
    return d;
  }

  // Both paths' last steps: the bias votes of the sequence and micro-batch bias scopes, and
  // DeepSeek-V3's sequence-wise loss on the decision's probabilities.
  void add_votes_and_sequence_loss(RoutingDecision& d, const RouteContext& ctx) {
    if (ctx.training && cfg_.bias_update_rate > 0.0 && cfg_.bias_scope != BalanceScope::kGlobalBatch)
      votes_.add(d.experts, cfg_.bias_scope == BalanceScope::kSequence ? ctx.sequence_ids : at::Tensor());
    if (cfg_.seq_aux_coef > 0.0) {
      const at::Tensor seq = sequence_balance_loss(d.probs, d.experts, ctx.sequence_ids);  // []
      d.aux_loss = d.aux_loss.add(seq.mul(cfg_.seq_aux_coef));
      d.aux_terms["seq_balance"] = seq.item<double>();
    }
  }

  // logits * U(1 - jitter, 1 + jitter), elementwise, from the router's portable stream.
  at::Tensor jittered(const at::Tensor& logits) {
    std::vector<double> noise(static_cast<std::size_t>(logits.numel()));
    for (double& x : noise) x = 1.0 - cfg_.jitter + 2.0 * cfg_.jitter * rng_.uniform();
    // A copy (copy=true): autograd keeps the factor for the backward pass.
    return logits.mul(at::from_blob(noise.data(), logits.sizes(), at::kDouble).to(logits.options(), false, /*copy=*/true));
  }

  // Group-limited routing: a group's score is its best expert's (DeepSeek-V2) or the sum of
  // its two best (DeepSeek-V3, GLM-4.5, Megatron-LM), on the (biased) selection scores;
  // experts outside each token's topk_groups best groups are set to -inf. select: [n, E].
  at::Tensor limit_to_groups(const at::Tensor& select) const {
    const int64_t n = select.size(0), g = cfg_.n_groups, size = cfg_.n_experts / g;
    const at::Tensor grouped = select.view({n, g, size});  // [n, G, E/G]
    const at::Tensor group_scores = resolved_group_score(cfg_) == GroupScore::kTop2Sum
                                        ? std::get<0>(at::topk(grouped, std::min<int64_t>(2, size), 2)).sum(2)
                                        : std::get<0>(grouped.max(2));                                    // [n, G]
    const at::Tensor best = std::get<1>(at::topk(group_scores, cfg_.topk_groups, 1));  // [n, topk_groups]
    const at::Tensor keep = at::zeros({n, g}, select.options().dtype(at::kBool)).scatter(1, best, true);             // [n, G]
    return grouped.masked_fill(keep.logical_not().unsqueeze(2), -std::numeric_limits<double>::infinity())
        .view({n, cfg_.n_experts});
  }

  StepLoad step_;
  BiasVotes votes_;  // sequence / micro-batch bias scopes
  std::vector<double> bias_;  // [E], added to the scores for selection only
  Rng rng_;
};

}  // namespace

std::unique_ptr<Router> make_topk_router(const RouterConfig& cfg) { return std::make_unique<TopkRouter>(cfg); }

}  // namespace moetb
