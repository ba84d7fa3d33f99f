// Router saturation between two traces of the same tokens, walked shard by shard in
// lockstep (the two traces may be split into shards at different places).
#include "metrics/trace_compare.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace moetb {
namespace {

// Walks a ShardSource token by token across shard boundaries.
class TokenCursor {
 public:
  explicit TokenCursor(const ShardSource& src) : src_(src) { load(0); }
  bool done() const { return shard_ >= src_.n_shards(); }
  const ShardView& view() const { return view_; }
  int64_t offset() const { return offset_; }
  void advance() {
    if (++offset_ >= view_.n_tokens) {
      src_.release(shard_);
      load(shard_ + 1);
    }
  }

 private:
  void load(std::size_t s) {
    shard_ = s;
    offset_ = 0;
    while (shard_ < src_.n_shards()) {
      view_ = src_.shard(shard_);
      if (view_.n_tokens > 0) return;
      ++shard_;
    }
  }
  const ShardSource& src_;
  std::size_t shard_ = 0;
  int64_t offset_ = 0;
  ShardView view_;
};

}  // namespace

std::vector<std::optional<double>> router_saturation(const ShardSource& a, const ShardSource& b) {
  const int n_layers = std::min(a.n_layers(), b.n_layers());
  std::vector<double> sum(n_layers, 0.0);
  std::vector<int64_t> count(n_layers, 0);
  std::vector<int64_t> stamp(static_cast<std::size_t>(std::max(a.meta().num_experts, b.meta().num_experts)), -1);
  TokenCursor ca(a), cb(b);
  int64_t t = 0;
  for (; !ca.done() && !cb.done(); ++t, ca.advance(), cb.advance()) {
    const ShardView& va = ca.view();
    const ShardView& vb = cb.view();
    const int64_t ia = ca.offset(), ib = cb.offset();
    if (va.token_ids[ia] != vb.token_ids[ib] || va.positions[ia] != vb.positions[ib])
      throw TraceError(vb.label + ": token " + std::to_string(t) + " (id " + std::to_string(vb.token_ids[ib]) +
                       ", position " + std::to_string(vb.positions[ib]) + ") differs from " + va.label + " (id " +
                       std::to_string(va.token_ids[ia]) + ", position " + std::to_string(va.positions[ia]) +
                       "): compare needs the same tokens");
    for (int l = 0; l < n_layers; ++l) {
      const LayerView& la = va.layers[l];
      const LayerView& lb = vb.layers[l];
      const int64_t key = t * n_layers + l;  // unique per (token, layer): no reset needed
      for (int64_t s = 0; s < la.k; ++s) {
        const int32_t e = la.expert(ia, s);
        if (e >= 0 && e < static_cast<int64_t>(stamp.size())) stamp[e] = key;
      }
      int64_t n_b = 0, shared = 0;
      for (int64_t s = 0; s < lb.k; ++s) {
        const int32_t e = lb.expert(ib, s);
        if (e < 0 || e >= static_cast<int64_t>(stamp.size())) continue;
        ++n_b;
        shared += stamp[e] == key;
      }
      if (n_b > 0) {
        sum[l] += static_cast<double>(shared) / static_cast<double>(n_b);
        ++count[l];
      }
    }
  }
  if (!ca.done() || !cb.done())
    throw TraceError(std::string("the traces hold different numbers of tokens (") + (ca.done() ? "A" : "B") +
                     " has more than " + std::to_string(t) + "): compare needs the same tokens");
  std::vector<std::optional<double>> out(n_layers);
  for (int l = 0; l < n_layers; ++l)
    if (count[l] > 0) out[l] = sum[l] / static_cast<double>(count[l]);
  return out;
}

nlohmann::json compare_json(const TraceMetrics& a, const TraceMetrics& b,
                            const std::vector<std::optional<double>>& saturation) {
  const nlohmann::json ja = metrics_to_json(a), jb = metrics_to_json(b);
  const std::map<std::string, nlohmann::json> fa = flatten_json(ja["summary"]), fb = flatten_json(jb["summary"]);
  nlohmann::json summary = nlohmann::json::object();
  std::map<std::string, nlohmann::json> keys = fa;  // union: a key either trace lacks is null there
  keys.insert(fb.begin(), fb.end());
  for (const auto& entry : keys) {
    const std::string& key = entry.first;
    const nlohmann::json va = fa.count(key) ? fa.at(key) : nlohmann::json(nullptr);
    const nlohmann::json vb = fb.count(key) ? fb.at(key) : nlohmann::json(nullptr);
    nlohmann::json delta = nullptr;
    if (va.is_number() && vb.is_number()) delta = vb.get<double>() - va.get<double>();
    summary[key] = {{"a", va}, {"b", vb}, {"delta", delta}};
  }
  nlohmann::json sat = nlohmann::json::array();
  for (const auto& s : saturation) sat.push_back(s ? nlohmann::json(*s) : nlohmann::json(nullptr));
  nlohmann::json out;
  out["format"] = "moetb-compare/1";
  out["a"] = ja["trace"];
  out["b"] = jb["trace"];
  out["saturation"] = sat;
  out["summary"] = summary;
  return out;
}

}  // namespace moetb
