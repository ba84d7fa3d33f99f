// moetb._moetb: the pybind11 extension under `import moetb` (python/moetb/__init__.py
// documents and wraps it). The metric suite of docs/metrics.md (DBES names, arXiv
// 2605.18498; testbed metrics after arXiv 2604.07030 and OLMoE, arXiv 2409.02060) on
// NumPy arrays or trace files, with the same JSON documents as the CLI, as dicts.
// The GIL is released while the metrics run; errors become moetb.TraceError (a
// ValueError), ValueError or RuntimeError carrying the CLI's one-line message.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <exception>
#include <nlohmann/json.hpp>

#include "common/safe_output.h"
#include "metrics/expert_paths.h"
#include "metrics/trace_compare.h"
#include "metrics/trace_metrics.h"
#include "moetb_git_rev.h"  // generated at build time
#include "oracle/validation.h"
#include "python/convert.h"

namespace moetb::python {

void register_trace_io(pyb::module_& m);  // trace_io.cpp

namespace {

TraceMetrics run_metrics(const Source& src, const MetricsOptions& options) {
  TraceMetrics m;
  {
    pyb::gil_scoped_release nogil;
    m = compute_trace_metrics(*src.trace, options);
  }
  if (!src.has_token_ids) drop_rss(&m);
  return m;
}

pyb::object metrics(const pyb::dict& spec, const pyb::dict& options) {
  const MetricsOptions o = metrics_options(options);
  const Source src = make_source(spec, o.layers);
  return to_python(metrics_to_json(run_metrics(src, o)));
}

pyb::object paths(const pyb::dict& spec, double tau, const pyb::dict& options) {
  if (!(tau > 0 && tau <= 1)) throw std::invalid_argument("tau " + std::to_string(tau) + " is not in (0, 1]");
  const MetricsOptions o = metrics_options(options);
  const Source src = make_source(spec, o.layers);
  return to_python(expert_paths_json(run_metrics(src, o), tau));
}

// moetb compare A B (cli/cmd_compare.cpp): same tokens, saturation, paired jackknife verdicts.
pyb::object compare(const pyb::dict& spec_a, const pyb::dict& spec_b, double tol, int blocks, const pyb::dict& options) {
  if (!(tol >= 0) || !std::isfinite(tol)) throw std::invalid_argument("tol must be a non-negative number");
  if (blocks < 0 || blocks == 1 || blocks > 1024) throw std::invalid_argument("blocks must be 0 or lie in [2, 1024]");
  MetricsOptions mopt = metrics_options(options);
  mopt.jackknife_blocks = blocks;
  const Source a = make_source(spec_a, {}), b = make_source(spec_b, {});
  nlohmann::json j;
  {
    pyb::gil_scoped_release nogil;
    const TokenCheck tokens = check_same_tokens(*a.trace, *b.trace);
    CompareOptions copt;
    copt.tol = tol;
    copt.verdicts = true;
    if (tokens.labelled_a != tokens.labelled_b)
      copt.notes.push_back(std::string(tokens.labelled_a ? "B" : "A") +
                           " labels no token with a domain: its domain metrics are null");
    std::vector<std::optional<double>> saturation;
    const std::string skip = saturation_skip_reason(*a.trace, *b.trace);
    if (skip.empty())
      saturation = router_saturation(*a.trace, *b.trace);
    else
      copt.notes.push_back(skip);
    TraceMetrics ma = compute_trace_metrics(*a.trace, mopt);
    TraceMetrics mb = compute_trace_metrics(*b.trace, mopt);
    if (!a.has_token_ids) drop_rss(&ma);
    if (!b.has_token_ids) drop_rss(&mb);
    j = compare_json(ma, mb, saturation, copt);
  }
  return to_python(j);
}

pyb::object validate(const std::vector<std::string>& only) {
  std::vector<ValidationCheck> checks;
  {
    pyb::gil_scoped_release nogil;
    checks = run_validation(only);
  }
  nlohmann::json j = validation_json(checks);
  j["git_revision"] = MOETB_GIT_REV;
  j["table"] = validation_table(checks);
  return to_python(j);
}

pyb::list scenarios() {
  pyb::list out;
  for (const auto& s : validation_scenarios()) {
    pyb::dict d;
    d["name"] = s.name;
    d["description"] = s.description;
    out.append(d);
  }
  return out;
}

// The bytes the metrics would convert rather than read in place (0 = zero-copy); for tests.
int64_t converted_bytes(const pyb::dict& spec, const pyb::dict& options) {
  return make_source(spec, metrics_options(options).layers).converted_bytes;
}

}  // namespace
}  // namespace moetb::python

PYBIND11_MODULE(_moetb, m) {
  namespace mp = moetb::python;
  namespace pyb = pybind11;
  m.doc() = "moetb's metric suite (C++), wrapped by the moetb package: use moetb.metrics etc.";
  m.attr("git_revision") = MOETB_GIT_REV;
  static pyb::exception<moetb::TraceError> trace_error(m, "TraceError", PyExc_ValueError);
  // Most recently registered runs first; pybind11's own exceptions pass through.
  pyb::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const pyb::builtin_exception&) {
      throw;
    } catch (const pyb::error_already_set&) {
      throw;
    } catch (const moetb::TraceError& e) {
      PyErr_SetString(trace_error.ptr(), e.what());
    } catch (const moetb::OutputError& e) {  // an output the rules refuse (exists, is an input, ...)
      PyErr_SetString(PyExc_ValueError, moetb::TraceError::one_line(e.what()).c_str());
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, moetb::TraceError::one_line(e.what()).c_str());
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError, "out of memory");
    } catch (const std::exception& e) {
      PyErr_SetString(PyExc_RuntimeError, moetb::TraceError::one_line(e.what()).c_str());
    }
  });
  m.def("metrics", &mp::metrics, pyb::arg("spec"), pyb::arg("options"));
  m.def("paths", &mp::paths, pyb::arg("spec"), pyb::arg("tau"), pyb::arg("options"));
  m.def("compare", &mp::compare, pyb::arg("a"), pyb::arg("b"), pyb::arg("tol"), pyb::arg("blocks"),
        pyb::arg("options"));
  m.def("validate", &mp::validate, pyb::arg("only"));
  m.def("scenarios", &mp::scenarios);
  m.def("converted_bytes", &mp::converted_bytes, pyb::arg("spec"), pyb::arg("options"));
  mp::register_trace_io(m);
}
