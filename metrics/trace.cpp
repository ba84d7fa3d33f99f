// Routing trace format v1: opening, checking and viewing trace shards, and writing them.
// All structural checks of the spec (tensors present, dtypes, shapes agreeing on T,
// metadata, shard agreement) happen when a Trace is opened; expert-id contents are
// checked by LayerAccumulator as a layer is streamed (it touches every byte anyway).
#include "metrics/trace.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace moetb {
namespace fs = std::filesystem;
namespace {

[[noreturn]] void fail(const std::string& label, const std::string& tensor, const std::string& what) {
  throw TraceError(label + ": " + (tensor.empty() ? "" : tensor + ": ") + what);
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t parse_count(const std::map<std::string, std::string>& raw, const std::string& key, const std::string& label) {
  auto it = raw.find(key);
  if (it == raw.end()) fail(label, "__metadata__", "missing required key '" + key + "'");
  const std::string& s = it->second;
  if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    fail(label, "__metadata__", key + " = '" + s + "' is not a positive decimal integer below 10^9");
  const int64_t v = std::stoll(s);
  if (v <= 0) fail(label, "__metadata__", key + " = '" + s + "' must be positive");
  return v;
}

}  // namespace

float LayerView::weight(int64_t token, int64_t slot) const {
  const int64_t i = token * k + slot;
  switch (weights_dtype) {
    case DType::kF32: { float f; std::memcpy(&f, static_cast<const uint8_t*>(weights) + 4 * i, 4); return f; }
    case DType::kF16: { uint16_t h; std::memcpy(&h, static_cast<const uint8_t*>(weights) + 2 * i, 2); return f16_to_float(h); }
    case DType::kBF16: { uint16_t h; std::memcpy(&h, static_cast<const uint8_t*>(weights) + 2 * i, 2); return bf16_to_float(h); }
    default: return 0.0f;
  }
}

void check_domain_ids(const ShardView& shard, int64_t begin, int64_t end) {
  if (end < 0 || end > shard.n_tokens) end = shard.n_tokens;
  for (int64_t t = begin; t < end; ++t) {
    const int32_t d = shard.domain_ids[t];
    if (d < -1 || d > kMaxDomainId)
      fail(shard.label, "domain_ids", "value " + std::to_string(d) + " at token " + std::to_string(t) +
                                          " is outside [-1, " + std::to_string(kMaxDomainId) + "]");
  }
}

int64_t ShardSource::n_tokens() const {
  int64_t n = 0;
  for (std::size_t i = 0; i < n_shards(); ++i) n += shard(i).n_tokens;
  return n;
}

std::vector<std::string> ShardSource::domain_list(int max_domain_id) const {
  const auto& names = meta().domain_names;
  const int n = std::max<int>(static_cast<int>(names.size()), max_domain_id + 1);
  std::vector<std::string> out;
  for (int d = 0; d < n; ++d) {
    if (d < static_cast<int>(names.size())) {
      out.push_back(names[d]);
      continue;
    }
    const std::string fallback = std::to_string(d);  // unnamed domain: its decimal id
    if (std::find(names.begin(), names.end(), fallback) != names.end())
      throw TraceError("domain_names: domain id " + fallback + " has no name and its decimal id is already the name of "
                       "another domain");
    out.push_back(fallback);
  }
  return out;
}

void check_reference_groups(const std::vector<std::vector<int>>& groups, int64_t num_experts) {
  if (groups.size() > static_cast<std::size_t>(kMaxDomainId) + 1)
    throw std::invalid_argument("lists " + std::to_string(groups.size()) + " domains, more than moetb's limit of " +
                                std::to_string(kMaxDomainId + 1));
  for (const auto& g : groups) {
    std::vector<int> ids = g;
    std::sort(ids.begin(), ids.end());
    if (std::adjacent_find(ids.begin(), ids.end()) != ids.end())
      throw std::invalid_argument("expert " + std::to_string(*std::adjacent_find(ids.begin(), ids.end())) +
                                  " is listed twice in one group");
    for (int e : ids)
      if (e < 0 || (num_experts > 0 && e >= num_experts))
        throw std::invalid_argument("expert id " + std::to_string(e) + " is outside [0, " +
                                    (num_experts > 0 ? std::to_string(num_experts) : std::string("E")) + ")");
  }
}

std::vector<std::vector<int>> parse_reference_groups_text(const std::string& text, int64_t num_experts) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  const char* shape = "is not a JSON list of lists of expert ids";
  if (!j.is_array()) throw std::invalid_argument(shape);
  if (j.size() > static_cast<std::size_t>(kMaxDomainId) + 1)
    throw std::invalid_argument("lists " + std::to_string(j.size()) + " domains, more than moetb's limit of " +
                                std::to_string(kMaxDomainId + 1));
  std::vector<std::vector<int>> groups;
  for (const auto& g : j) {
    if (!g.is_array()) throw std::invalid_argument(shape);
    std::vector<int> ids;
    for (const auto& e : g) {
      // Never dump() the offending value: deeply nested input would overflow the stack.
      if (!e.is_number_integer()) throw std::invalid_argument("holds a value that is not an integer expert id");
      const int64_t v = e.is_number_unsigned() && e.get<uint64_t>() > static_cast<uint64_t>(INT32_MAX)
                            ? int64_t{INT32_MAX} + 1
                            : e.get<int64_t>();
      if (v < 0 || v > INT32_MAX) throw std::invalid_argument("expert id " + std::to_string(v) + " is out of range");
      ids.push_back(static_cast<int>(v));
    }
    groups.push_back(std::move(ids));
  }
  check_reference_groups(groups, num_experts);
  return groups;
}

TraceMeta parse_trace_meta(const std::map<std::string, std::string>& raw, const std::string& label) {
  TraceMeta meta;
  meta.raw = raw;
  auto fmt = raw.find("format");
  if (fmt == raw.end()) fail(label, "__metadata__", "missing required key 'format'");
  if (fmt->second != kTraceFormat)
    fail(label, "__metadata__", "format is '" + fmt->second + "', expected '" + kTraceFormat + "'");
  meta.num_experts = parse_count(raw, "num_experts", label);
  if (meta.num_experts > kMaxExperts)
    fail(label, "__metadata__", "num_experts = " + std::to_string(meta.num_experts) + " exceeds moetb's limit of " +
                                    std::to_string(kMaxExperts));
  meta.top_k = parse_count(raw, "top_k", label);
  if (auto it = raw.find("domain_names"); it != raw.end()) {
    nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
    if (!j.is_array() || !std::all_of(j.begin(), j.end(), [](const auto& x) { return x.is_string(); }))
      fail(label, "__metadata__", "domain_names is not a JSON list of strings");
    if (j.size() > static_cast<std::size_t>(kMaxDomainId) + 1)
      fail(label, "__metadata__", "domain_names lists " + std::to_string(j.size()) + " domains, more than moetb's limit of " +
                                      std::to_string(kMaxDomainId + 1));
    for (const auto& x : j) meta.domain_names.push_back(x.get<std::string>());
    std::vector<std::string> sorted = meta.domain_names;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
      fail(label, "__metadata__", "domain_names lists a name twice");
  }
  if (auto it = raw.find("reference_groups"); it != raw.end()) {
    try {
      meta.reference_groups = parse_reference_groups_text(it->second, meta.num_experts);
    } catch (const std::invalid_argument& e) {
      fail(label, "__metadata__", std::string("reference_groups: ") + e.what());
    }
  }
  if (auto it = raw.find("model"); it != raw.end()) meta.model = it->second;
  if (auto it = raw.find("source"); it != raw.end()) meta.source = it->second;
  return meta;
}

std::map<std::string, std::string> make_trace_metadata(const TraceMeta& meta,
                                                       const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> raw = extra;
  raw["format"] = kTraceFormat;
  raw["num_experts"] = std::to_string(meta.num_experts);
  raw["top_k"] = std::to_string(meta.top_k);
  if (!meta.domain_names.empty()) raw["domain_names"] = nlohmann::json(meta.domain_names).dump();
  if (meta.reference_groups) raw["reference_groups"] = nlohmann::json(*meta.reference_groups).dump();
  if (!meta.model.empty()) raw["model"] = meta.model;
  if (!meta.source.empty()) raw["source"] = meta.source;
  return raw;
}

// ---------------------------------------------------------------- Trace (files)

struct Trace::Shard {
  std::unique_ptr<MappedFile> file;
  SafetensorsHeader header;
  ShardView view;
  std::vector<std::vector<uint8_t>> aligned_copies;  // only for tensors misaligned in the file
  std::vector<std::pair<uint64_t, uint64_t>> layer_bytes;  // [L] file byte range of layers.l.experts
};

namespace {

// Returns a pointer to the tensor's bytes, copying them if they are not aligned for T.
const void* tensor_bytes(const MappedFile& file, const SafetensorsHeader& h, const TensorInfo& t, std::size_t align,
                         std::vector<std::vector<uint8_t>>* copies) {
  const uint8_t* p = file.data() + h.data_start + t.begin;
  if (reinterpret_cast<std::uintptr_t>(p) % align == 0) return p;
  copies->emplace_back(p, p + (t.end - t.begin));
  // std::vector<uint8_t> storage comes from operator new: aligned for any scalar type.
  return copies->back().data();
}

const TensorInfo& require(const SafetensorsHeader& h, const std::string& name, const std::string& label) {
  const TensorInfo* t = h.find(name);
  if (t == nullptr) fail(label, name, "required tensor is missing");
  return *t;
}

}  // namespace

Trace::Trace(const std::vector<std::string>& paths, ExpertsTensor which) {
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(p, ec))
        if (entry.is_regular_file() && entry.path().extension() == ".safetensors") found.push_back(entry.path().string());
      if (ec) throw TraceError(p + ": cannot list directory: " + ec.message());
      if (found.empty()) throw TraceError(p + ": directory holds no *.safetensors files");
      std::sort(found.begin(), found.end());
      files_.insert(files_.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(p, ec)) {
      files_.push_back(p);
    } else if (fs::exists(p, ec)) {
      throw TraceError(p + ": not a regular file or directory");
    } else {
      throw TraceError(p + ": no such file or directory");
    }
  }
  if (files_.empty()) throw TraceError("no trace files given");

  std::vector<int64_t> first_k;
  for (std::size_t si = 0; si < files_.size(); ++si) {
    const std::string& label = files_[si];
    auto shard = std::make_unique<Shard>();
    try {
      shard->file = std::make_unique<MappedFile>(label);
    } catch (const std::runtime_error& e) {
      throw TraceError(e.what());  // callers of the trace reader catch one error type
    }
    shard->header = parse_safetensors(shard->file->data(), shard->file->size(), label);
    const SafetensorsHeader& h = shard->header;
    TraceMeta meta = parse_trace_meta(h.metadata, label);

    ShardView& v = shard->view;
    v.label = label;
    auto i32_vector = [&](const char* name) -> const int32_t* {
      const TensorInfo& t = require(h, name, label);
      if (t.dtype != DType::kI32) fail(label, name, "dtype is " + t.dtype_str + ", expected I32");
      if (t.shape.size() != 1) fail(label, name, "shape " + shape_str(t.shape) + " is not [T]");
      if (name == std::string("token_ids")) v.n_tokens = t.shape[0];
      if (t.shape[0] != v.n_tokens)
        fail(label, name, "shape " + shape_str(t.shape) + " disagrees with token_ids on T = " + std::to_string(v.n_tokens));
      return static_cast<const int32_t*>(tensor_bytes(*shard->file, h, t, 4, &shard->aligned_copies));
    };
    v.token_ids = i32_vector("token_ids");
    v.positions = i32_vector("positions");
    v.domain_ids = i32_vector("domain_ids");

    int n_layers = 0;
    while (h.find("layers." + std::to_string(n_layers) + ".experts") != nullptr) ++n_layers;
    for (const auto& t : h.tensors) {  // a gap in layer numbering is an error, not a silent cut
      if (t.name.rfind("layers.", 0) == 0 && t.name.size() > 15 && t.name.compare(t.name.size() - 8, 8, ".experts") == 0) {
        const std::string idx = t.name.substr(7, t.name.size() - 15);
        if (!idx.empty() && std::all_of(idx.begin(), idx.end(), [](char c) { return c >= '0' && c <= '9'; }) && (idx.size() > 9 || std::stoll(idx) >= n_layers))
          fail(label, t.name, "layer indices are not contiguous from 0 (layers." + std::to_string(n_layers) +
                                  ".experts is missing)");
      }
    }
    if (n_layers == 0) fail(label, "layers.0.experts", "required tensor is missing (a trace needs at least one layer)");
    std::vector<int64_t> ks;
    for (int l = 0; l < n_layers; ++l) {
      const std::string base = "layers." + std::to_string(l);
      const TensorInfo& routed = require(h, base + ".experts", label);
      const bool before = which == ExpertsTensor::kBeforeCapacity;
      const std::string before_name = base + "." + kBeforeCapacitySuffix;
      if (before && h.find(before_name) == nullptr)
        fail(label, before_name, "this trace has no choices before capacity (moetb train writes them only where a "
                                 "capacity limit applied at evaluation)");
      const TensorInfo& t = before ? *h.find(before_name) : routed;
      if (before && t.shape != routed.shape)
        fail(label, t.name, "shape " + shape_str(t.shape) + " differs from " + routed.name + "'s " + shape_str(routed.shape));
      LayerView lv;
      shard->layer_bytes.push_back({h.data_start + t.begin, h.data_start + t.end});
      if (t.shape.size() != 2 || t.shape[0] != v.n_tokens)
        fail(label, t.name, "shape " + shape_str(t.shape) + " is not [T, K] with T = " + std::to_string(v.n_tokens));
      lv.k = t.shape[1];
      if (lv.k > kMaxExperts)
        fail(label, t.name, "K = " + std::to_string(lv.k) + " slots exceed moetb's limit of " + std::to_string(kMaxExperts));
      if (t.dtype == DType::kI16)
        lv.experts_i16 = static_cast<const int16_t*>(tensor_bytes(*shard->file, h, t, 2, &shard->aligned_copies));
      else if (t.dtype == DType::kI32)
        lv.experts_i32 = static_cast<const int32_t*>(tensor_bytes(*shard->file, h, t, 4, &shard->aligned_copies));
      else
        fail(label, t.name, "dtype is " + t.dtype_str + ", expected I16 or I32");
      auto optional_float = [&](const std::string& name, int64_t cols, const void** data, DType* dtype) {
        const TensorInfo* o = h.find(name);
        if (o == nullptr) return;
        if (o->dtype != DType::kF32 && o->dtype != DType::kF16 && o->dtype != DType::kBF16)
          fail(label, name, "dtype is " + o->dtype_str + ", expected F32, F16 or BF16");
        if (o->shape.size() != 2 || o->shape[0] != v.n_tokens || o->shape[1] != cols)
          fail(label, name, "shape " + shape_str(o->shape) + " is not [" + std::to_string(v.n_tokens) + ", " +
                                std::to_string(cols) + "]");
        *data = shard->file->data() + h.data_start + o->begin;  // read with memcpy: no alignment needed
        *dtype = o->dtype;
      };
      if (!before) optional_float(base + ".weights", lv.k, &lv.weights, &lv.weights_dtype);  // after the drop
      optional_float(base + ".probs", meta.num_experts, &lv.probs, &lv.probs_dtype);
      v.layers.push_back(lv);
      ks.push_back(lv.k);
    }

    if (si == 0) {
      meta_ = std::move(meta);
      n_layers_ = n_layers;
      first_k = ks;
    } else {
      if (h.metadata != meta_.raw) {
        std::string key;
        for (const auto& [k, val] : h.metadata)
          if (!meta_.raw.count(k) || meta_.raw.at(k) != val) { key = k; break; }
        if (key.empty())
          for (const auto& [k, val] : meta_.raw)
            if (!h.metadata.count(k)) { key = k; break; }
        fail(label, "__metadata__", "key '" + key + "' disagrees with the first shard " + files_[0]);
      }
      if (n_layers != n_layers_)
        fail(label, "layers", std::to_string(n_layers) + " layers disagree with " + std::to_string(n_layers_) +
                                  " in the first shard " + files_[0]);
      for (int l = 0; l < n_layers; ++l)
        if (ks[l] != first_k[l])
          fail(label, "layers." + std::to_string(l) + ".experts",
               "K = " + std::to_string(ks[l]) + " disagrees with K = " + std::to_string(first_k[l]) +
                   " in the first shard " + files_[0]);
    }
    shards_.push_back(std::move(shard));
  }
}

Trace::~Trace() = default;

ShardView Trace::shard(std::size_t i) const { return shards_.at(i)->view; }

void Trace::release(std::size_t i) const { shards_.at(i)->file->release_pages(); }

void Trace::release_layer(std::size_t i, int layer) const {
  const auto& [begin, end] = shards_.at(i)->layer_bytes.at(layer);
  shards_[i]->file->release_pages(begin, end);
}

void Trace::release_range(std::size_t i, const void* begin, const void* end) const {
  const MappedFile& f = *shards_.at(i)->file;
  const auto base = reinterpret_cast<std::uintptr_t>(f.data());
  const auto b = reinterpret_cast<std::uintptr_t>(begin), e = reinterpret_cast<std::uintptr_t>(end);
  if (f.data() == nullptr || b < base || e > base + f.size() || b >= e) return;  // an aligned copy, not the map
  f.release_pages(b - base, e - base);
}

// ---------------------------------------------------------------- TraceData (memory)

ShardView TraceData::shard(std::size_t /*i*/) const {
  ShardView v;
  v.label = "<memory>";
  v.n_tokens = static_cast<int64_t>(token_ids.size());
  v.token_ids = token_ids.data();
  v.positions = positions.data();
  v.domain_ids = domain_ids.data();
  for (std::size_t l = 0; l < experts.size(); ++l) {
    LayerView lv;
    lv.k = k[l];
    lv.experts_i32 = experts[l].data();
    v.layers.push_back(lv);
  }
  return v;
}

TraceData TraceData::before_capacity() const {
  if (experts_before_capacity.size() != experts.size() || experts.empty())
    throw TraceError("<memory>: layers.0." + std::string(kBeforeCapacitySuffix) + ": this trace has no choices before capacity");
  TraceData out = *this;
  out.experts = experts_before_capacity;
  out.experts_before_capacity.clear();
  return out;
}

// ---------------------------------------------------------------- writing

std::vector<TensorSpec> trace_tensor_specs(const TraceShardLayout& layout) {
  const int64_t t = layout.n_tokens;
  std::vector<TensorSpec> specs = {{"token_ids", DType::kI32, {t}},
                                   {"positions", DType::kI32, {t}},
                                   {"domain_ids", DType::kI32, {t}}};
  for (std::size_t l = 0; l < layout.k.size(); ++l) {
    const std::string base = "layers." + std::to_string(l);
    specs.push_back({base + ".experts", layout.experts_dtype, {t, layout.k[l]}});
    if (layout.weights_dtype != DType::kOther) specs.push_back({base + ".weights", layout.weights_dtype, {t, layout.k[l]}});
    if (layout.probs_dtype != DType::kOther) specs.push_back({base + ".probs", layout.probs_dtype, {t, layout.num_experts}});
    if (layout.before_capacity) specs.push_back({base + "." + kBeforeCapacitySuffix, layout.experts_dtype, {t, layout.k[l]}});
  }
  return specs;
}

void write_trace_file(const TraceData& trace, const std::string& path, DType experts_dtype,
                      const std::map<std::string, std::string>& extra_metadata) {
  TraceShardLayout layout;
  layout.n_tokens = static_cast<int64_t>(trace.token_ids.size());
  layout.k = trace.k;
  layout.experts_dtype = experts_dtype;
  layout.num_experts = trace.meta_data.num_experts;
  layout.before_capacity = !trace.experts_before_capacity.empty();
  if (layout.before_capacity && trace.experts_before_capacity.size() != trace.experts.size())
    throw TraceError(path + ": experts_before_capacity has " + std::to_string(trace.experts_before_capacity.size()) +
                     " layers, experts " + std::to_string(trace.experts.size()));
  SafetensorsWriter w(path, trace_tensor_specs(layout), make_trace_metadata(trace.meta_data, extra_metadata));
  auto write_vec = [&](const std::vector<int32_t>& v) { w.write(v.data(), v.size() * 4); };
  auto write_experts = [&](const std::vector<int32_t>& layer) {
    if (experts_dtype == DType::kI32) {
      write_vec(layer);
    } else {
      std::vector<int16_t> narrow(layer.size());
      for (std::size_t i = 0; i < layer.size(); ++i) {
        if (layer[i] < -1 || layer[i] > 32767) throw TraceError(path + ": expert id " + std::to_string(layer[i]) + " does not fit I16");
        narrow[i] = static_cast<int16_t>(layer[i]);
      }
      w.write(narrow.data(), narrow.size() * 2);
    }
  };
  write_vec(trace.token_ids);
  write_vec(trace.positions);
  write_vec(trace.domain_ids);
  for (std::size_t l = 0; l < trace.experts.size(); ++l) {  // in trace_tensor_specs' order
    write_experts(trace.experts[l]);
    if (layout.before_capacity) write_experts(trace.experts_before_capacity[l]);
  }
  w.commit();
}

}  // namespace moetb
