// Balance scopes, step counts and the aux-loss-free bias update (balance.h). Switch loss
// arXiv 2101.03961; sequence-wise loss and aux-loss-free bias DeepSeek-V3 arXiv 2412.19437;
// global-batch balancing Qwen arXiv 2501.11873.
#include "routers/balance.h"

#include <ATen/ops/bincount.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/unique_dim.h>
#include <ATen/ops/zeros.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <tuple>

#include "routers/router_internal.h"

namespace moetb {

at::Tensor sequence_balance_loss(const at::Tensor& probs, const at::Tensor& experts, const at::Tensor& sequence_ids) {
  const int64_t n_tokens = probs.size(0), n_experts = probs.size(1), k = experts.size(1);
  if (n_tokens == 0) return at::zeros({}, probs.options());
  at::Tensor uniq, inverse;  // [n_seq], [n_tokens]: sequences renumbered 0..n_seq-1
  std::tie(uniq, inverse, std::ignore) = at::unique_dim(sequence_ids, 0, /*sorted=*/true, /*return_inverse=*/true);
  const int64_t n_seq = uniq.size(0);
  const at::Tensor flat = experts.reshape({-1});                                  // [n_tokens * k]
  const at::Tensor valid = flat.ge(0);                                            // [n_tokens * k]
  const at::Tensor cell = inverse.repeat_interleave(k).mul(n_experts).add(flat);  // [n_tokens * k]
  const at::Tensor counts =
      at::bincount(cell.masked_select(valid), {}, n_seq * n_experts).view({n_seq, n_experts}).to(probs.scalar_type());
  const at::Tensor f = counts.div(counts.sum(1, true).clamp_min(1.0));  // [n_seq, E]
  const at::Tensor tokens = at::bincount(inverse, {}, n_seq).to(probs.scalar_type()).unsqueeze(1);  // [n_seq, 1]
  const at::Tensor p = at::zeros({n_seq, n_experts}, probs.options()).index_add(0, inverse, probs).div(tokens);  // [n_seq, E]
  return f.mul(p).sum(1).mean().mul(static_cast<double>(n_experts));  // []
}

at::Tensor counts_balance_loss(const at::Tensor& probs, const std::vector<double>& counts) {
  const auto n_experts = static_cast<int64_t>(counts.size());
  double total = 0.0;
  for (double c : counts) total += c;
  if (probs.size(0) == 0 || total <= 0.0) return at::zeros({}, probs.options());
  std::vector<double> share(counts);
  for (double& s : share) s /= total;
  const at::Tensor f =
      at::from_blob(share.data(), {n_experts}, at::kDouble).to(probs.options(), false, /*copy=*/true);  // [E], owned
  return f.mul(probs.mean(0)).sum().mul(static_cast<double>(n_experts));  // []
}

void StepLoad::add(const at::Tensor& experts) {
  const std::vector<double> c = expert_counts(experts, static_cast<int64_t>(counts_.size()));  // [E]
  for (std::size_t e = 0; e < counts_.size(); ++e) counts_[e] += c[e];
}

at::Tensor scoped_balance_loss(const RouterConfig& cfg, const at::Tensor& probs, const at::Tensor& experts,
                               const RouteContext& ctx, const StepLoad& step) {
  if (cfg.balance_scope == BalanceScope::kSequence) return sequence_balance_loss(probs, experts, ctx.sequence_ids);
  if (cfg.balance_scope == BalanceScope::kGlobalBatch && ctx.training) return counts_balance_loss(probs, step.counts());
  return switch_balance_loss(probs, experts);
}

void update_balance_bias(std::vector<double>& bias, const std::vector<double>& counts, double rate) {
  double total = 0.0;
  for (double c : counts) total += c;
  if (total <= 0.0 || rate <= 0.0) return;
  const double mean = total / static_cast<double>(counts.size());
  for (std::size_t e = 0; e < bias.size(); ++e)
    bias[e] += rate * static_cast<double>((mean > counts[e]) - (mean < counts[e]));
}

void BiasVotes::vote(const double* counts) {
  const auto n_experts = votes_.size();
  double total = 0.0;
  for (std::size_t e = 0; e < n_experts; ++e) total += counts[e];
  if (total <= 0.0) return;
  const double mean = total / static_cast<double>(n_experts);
  for (std::size_t e = 0; e < n_experts; ++e) votes_[e] += static_cast<double>((mean > counts[e]) - (mean < counts[e]));
  blocks_ += 1.0;
}

void BiasVotes::add(const at::Tensor& experts, const at::Tensor& block_ids) {
  const auto n_experts = static_cast<int64_t>(votes_.size());
  const int64_t k = experts.size(1);
  const at::Tensor flat = experts.reshape({-1}).cpu();  // [n * k]
  const at::Tensor valid = flat.ge(0);
  if (!block_ids.defined()) {
    const at::Tensor c = at::bincount(flat.masked_select(valid), {}, n_experts).to(at::kDouble).contiguous();  // [E]
    vote(c.data_ptr<double>());
    return;
  }
  at::Tensor uniq, inverse;  // [n_blocks], [n_tokens]
  std::tie(uniq, inverse, std::ignore) = at::unique_dim(block_ids.cpu(), 0, /*sorted=*/true, /*return_inverse=*/true);
  const int64_t n_blocks = uniq.size(0);
  const at::Tensor cell = inverse.repeat_interleave(k).mul(n_experts).add(flat);  // [n * k]
  const at::Tensor c =
      at::bincount(cell.masked_select(valid), {}, n_blocks * n_experts).to(at::kDouble).contiguous();  // [n_blocks * E]
  for (int64_t b = 0; b < n_blocks; ++b) vote(c.data_ptr<double>() + b * n_experts);
}

void BiasVotes::apply(std::vector<double>& bias, double rate) {
  if (blocks_ > 0.0 && rate > 0.0)
    for (std::size_t e = 0; e < bias.size(); ++e) bias[e] += rate * votes_[e] / blocks_;
  reset();
}

void BiasVotes::reset() {
  std::fill(votes_.begin(), votes_.end(), 0.0);
  blocks_ = 0.0;
}

std::vector<at::Tensor> sequence_rows(const at::Tensor& sequence_ids) {
  at::Tensor uniq, inverse;  // [n_seq], [n_tokens]
  std::tie(uniq, inverse, std::ignore) = at::unique_dim(sequence_ids, 0, /*sorted=*/true, /*return_inverse=*/true);
  std::vector<at::Tensor> rows;
  for (int64_t s = 0; s < uniq.size(0); ++s) rows.push_back(inverse.eq(s).nonzero().squeeze(1));  // [m_s]
  return rows;
}

void append_doubles(std::vector<uint64_t>& out, const std::vector<double>& v) {
  for (double d : v) {
    uint64_t w;
    std::memcpy(&w, &d, sizeof w);
    out.push_back(w);
  }
}

std::vector<double> read_doubles(const std::vector<uint64_t>& in, std::size_t offset, std::size_t n) {
  if (offset + n > in.size()) throw std::invalid_argument("router state: " + std::to_string(in.size()) + " words, too few");
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) std::memcpy(&v[i], &in[offset + i], sizeof(double));
  return v;
}

}  // namespace moetb
