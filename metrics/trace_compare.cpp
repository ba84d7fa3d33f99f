// Two traces of the same tokens: the token check and router saturation walk both shard by
// shard in lockstep (they may be split into shards at different places); the verdicts come
// from the jackknife replicates that compute_trace_metrics keeps (one pass per trace).
#include "metrics/trace_compare.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace moetb {
namespace {

constexpr int64_t kReleaseEvery = 65536;  // tokens between giving mapped pages back

// Walks a ShardSource token by token across shard boundaries.
class TokenCursor {
 public:
  explicit TokenCursor(const ShardSource& src) : src_(src) { load(0); }
  bool done() const { return shard_ >= src_.n_shards(); }
  const ShardView& view() const { return view_; }
  int64_t offset() const { return offset_; }
  void advance() {
    if (++since_release_ == kReleaseEvery) {  // pages already read count in RSS until released
      src_.release(shard_);
      since_release_ = 0;
    }
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
  int64_t offset_ = 0, since_release_ = 0;
  ShardView view_;
};

[[noreturn]] void token_mismatch(const ShardView& va, int64_t ia, const ShardView& vb, int64_t ib, int64_t t,
                                 const char* what) {
  auto desc = [&](const ShardView& v, int64_t i) {
    return "id " + std::to_string(v.token_ids[i]) + ", position " + std::to_string(v.positions[i]) + ", domain " +
           std::to_string(v.domain_ids[i]);
  };
  throw TraceError(vb.label + ": token " + std::to_string(t) + " (" + desc(vb, ib) + ") differs from " + va.label +
                   " (" + desc(va, ia) + ") in its " + what + ": compare needs the same tokens");
}

[[noreturn]] void count_mismatch(const TokenCursor& ca, int64_t t) {
  throw TraceError(std::string("the traces hold different numbers of tokens (") + (ca.done() ? "B" : "A") +
                   " has more than " + std::to_string(t) + "): compare needs the same tokens");
}

// Jackknife standard error sqrt((B-1)/B sum_b (x_b - mean)^2); null if a replicate is null.
std::optional<double> jackknife_se(const std::vector<std::optional<double>>& reps) {
  if (reps.size() < 2) return std::nullopt;
  double mean = 0;
  for (const auto& r : reps) {
    if (!r) return std::nullopt;
    mean += *r;
  }
  const double n = static_cast<double>(reps.size());
  mean /= n;
  double ss = 0;
  for (const auto& r : reps) ss += (*r - mean) * (*r - mean);
  return std::sqrt((n - 1) / n * ss);
}

std::optional<double> number(const std::map<std::string, nlohmann::json>& flat, const std::string& key) {
  auto it = flat.find(key);
  if (it == flat.end() || !it->second.is_number()) return std::nullopt;
  return it->second.get<double>();
}

nlohmann::json opt(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

}  // namespace

TokenCheck check_same_tokens(const ShardSource& a, const ShardSource& b) {
  TokenCheck out;
  TokenCursor ca(a), cb(b);
  bool domain_mismatch = false;
  ShardView mva, mvb;  // the first token whose domain ids differ
  int64_t mia = 0, mib = 0, mt = 0;
  for (; !ca.done() && !cb.done(); ++out.tokens, ca.advance(), cb.advance()) {
    const ShardView& va = ca.view();
    const ShardView& vb = cb.view();
    const int64_t ia = ca.offset(), ib = cb.offset();
    if (va.token_ids[ia] != vb.token_ids[ib]) token_mismatch(va, ia, vb, ib, out.tokens, "token id");
    if (va.positions[ia] != vb.positions[ib]) token_mismatch(va, ia, vb, ib, out.tokens, "position");
    const int32_t da = va.domain_ids[ia], db = vb.domain_ids[ib];
    out.labelled_a = out.labelled_a || da >= 0;
    out.labelled_b = out.labelled_b || db >= 0;
    if (da != db && !domain_mismatch) {
      domain_mismatch = true;
      mva = va;
      mvb = vb;
      mia = ia;
      mib = ib;
      mt = out.tokens;
    }
  }
  if (!ca.done() || !cb.done()) count_mismatch(ca, out.tokens);
  // A trace without any label is exempt (its domain metrics are null); otherwise labels must agree.
  // The views stay valid after release(): pages are re-read from the file on the next touch.
  if (domain_mismatch && out.labelled_a && out.labelled_b) token_mismatch(mva, mia, mvb, mib, mt, "domain id");
  return out;
}

std::string saturation_skip_reason(const ShardSource& a, const ShardSource& b) {
  if (a.meta().num_experts != b.meta().num_experts)
    return "saturation skipped: the traces have different numbers of experts (A " +
           std::to_string(a.meta().num_experts) + ", B " + std::to_string(b.meta().num_experts) +
           "), so expert ids do not correspond";
  if (a.n_layers() != b.n_layers())
    return "saturation skipped: the traces have different numbers of layers (A " + std::to_string(a.n_layers()) +
           ", B " + std::to_string(b.n_layers()) + "), so layers do not correspond";
  return "";
}

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
    if (va.token_ids[ia] != vb.token_ids[ib]) token_mismatch(va, ia, vb, ib, t, "token id");
    if (va.positions[ia] != vb.positions[ib]) token_mismatch(va, ia, vb, ib, t, "position");
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
  if (!ca.done() || !cb.done()) count_mismatch(ca, t);
  std::vector<std::optional<double>> out(n_layers);
  for (int l = 0; l < n_layers; ++l)
    if (count[l] > 0) out[l] = sum[l] / static_cast<double>(count[l]);
  return out;
}

const char* const kOnePairNote =
    "one trace per side: each verdict says whether B - A exceeds the token-sampling noise of this one pair of traces "
    "(a jackknife over their tokens), not whether it exceeds the variation between training seeds; for that, compare "
    "several seeds per side: moetb compare --a RUN... --b RUN...";

nlohmann::json compare_json(const TraceMetrics& a, const TraceMetrics& b,
                            const std::vector<std::optional<double>>& saturation, const CompareOptions& options) {
  const nlohmann::json ja = metrics_to_json(a), jb = metrics_to_json(b);
  const std::map<std::string, nlohmann::json> fa = flatten_json(ja["summary"]), fb = flatten_json(jb["summary"]);
  const bool verdicts = options.verdicts;
  const int blocks = a.jackknife_blocks >= 2 && a.jackknife_blocks == b.jackknife_blocks ? a.jackknife_blocks : 0;
  // Replicate summaries, flattened: [block] -> key -> value.
  std::vector<std::map<std::string, nlohmann::json>> ra, rb;
  for (int r = 0; verdicts && r < blocks; ++r) {
    ra.push_back(flatten_json(replicate_summary_json(a, r)));
    rb.push_back(flatten_json(replicate_summary_json(b, r)));
  }
  nlohmann::json summary = nlohmann::json::object();
  nlohmann::json differs = nlohmann::json::array();
  std::map<std::string, nlohmann::json> keys = fa;  // union: a key either trace lacks is null there
  keys.insert(fb.begin(), fb.end());
  for (const auto& entry : keys) {
    const std::string& key = entry.first;
    const nlohmann::json va = fa.count(key) ? fa.at(key) : nlohmann::json(nullptr);
    const nlohmann::json vb = fb.count(key) ? fb.at(key) : nlohmann::json(nullptr);
    nlohmann::json delta = nullptr;
    if (va.is_number() && vb.is_number()) delta = vb.get<double>() - va.get<double>();
    nlohmann::json e = {{"a", va}, {"b", vb}, {"delta", delta}};
    if (verdicts) {
      std::vector<std::optional<double>> xa, xb, xd;
      for (std::size_t r = 0; r < ra.size(); ++r) {
        xa.push_back(number(ra[r], key));
        xb.push_back(number(rb[r], key));
        xd.push_back(xa.back() && xb.back() ? std::optional<double>(*xb.back() - *xa.back()) : std::nullopt);
      }
      const std::optional<double> se_d = jackknife_se(xd);
      e["se_a"] = opt(jackknife_se(xa));
      e["se_b"] = opt(jackknife_se(xb));
      e["se_delta"] = opt(se_d);
      e["threshold"] = nullptr;
      e["verdict"] = nullptr;
      const bool scales_with_e = key == "load.dead_experts" || key == "load.max_vio";
      if (!fa.count(key) || !fb.count(key)) {
        e["note"] = std::string("only in ") + (fa.count(key) ? "A" : "B");
      } else if (!delta.is_number()) {
        e["note"] = std::string("undefined (null) in ") + (va.is_number() ? "B" : vb.is_number() ? "A" : "A and B");
      } else if (scales_with_e && a.num_experts != b.num_experts) {
        e["note"] = "not comparable: scales with the number of experts (A " + std::to_string(a.num_experts) +
                    ", B " + std::to_string(b.num_experts) + ")";
      } else {
        const double threshold = std::max(options.tol, se_d ? options.z * *se_d : 0.0);
        e["threshold"] = threshold;
        const bool differ = std::fabs(delta.get<double>()) > threshold;
        e["verdict"] = differ ? "differs" : "same";
        if (!se_d && blocks > 0) e["note"] = "no standard error (undefined in a jackknife replicate): tol only";
        if (differ) differs.push_back(key);
      }
    }
    summary[key] = std::move(e);
  }
  nlohmann::json sat = nlohmann::json::array();
  for (const auto& s : saturation) sat.push_back(opt(s));
  nlohmann::json notes = options.notes;
  if (a.n_layers != b.n_layers)
    notes.push_back("the summaries average different numbers of layers (A " + std::to_string(a.n_layers) + ", B " +
                    std::to_string(b.n_layers) + ")");
  if (a.top_k != b.top_k)
    notes.push_back("top-k differs (A " + std::to_string(a.top_k) + ", B " + std::to_string(b.top_k) +
                    "): NE and its chance level depend on it; read NE against ne_chance");
  nlohmann::json out;
  out["format"] = "moetb-compare/1";
  out["a"] = ja["trace"];
  out["b"] = jb["trace"];
  out["saturation"] = sat;
  if (verdicts) {
    if (blocks == 0)
      notes.push_back("no jackknife standard errors (blocks off or unequal): verdicts use the tol floor alone");
    out["criterion"] = {{"method", blocks > 0 ? "paired delete-one-block jackknife" : "absolute tolerance"},
                        {"blocks", blocks},
                        {"z", options.z},
                        {"tol", options.tol},
                        {"rule", "differs when |delta| > max(tol, z * se_delta)"}};
    out["differs"] = differs;
  }
  notes.push_back(kOnePairNote);  // a single pair: say what its verdicts can and cannot tell
  out["notes"] = notes;
  out["summary"] = summary;
  return out;
}

}  // namespace moetb
