// Trace files and the planted simulator from Python: read_trace (shards concatenated
// into NumPy arrays), write_trace (one shard of routing trace format v1, written
// atomically after every id is checked) and simulate (docs/validation.md; to memory or
// to disk as `moetb simulate` writes it). Format: docs/trace-format.md.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "oracle/planted_simulator.h"
#include "python/convert.h"

namespace moetb::python {
namespace {

// Element i of a probs tensor (F32, F16 or BF16), as LayerView::weight reads the weights.
float to_float(const void* data, DType dtype, int64_t i) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint16_t h;
  switch (dtype) {
    case DType::kF32: {
      float f;
      std::memcpy(&f, p + 4 * i, 4);
      return f;
    }
    case DType::kF16: std::memcpy(&h, p + 2 * i, 2); return f16_to_float(h);
    default: std::memcpy(&h, p + 2 * i, 2); return bf16_to_float(h);
  }
}

// The trace's arrays, metadata and layout as the dict metrics() and write_trace() accept.
pyb::dict trace_dict(const TraceMeta& meta, pyb::array token_ids, pyb::array positions, pyb::array domain_ids,
                     pyb::list experts, pyb::object weights, pyb::object probs) {
  pyb::dict d;
  d["experts"] = experts;
  d["token_ids"] = token_ids;
  d["positions"] = positions;
  d["domain_ids"] = domain_ids;
  d["weights"] = weights;
  d["probs"] = probs;
  d["n_experts"] = meta.num_experts;
  d["top_k"] = meta.top_k;
  d["domain_names"] = meta.domain_names.empty() ? pyb::object(pyb::none()) : pyb::cast(meta.domain_names);
  d["reference_groups"] = meta.reference_groups ? pyb::cast(*meta.reference_groups) : pyb::object(pyb::none());
  d["model"] = meta.model;
  d["source"] = meta.source;
  d["metadata"] = pyb::cast(meta.raw);
  return d;
}

pyb::dict read_trace(const std::vector<std::string>& paths, bool with_probs) {
  const Trace trace(paths);
  const int64_t t_all = trace.n_tokens();
  const int n_layers = trace.n_layers();
  const int64_t n_e = trace.meta().num_experts;
  std::vector<int32_t> tok(static_cast<std::size_t>(t_all)), pos(tok.size()), dom(tok.size());
  std::vector<int64_t> k(static_cast<std::size_t>(n_layers));
  std::vector<bool> i16(k.size(), true), has_w(k.size(), true), has_p(k.size(), with_probs);
  for (std::size_t s = 0; s < trace.n_shards(); ++s) {
    const ShardView v = trace.shard(s);
    for (int l = 0; l < n_layers; ++l) {
      const LayerView& lv = v.layers[static_cast<std::size_t>(l)];
      k[static_cast<std::size_t>(l)] = lv.k;
      i16[static_cast<std::size_t>(l)] = i16[static_cast<std::size_t>(l)] && lv.experts_i16 != nullptr;
      has_w[static_cast<std::size_t>(l)] = has_w[static_cast<std::size_t>(l)] && lv.weights != nullptr;
      has_p[static_cast<std::size_t>(l)] = has_p[static_cast<std::size_t>(l)] && lv.probs != nullptr;
    }
  }
  std::vector<std::vector<int16_t>> e16(k.size());
  std::vector<std::vector<int32_t>> e32(k.size());
  std::vector<std::vector<float>> w(k.size()), pr(k.size());
  for (std::size_t l = 0; l < k.size(); ++l) {
    const auto n = static_cast<std::size_t>(t_all * k[l]);
    if (i16[l]) e16[l].resize(n); else e32[l].resize(n);
    if (has_w[l]) w[l].resize(n);
    if (has_p[l]) pr[l].resize(static_cast<std::size_t>(t_all * n_e));
  }
  int64_t at = 0;
  for (std::size_t s = 0; s < trace.n_shards(); ++s) {
    const ShardView v = trace.shard(s);
    const auto n = static_cast<std::size_t>(v.n_tokens);
    std::memcpy(tok.data() + at, v.token_ids, n * 4);
    std::memcpy(pos.data() + at, v.positions, n * 4);
    std::memcpy(dom.data() + at, v.domain_ids, n * 4);
    for (std::size_t l = 0; l < k.size(); ++l) {
      const LayerView& lv = v.layers[l];
      const int64_t cells = v.n_tokens * lv.k;
      if (i16[l]) std::memcpy(e16[l].data() + at * lv.k, lv.experts_i16, static_cast<std::size_t>(cells) * 2);
      else
        for (int64_t i = 0; i < cells; ++i) e32[l][static_cast<std::size_t>(at * lv.k + i)] = lv.expert(i / lv.k, i % lv.k);
      if (has_w[l])
        for (int64_t t = 0; t < v.n_tokens; ++t)
          for (int64_t j = 0; j < lv.k; ++j) w[l][static_cast<std::size_t>((at + t) * lv.k + j)] = lv.weight(t, j);
      if (has_p[l])
        for (int64_t i = 0; i < v.n_tokens * n_e; ++i)
          pr[l][static_cast<std::size_t>(at * n_e + i)] = to_float(lv.probs, lv.probs_dtype, i);
    }
    trace.release(s);
    at += v.n_tokens;
  }
  pyb::list experts, weights, probs;
  bool any_w = false, any_p = false;
  for (std::size_t l = 0; l < k.size(); ++l) {
    experts.append(i16[l] ? owned_array(std::move(e16[l]), t_all, k[l]) : owned_array(std::move(e32[l]), t_all, k[l]));
    weights.append(has_w[l] ? pyb::object(owned_array(std::move(w[l]), t_all, k[l])) : pyb::object(pyb::none()));
    probs.append(has_p[l] ? pyb::object(owned_array(std::move(pr[l]), t_all, n_e)) : pyb::object(pyb::none()));
    any_w = any_w || has_w[l];
    any_p = any_p || has_p[l];
  }
  return trace_dict(trace.meta(), owned_array(std::move(tok), t_all), owned_array(std::move(pos), t_all),
                    owned_array(std::move(dom), t_all), experts, any_w ? pyb::object(weights) : pyb::none(),
                    any_p ? pyb::object(probs) : pyb::none());
}

DType float_dtype(const std::string& name, const char* what) {
  const DType d = dtype_from_name(name);
  if (d != DType::kF32 && d != DType::kF16 && d != DType::kBF16)
    throw std::invalid_argument(std::string(what) + ": '" + name + "' is not one of F32, F16, BF16");
  return d;
}

// Writes a float array [rows, cols] (any float dtype) as `dtype`, in chunks.
void write_floats(SafetensorsWriter& w, const pyb::object& obj, DType dtype, int64_t rows, int64_t cols,
                  const std::string& name) {
  const auto src = pyb::reinterpret_borrow<pyb::array>(obj);
  if (src.dtype().kind() != 'f')
    throw TraceError(std::string(kArrayLabel) + ": " + name + ": dtype " + dtype_str(src) + " is not a float type");
  if (src.ndim() != 2 || src.shape(0) != rows || src.shape(1) != cols)
    throw TraceError(std::string(kArrayLabel) + ": " + name + ": shape is not [" + std::to_string(rows) + ", " +
                     std::to_string(cols) + "]");
  const auto a = pyb::array_t<float, pyb::array::c_style | pyb::array::forcecast>::ensure(obj);
  const float* p = a.data();
  const int64_t n = rows * cols, chunk = 1 << 16;
  std::vector<uint16_t> half;
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t m = std::min(chunk, n - begin);
    if (dtype == DType::kF32) {
      w.write(p + begin, static_cast<std::size_t>(m) * 4);
      continue;
    }
    half.resize(static_cast<std::size_t>(m));
    for (int64_t i = 0; i < m; ++i)
      half[static_cast<std::size_t>(i)] = dtype == DType::kF16 ? float_to_f16(p[begin + i]) : float_to_bf16(p[begin + i]);
    w.write(half.data(), static_cast<std::size_t>(m) * 2);
  }
}

void write_trace(const std::string& path, const pyb::dict& spec, const std::string& experts_dtype,
                 const std::string& weights_dtype, const std::string& probs_dtype,
                 const std::map<std::string, std::string>& extra) {
  ArrayInputs in = array_inputs(spec, {});
  const ArraySource src(in);
  const ShardView v = src.shard(0);
  TraceMeta meta = src.meta();
  if (spec.contains("model") && !spec["model"].is_none()) meta.model = spec["model"].cast<std::string>();
  if (spec.contains("source") && !spec["source"].is_none()) meta.source = spec["source"].cast<std::string>();
  if (meta.reference_groups) check_reference_groups(*meta.reference_groups, meta.num_experts);
  for (int l = 0; l < src.n_layers(); ++l) check_expert_ids(v, l, meta.num_experts);
  check_domain_ids(v);
  (void)src.domain_list(-1);  // names: an unnamed id must not collide with a name

  TraceShardLayout layout;
  layout.n_tokens = v.n_tokens;
  layout.num_experts = meta.num_experts;
  for (const LayerView& lv : v.layers) layout.k.push_back(lv.k);
  layout.experts_dtype = experts_dtype.empty() ? (meta.num_experts <= 32767 ? DType::kI16 : DType::kI32)
                                               : dtype_from_name(experts_dtype);
  if (layout.experts_dtype != DType::kI16 && layout.experts_dtype != DType::kI32)
    throw std::invalid_argument("expert_dtype: '" + experts_dtype + "' is not one of I16, I32");
  if (layout.experts_dtype == DType::kI16 && meta.num_experts > 32767)
    throw std::invalid_argument("n_experts = " + std::to_string(meta.num_experts) + " do not fit I16 ids: use I32");
  const pyb::object weights = spec.contains("weights") ? pyb::object(spec["weights"]) : pyb::object(pyb::none());
  const pyb::object probs = spec.contains("probs") ? pyb::object(spec["probs"]) : pyb::object(pyb::none());
  if (!weights.is_none()) layout.weights_dtype = float_dtype(weights_dtype, "weights_dtype");
  if (!probs.is_none()) layout.probs_dtype = float_dtype(probs_dtype, "probs_dtype");
  const std::size_t n_layers = layout.k.size();
  for (const auto* list : {&weights, &probs})
    if (!list->is_none() && pyb::len(*list) != n_layers)
      throw std::invalid_argument(std::string(list == &weights ? "weights" : "probs") + ": " +
                                  std::to_string(pyb::len(*list)) + " arrays for " + std::to_string(n_layers) + " layers");

  SafetensorsWriter w(path, trace_tensor_specs(layout), make_trace_metadata(meta, extra));
  const auto n = static_cast<std::size_t>(v.n_tokens);
  w.write(v.token_ids, n * 4);
  w.write(v.positions, n * 4);
  w.write(v.domain_ids, n * 4);
  std::vector<int16_t> narrow;
  std::vector<int32_t> wide;
  for (std::size_t l = 0; l < n_layers; ++l) {
    const LayerView& lv = v.layers[l];
    const auto cells = static_cast<std::size_t>(v.n_tokens * lv.k);
    if (layout.experts_dtype == DType::kI16 && lv.experts_i16 != nullptr) {
      w.write(lv.experts_i16, cells * 2);
    } else if (layout.experts_dtype == DType::kI32 && lv.experts_i32 != nullptr) {
      w.write(lv.experts_i32, cells * 4);
    } else if (layout.experts_dtype == DType::kI16) {
      narrow.resize(cells);
      for (std::size_t i = 0; i < cells; ++i) narrow[i] = static_cast<int16_t>(lv.experts_i32[i]);
      w.write(narrow.data(), cells * 2);
    } else {
      wide.assign(lv.experts_i16, lv.experts_i16 + cells);
      w.write(wide.data(), cells * 4);
    }
    const std::string base = "layers." + std::to_string(l);
    if (!weights.is_none())
      write_floats(w, weights[pyb::int_(l)], layout.weights_dtype, v.n_tokens, lv.k, base + ".weights");
    if (!probs.is_none())
      write_floats(w, probs[pyb::int_(l)], layout.probs_dtype, v.n_tokens, meta.num_experts, base + ".probs");
  }
  w.commit();
}

pyb::object simulate(const SimConfig& cfg, const std::string& out, int64_t shard_tokens, const std::string& experts_dtype,
                     const std::string& weights_dtype, const std::string& probs_dtype, bool force) {
  if (!out.empty()) {
    SimOutput o;
    o.path = out;
    o.shard_tokens = shard_tokens;
    o.force = force;
    o.experts_dtype = dtype_from_name(experts_dtype);
    if (o.experts_dtype != DType::kI16 && o.experts_dtype != DType::kI32)
      throw std::invalid_argument("expert_dtype: '" + experts_dtype + "' is not one of I16, I32");
    if (!weights_dtype.empty()) o.weights_dtype = float_dtype(weights_dtype, "weights");
    if (!probs_dtype.empty()) o.probs_dtype = float_dtype(probs_dtype, "probs");
    {
      pyb::gil_scoped_release nogil;
      simulate_to_disk(cfg, o);
    }
    return pyb::str(out);
  }
  TraceData t;
  {
    pyb::gil_scoped_release nogil;
    t = simulate_trace(cfg);
  }
  const auto n = static_cast<int64_t>(t.token_ids.size());
  pyb::list experts;
  for (std::size_t l = 0; l < t.experts.size(); ++l) experts.append(owned_array(std::move(t.experts[l]), n, t.k[l]));
  t.meta_data.raw = make_trace_metadata(t.meta_data);
  return trace_dict(t.meta_data, owned_array(std::move(t.token_ids), n), owned_array(std::move(t.positions), n),
                    owned_array(std::move(t.domain_ids), n), experts, pyb::none(), pyb::none());
}

}  // namespace

void register_trace_io(pyb::module_& m) {
  m.def("read_trace", &read_trace, pyb::arg("paths"), pyb::arg("probs"));
  m.def("write_trace", &write_trace, pyb::arg("path"), pyb::arg("spec"), pyb::arg("experts_dtype"),
        pyb::arg("weights_dtype"), pyb::arg("probs_dtype"), pyb::arg("metadata"));
  pyb::class_<SimConfig>(m, "SimConfig")
      .def(pyb::init<>())
      .def_readwrite("n_experts", &SimConfig::n_experts)
      .def_readwrite("top_k", &SimConfig::top_k)
      .def_readwrite("n_domains", &SimConfig::n_domains)
      .def_readwrite("domain_shares", &SimConfig::domain_shares)
      .def_readwrite("domain_names", &SimConfig::domain_names)
      .def_readwrite("n_layers", &SimConfig::n_layers)
      .def_readwrite("alpha", &SimConfig::alpha)
      .def_readwrite("load_profile", &SimConfig::load_profile)
      .def_readwrite("zipf_s", &SimConfig::zipf_s)
      .def_readwrite("beta", &SimConfig::beta)
      .def_readwrite("gamma", &SimConfig::gamma)
      .def_readwrite("overlap", &SimConfig::overlap)
      .def_readwrite("vocab_per_domain", &SimConfig::vocab_per_domain)
      .def_readwrite("unlabeled", &SimConfig::unlabeled)
      .def_readwrite("seq_len", &SimConfig::seq_len)
      .def_readwrite("n_tokens", &SimConfig::n_tokens)
      .def_readwrite("seed", &SimConfig::seed);
  m.def("simulate", &simulate, pyb::arg("config"), pyb::arg("out"), pyb::arg("shard_tokens"),
        pyb::arg("experts_dtype"), pyb::arg("weights_dtype"), pyb::arg("probs_dtype"), pyb::arg("force"));
}

}  // namespace moetb::python
