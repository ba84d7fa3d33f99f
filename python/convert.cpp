// JSON to Python, input dicts to trace sources, and metric options (convert.h), for the
// `import moetb` module; the metric definitions they feed are those of docs/metrics.md
// (names after DBES, arXiv 2605.18498).
#include "python/convert.h"

#include <pybind11/stl.h>

#include <string>

namespace moetb::python {

pyb::object to_python(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return pyb::none();
    case nlohmann::json::value_t::boolean: return pyb::bool_(j.get<bool>());
    case nlohmann::json::value_t::number_integer: return pyb::int_(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: return pyb::int_(j.get<uint64_t>());
    case nlohmann::json::value_t::number_float: return pyb::float_(j.get<double>());
    case nlohmann::json::value_t::string: return pyb::str(j.get_ref<const std::string&>());
    case nlohmann::json::value_t::array: {
      pyb::list out;
      for (const auto& x : j) out.append(to_python(x));
      return std::move(out);
    }
    case nlohmann::json::value_t::object: {
      pyb::dict out;
      for (auto it = j.begin(); it != j.end(); ++it) out[pyb::str(it.key())] = to_python(it.value());
      return std::move(out);
    }
    default: return pyb::none();
  }
}

namespace {

pyb::object get(const pyb::dict& d, const char* key) {
  return d.contains(key) ? pyb::reinterpret_borrow<pyb::object>(d[key]) : pyb::none();
}

std::optional<std::vector<std::vector<int>>> groups_of(const pyb::object& obj) {
  if (obj.is_none()) return std::nullopt;
  try {
    return obj.cast<std::vector<std::vector<int>>>();
  } catch (const pyb::cast_error&) {
    throw std::invalid_argument("reference_groups: not a list of lists of expert ids");
  }
}

}  // namespace

ArrayInputs array_inputs(const pyb::dict& spec, const std::vector<int>& layers) {
  ArrayInputs in;
  for (const auto& a : spec["experts"].cast<pyb::list>()) in.experts.push_back(pyb::reinterpret_borrow<pyb::array>(a));
  in.token_ids = get(spec, "token_ids");
  in.positions = get(spec, "positions");
  in.domain_ids = get(spec, "domain_ids");
  const pyb::object n_experts = get(spec, "n_experts"), top_k = get(spec, "top_k"), names = get(spec, "domain_names");
  if (!n_experts.is_none()) {
    in.n_experts = n_experts.cast<int64_t>();
    if (in.n_experts <= 0) throw std::invalid_argument("n_experts = " + std::to_string(in.n_experts) + " must be positive");
  }
  if (!top_k.is_none()) {
    in.top_k = top_k.cast<int64_t>();
    if (in.top_k <= 0) throw std::invalid_argument("top_k = " + std::to_string(in.top_k) + " must be positive");
  }
  if (!names.is_none()) in.domain_names = names.cast<std::vector<std::string>>();
  in.reference_groups = groups_of(get(spec, "reference_groups"));
  in.layers = layers;
  return in;
}

Source make_source(const pyb::dict& spec, const std::vector<int>& layers) {
  Source out;
  if (spec.contains("paths")) {
    out.trace = std::make_unique<Trace>(spec["paths"].cast<std::vector<std::string>>());
    return out;
  }
  auto arrays = std::make_unique<ArraySource>(array_inputs(spec, layers));
  out.has_token_ids = arrays->has_token_ids();
  out.converted_bytes = arrays->converted_bytes();
  out.trace = std::move(arrays);
  return out;
}

MetricsOptions metrics_options(const pyb::dict& options) {
  MetricsOptions o;
  if (const pyb::object v = get(options, "layers"); !v.is_none()) {
    o.layers = v.cast<std::vector<int>>();
    if (o.layers.empty()) throw std::invalid_argument("layers: no layer given");
  }
  if (const pyb::object v = get(options, "threads"); !v.is_none()) {
    o.threads = v.cast<int>();
    if (o.threads < 0) throw std::invalid_argument("threads must be 0 (all cores) or positive");
  }
  if (const pyb::object v = get(options, "groups"); !v.is_none()) o.ne_groups = v.cast<int>();
  o.reference_groups = groups_of(get(options, "reference_groups"));
  return o;
}

void drop_rss(TraceMetrics* m) {
  for (LayerMetrics& lm : m->layers) {
    lm.rss.reset();
    for (LayerMetrics& r : lm.replicates) r.rss.reset();
  }
}

}  // namespace moetb::python
