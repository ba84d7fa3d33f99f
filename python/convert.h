// Conversions between the metric suite's C++ values and Python objects for the
// `import moetb` module: JSON documents (moetb-metrics/1 and the others, metrics.md)
// as dicts and lists, buffers handed to NumPy without a copy, and the input dicts
// the Python layer builds (python/moetb/__init__.py) turned into trace sources.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "metrics/trace_metrics.h"
#include "python/array_source.h"

namespace moetb::python {

// null -> None, numbers -> int / float, arrays -> list, objects -> dict (key order kept).
pyb::object to_python(const nlohmann::json& j);

// A vector handed to NumPy as a [rows, cols] (cols < 0: [rows]) array that owns it.
template <typename T>
pyb::array owned_array(std::vector<T>&& data, int64_t rows, int64_t cols = -1) {
  auto* v = new std::vector<T>(std::move(data));
  pyb::capsule owner(v, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  if (cols < 0) return pyb::array_t<T>({static_cast<pyb::ssize_t>(rows)}, v->data(), owner);
  return pyb::array_t<T>({static_cast<pyb::ssize_t>(rows), static_cast<pyb::ssize_t>(cols)}, v->data(), owner);
}

// A trace source from the dict the Python layer passes: {"paths": [str, ...]} for files,
// or {"experts": [arrays], "token_ids", "positions", "domain_ids", "n_experts", "top_k",
// "domain_names", "reference_groups"} for arrays (read in place where possible).
struct Source {
  std::unique_ptr<ShardSource> trace;
  bool has_token_ids = true;  // false: token ids were not given, RSS is reported as null
  int64_t converted_bytes = 0;
};
Source make_source(const pyb::dict& spec, const std::vector<int>& layers);
ArrayInputs array_inputs(const pyb::dict& spec, const std::vector<int>& layers);

// Options shared by metrics, paths and compare: {"layers", "threads", "groups", "reference_groups"}.
MetricsOptions metrics_options(const pyb::dict& options);
// Without token ids RSS measures nothing: null in every layer and replicate.
void drop_rss(TraceMetrics* m);

}  // namespace moetb::python
