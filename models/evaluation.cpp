// evaluate() (evaluation.h): forward passes without gradients, per-token losses, routing.
#include "models/evaluation.h"

#include <ATen/ops/from_blob.h>
#include <ATen/ops/log_softmax.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <stdexcept>

namespace moetb {

runs::EvalSummary EvalResult::summary() const {
  runs::EvalSummary s;
  s.loss_bits = loss_bits;
  s.floor_bits = floor_bits;
  s.unigram_bits = unigram_bits;
  if (loss_bits && floor_bits) s.gap_bits = *loss_bits - *floor_bits;
  // Share of the gap between the unigram model and the floor that the model closed.
  if (loss_bits && floor_bits && unigram_bits && *unigram_bits > *floor_bits)
    s.gap_closed = (*unigram_bits - *loss_bits) / (*unigram_bits - *floor_bits);
  for (const auto& d : domains) {
    s.n_tokens += d.n_tokens;
    runs::DomainEval de{d.name, d.n_tokens, d.loss_bits, d.floor_bits, std::nullopt};
    if (d.loss_bits && d.floor_bits) de.gap_bits = *d.loss_bits - *d.floor_bits;
    s.domains.push_back(de);
  }
  return s;
}

std::vector<MoEFeedForwardImpl*> moe_layers(MoETransformerImpl& model) {
  std::vector<MoEFeedForwardImpl*> out;
  for (const auto& child : model.named_children())
    if (auto moe = std::dynamic_pointer_cast<MoEFeedForwardImpl>(child.value())) out.push_back(moe.get());
  if (static_cast<int64_t>(out.size()) != model.n_moe_layers()) throw std::runtime_error("cannot find the model's MoE layers by name");
  return out;
}

namespace {

// Sets every MoE layer's dropless_eval switch for one evaluation and restores it after.
class RoutingSwitch {
 public:
  RoutingSwitch(MoETransformerImpl& model, EvalRouting routing) : layers_(moe_layers(model)) {
    for (MoEFeedForwardImpl* l : layers_) {
      saved_.push_back(l->dropless_eval);
      l->dropless_eval = routing == EvalRouting::kDropless;
    }
  }
  ~RoutingSwitch() {
    for (std::size_t i = 0; i < layers_.size(); ++i) layers_[i]->dropless_eval = saved_[i];
  }
  RoutingSwitch(const RoutingSwitch&) = delete;
  RoutingSwitch& operator=(const RoutingSwitch&) = delete;

 private:
  std::vector<MoEFeedForwardImpl*> layers_;
  std::vector<bool> saved_;
};

void append_experts(const at::Tensor& experts, std::vector<int32_t>& out) {  // experts: [n*S, slots]
  const at::Tensor e = experts.to(at::kCPU).to(at::kInt).contiguous();
  const int32_t* p = e.data_ptr<int32_t>();
  out.insert(out.end(), p, p + e.numel());
}

}  // namespace

EvalResult evaluate(MoETransformerImpl& model, const Dataset& data, int64_t n_sequences, int64_t batch,
                    const at::Device& device, const std::vector<std::vector<int>>& reference_groups, EvalRouting routing) {
  const c10::NoGradGuard no_grad;
  const RoutingSwitch routing_switch(model, routing);
  const int64_t S = data.seq_len(), D = data.n_domains(), V = data.vocab_size();
  const int64_t total = n_sequences > 0 ? std::min(n_sequences, data.n_sequences(Split::kVal)) : data.n_sequences(Split::kVal);
  EvalResult r;
  // Unigram baseline: add-one smoothed token frequencies of the train split.
  std::vector<double> unigram(static_cast<std::size_t>(V), 1.0);
  {
    std::vector<int64_t> tok(static_cast<std::size_t>(S));
    for (int64_t q = 0; q < data.n_sequences(Split::kTrain); ++q) {
      data.gather(Split::kTrain, {q}, tok.data(), nullptr, nullptr);
      for (int64_t t : tok) unigram[static_cast<std::size_t>(t)] += 1.0;
    }
    double sum = 0.0;
    for (double c : unigram) sum += c;
    for (double& c : unigram) c = -std::log2(c / sum);
  }
  std::vector<double> loss_sum(static_cast<std::size_t>(D), 0.0);
  std::vector<int64_t> count(static_cast<std::size_t>(D), 0);
  double unigram_sum = 0.0;

  TraceData& tr = r.trace;
  const int64_t n_moe = model.n_moe_layers();
  tr.meta_data.num_experts = model.config().moe.n_experts;
  tr.meta_data.top_k = model.config().moe.top_k;
  tr.meta_data.domain_names = data.domain_names();
  if (!reference_groups.empty()) tr.meta_data.reference_groups = reference_groups;
  tr.k.assign(static_cast<std::size_t>(n_moe), model.config().moe.top_k);  // replaced by the decisions' slot counts
  tr.experts.assign(static_cast<std::size_t>(n_moe), {});

  for (int64_t begin = 0; begin < total; begin += batch) {
    const int64_t n = std::min(batch, total - begin);
    std::vector<int64_t> seqs(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i) seqs[i] = begin + i;
    std::vector<int64_t> tok(static_cast<std::size_t>(n * S)), dom(static_cast<std::size_t>(n * S));
    data.gather(Split::kVal, seqs, tok.data(), dom.data(), nullptr);
    const at::Tensor tokens = at::from_blob(tok.data(), {n, S}, at::kLong).to(device);   // [n, S]
    const at::Tensor domains = at::from_blob(dom.data(), {n, S}, at::kLong).to(device);  // [n, S]
    LMOutput out = model.forward(tokens, domains, /*training=*/false);
    // Loss of predicting token t+1 from tokens <= t: [n, S-1]
    const at::Tensor logp = at::log_softmax(out.logits.narrow(1, 0, S - 1).to(at::kFloat), -1);
    const at::Tensor target = tokens.narrow(1, 1, S - 1);
    const at::Tensor nll = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1).neg().to(at::kCPU).contiguous();  // [n, S-1] nats
    const float* nll_p = nll.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t t = 0; t + 1 < S; ++t) {
        const int64_t d = dom[static_cast<std::size_t>(i * S + t + 1)];
        loss_sum[static_cast<std::size_t>(d)] += nll_p[i * (S - 1) + t] / std::log(2.0);
        count[static_cast<std::size_t>(d)] += 1;
        unigram_sum += unigram[static_cast<std::size_t>(tok[static_cast<std::size_t>(i * S + t + 1)])];
      }
    // Routing of every token (position 0 included), layer by layer.
    for (int64_t i = 0; i < n * S; ++i) {
      tr.token_ids.push_back(static_cast<int32_t>(tok[static_cast<std::size_t>(i)]));
      tr.positions.push_back(static_cast<int32_t>(i % S));
      tr.domain_ids.push_back(static_cast<int32_t>(dom[static_cast<std::size_t>(i)]));
    }
    // Choices before capacity: kept only when every layer has them (a capacity limit applied).
    bool before = true;
    for (const auto& d : out.decisions) before = before && d.experts_before_capacity.defined();
    if (before && begin == 0) tr.experts_before_capacity.assign(static_cast<std::size_t>(n_moe), {});
    if (!before) tr.experts_before_capacity.clear();
    for (int64_t l = 0; l < n_moe; ++l) {
      const auto i = static_cast<std::size_t>(l);
      // [n*S, slots]: top_k, or E for expert choice (which routes over this eval batch unless dropless)
      const RoutingDecision& d = out.decisions[i];
      tr.k[i] = d.experts.size(1);
      append_experts(d.experts, tr.experts[i]);
      if (before && !tr.experts_before_capacity.empty()) append_experts(d.experts_before_capacity, tr.experts_before_capacity[i]);
    }
  }
  int64_t n_all = 0;
  double sum_all = 0.0, floor_sum = 0.0;
  bool all_floors = true;
  for (int64_t d = 0; d < D; ++d) {
    DomainLoss dl;
    dl.name = data.domain_names()[d];
    dl.n_tokens = count[d];
    if (count[d] > 0) dl.loss_bits = loss_sum[d] / static_cast<double>(count[d]);  // none without tokens, not 0
    dl.floor_bits = data.entropy_rate_bits(d);
    if (dl.floor_bits) floor_sum += *dl.floor_bits * static_cast<double>(count[d]);
    else all_floors = false;
    n_all += count[d];
    sum_all += loss_sum[d];
    r.domains.push_back(dl);
  }
  if (n_all > 0) r.loss_bits = sum_all / static_cast<double>(n_all);
  if (n_all > 0) r.unigram_bits = unigram_sum / static_cast<double>(n_all);
  if (all_floors && n_all > 0) r.floor_bits = floor_sum / static_cast<double>(n_all);
  return r;
}

}  // namespace moetb
