// ArraySource and the array checks of the `import moetb` bindings (array_source.h).
// Expert ids follow trace format v1 (docs/trace-format.md): -1 marks an empty slot, every
// other id lies in [0, E) and appears at most once per token; the messages are the ones
// LayerAccumulator gives for a trace file, with "arrays" in place of the file name.
#include "python/array_source.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>
#include <type_traits>

namespace moetb::python {
namespace {

[[noreturn]] void fail(const std::string& what) { throw TraceError(std::string(kArrayLabel) + ": " + what); }

std::string shape_str(const pyb::array& a) {
  std::string s = "(";
  for (pyb::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

bool native_order(const pyb::array& a) { return a.dtype().byteorder() != '>'; }

// Calls f(T{}) with T the array's integer element type.
template <typename F>
void with_int_type(const pyb::array& a, const std::string& name, F&& f) {
  if (!is_integer(a)) fail(name + ": dtype " + dtype_str(a) + " is not an integer type (int16, int32 or int64)");
  if (!native_order(a)) fail(name + ": byte order is not the machine's (use arr.astype(arr.dtype.newbyteorder('=')))");
  const bool is_signed = a.dtype().kind() == 'i';
  switch (a.itemsize()) {
    case 1: return is_signed ? f(int8_t{}) : f(uint8_t{});
    case 2: return is_signed ? f(int16_t{}) : f(uint16_t{});
    case 4: return is_signed ? f(int32_t{}) : f(uint32_t{});
    case 8: return is_signed ? f(int64_t{}) : f(uint64_t{});
    default: fail(name + ": dtype " + dtype_str(a) + " is not supported");
  }
}

template <typename T>
int64_t read_at(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::is_same_v<T, uint64_t>)
    return v > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(v);
  else
    return static_cast<int64_t>(v);
}

// True when the [rows, cols] array is C-contiguous rows of `itemsize` bytes, aligned.
bool dense_rows(const pyb::array& a, pyb::ssize_t itemsize) {
  if (!native_order(a) || reinterpret_cast<uintptr_t>(a.data()) % static_cast<uintptr_t>(itemsize) != 0) return false;
  if (a.ndim() == 1) return a.shape(0) <= 1 || a.strides(0) == itemsize;
  return (a.shape(1) <= 1 || a.strides(1) == itemsize) && (a.shape(0) <= 1 || a.strides(0) == a.shape(1) * itemsize);
}

std::string expert_error(int layer, int64_t value, int64_t token, int64_t slot, int64_t n_experts) {
  return std::string(kArrayLabel) + ": layers." + std::to_string(layer) + ".experts: expert id " + std::to_string(value) +
         " at token " + std::to_string(token) + " slot " + std::to_string(slot) + " is outside [-1, " +
         std::to_string(n_experts > 0 ? n_experts : int64_t{INT32_MAX}) + ")";
}

}  // namespace

std::string dtype_str(const pyb::array& a) { return pyb::str(a.dtype()).cast<std::string>(); }

bool is_integer(const pyb::array& a) {
  const char kind = a.dtype().kind();
  return kind == 'i' || kind == 'u';
}

int64_t max_value(const pyb::array& a) {
  int64_t best = -1;
  with_int_type(a, "experts", [&](auto tag) {
    using T = decltype(tag);
    const auto* base = static_cast<const char*>(a.data());
    const pyb::ssize_t rows = a.ndim() > 0 ? a.shape(0) : 1, cols = a.ndim() > 1 ? a.shape(1) : 1;
    const pyb::ssize_t s0 = a.ndim() > 0 ? a.strides(0) : 0, s1 = a.ndim() > 1 ? a.strides(1) : 0;
    if (dense_rows(a, a.itemsize())) {  // the common case: one tight loop the compiler vectorises
      const T* p = static_cast<const T*>(a.data());
      const int64_t n = static_cast<int64_t>(rows) * cols;
      T m = n > 0 ? p[0] : T{};
      for (int64_t i = 0; i < n; ++i) m = std::max(m, p[i]);
      if (n > 0) best = std::max<int64_t>(best, read_at<T>(reinterpret_cast<const char*>(&m)));
      return;
    }
    for (pyb::ssize_t i = 0; i < rows; ++i)
      for (pyb::ssize_t j = 0; j < cols; ++j) best = std::max(best, read_at<T>(base + i * s0 + j * s1));
  });
  return best;
}

std::vector<int32_t> experts_as_int32(const pyb::array& a, int layer, int64_t n_experts) {
  const int64_t rows = a.shape(0), cols = a.shape(1);
  std::vector<int32_t> out(static_cast<std::size_t>(rows * cols));
  const int64_t hi = n_experts > 0 ? n_experts : int64_t{INT32_MAX};
  with_int_type(a, "layers." + std::to_string(layer) + ".experts", [&](auto tag) {
    using T = decltype(tag);
    const auto* base = static_cast<const char*>(a.data());
    const int64_t s0 = a.strides(0), s1 = a.strides(1);
    const bool dense = dense_rows(a, static_cast<pyb::ssize_t>(sizeof(T)));
    pyb::gil_scoped_release nogil;  // plain memory from here on
    auto first_bad = [&] {  // the accumulator's message for the first id out of range
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
          const int64_t v = read_at<T>(base + i * s0 + j * s1);
          if (v < -1 || v >= hi) throw TraceError(expert_error(layer, v, i, j, n_experts));
        }
    };
    if (dense) {  // one branch-free loop the compiler vectorises (int64 from torch.topk lands here)
      const T* p = reinterpret_cast<const T*>(base);
      bool bad = false;
      for (std::size_t i = 0; i < out.size(); ++i) {
        const auto v = static_cast<int64_t>(p[i]);
        bad |= (v < -1) | (v >= hi);
        out[i] = static_cast<int32_t>(v);
      }
      if (bad) first_bad();
      return;
    }
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t v = read_at<T>(base + i * s0 + j * s1);
        if (v < -1 || v >= hi) first_bad();
        out[static_cast<std::size_t>(i * cols + j)] = static_cast<int32_t>(v);
      }
  });
  return out;
}

void check_expert_ids(const ShardView& view, int layer, int64_t n_experts) {
  const LayerView& lv = view.layers.at(static_cast<std::size_t>(layer));
  std::vector<int64_t> seen(static_cast<std::size_t>(n_experts), -1);
  for (int64_t t = 0; t < view.n_tokens; ++t)
    for (int64_t s = 0; s < lv.k; ++s) {
      const int32_t e = lv.expert(t, s);
      if (e == -1) continue;
      if (e < -1 || e >= n_experts) throw TraceError(expert_error(layer, e, t, s, n_experts));
      if (seen[static_cast<std::size_t>(e)] == t)
        fail("layers." + std::to_string(layer) + ".experts: expert " + std::to_string(e) + " is listed twice for token " +
             std::to_string(t));
      seen[static_cast<std::size_t>(e)] = t;
    }
}

const int32_t* ArraySource::token_array(const pyb::object& obj, const char* name, int64_t n_tokens, int fill) {
  if (obj.is_none()) {  // absent: the constant `fill` (token id 0, domain -1), or 0, 1, 2, ... (fill < -1)
    std::vector<int32_t> v(static_cast<std::size_t>(n_tokens), fill);
    if (fill < -1)
      for (int64_t t = 0; t < n_tokens; ++t) v[static_cast<std::size_t>(t)] = static_cast<int32_t>(t);
    converted_.push_back(std::move(v));
    return converted_.back().data();
  }
  const auto a = pyb::reinterpret_borrow<pyb::array>(obj);
  if (a.ndim() != 1 || a.shape(0) != n_tokens)
    fail(std::string(name) + ": shape " + shape_str(a) + " is not [T] with T = " + std::to_string(n_tokens) +
         " (the tokens of experts)");
  if (is_integer(a) && a.dtype().kind() == 'i' && a.itemsize() == 4 && dense_rows(a, 4)) {
    kept_.push_back(a);
    return static_cast<const int32_t*>(a.data());
  }
  std::vector<int32_t> v(static_cast<std::size_t>(n_tokens));
  with_int_type(a, name, [&](auto tag) {
    using T = decltype(tag);
    const auto* base = static_cast<const char*>(a.data());
    for (int64_t t = 0; t < n_tokens; ++t) {
      const int64_t x = read_at<T>(base + t * a.strides(0));
      if (x < INT32_MIN || x > INT32_MAX)
        fail(std::string(name) + ": value " + std::to_string(x) + " at token " + std::to_string(t) + " does not fit int32");
      v[static_cast<std::size_t>(t)] = static_cast<int32_t>(x);
    }
  });
  converted_bytes_ += n_tokens * 4;
  converted_.push_back(std::move(v));
  return converted_.back().data();
}

ArraySource::ArraySource(const ArrayInputs& in) {
  if (in.experts.empty()) fail("experts: no layer given (a trace needs at least one layer)");
  converted_.reserve(in.experts.size() + 3);  // pointers into the vectors stay valid
  const int n_layers = static_cast<int>(in.experts.size());
  for (int l = 0; l < n_layers; ++l) {
    const pyb::array& a = in.experts[static_cast<std::size_t>(l)];
    const std::string name = "layers." + std::to_string(l) + ".experts";
    if (a.ndim() != 2) fail(name + ": shape " + shape_str(a) + " is not [T, K]");
    if (!is_integer(a)) fail(name + ": dtype " + dtype_str(a) + " is not an integer type (int16, int32 or int64)");
    if (a.shape(0) != in.experts[0].shape(0))
      fail(name + ": shape " + shape_str(a) + " disagrees with layers.0.experts on T = " +
           std::to_string(in.experts[0].shape(0)));
    if (a.shape(1) > kMaxExperts)
      fail(name + ": K = " + std::to_string(a.shape(1)) + " slots exceed moetb's limit of " + std::to_string(kMaxExperts));
  }
  const int64_t n_tokens = in.experts[0].shape(0);
  if (n_tokens > INT32_MAX) fail("experts: " + std::to_string(n_tokens) + " tokens exceed 2^31 - 1");

  meta_.num_experts = in.n_experts;
  if (meta_.num_experts == 0) {  // inferred: the largest id + 1
    int64_t m = -1;
    for (const auto& a : in.experts) m = std::max(m, max_value(a));
    meta_.num_experts = std::max<int64_t>(1, m + 1);
    if (meta_.num_experts > kMaxExperts)
      fail("experts: the largest expert id is " + std::to_string(m) + ", beyond moetb's limit of " +
           std::to_string(kMaxExperts) + " experts");
  } else if (meta_.num_experts < 1 || meta_.num_experts > kMaxExperts) {
    fail("n_experts = " + std::to_string(meta_.num_experts) + " is outside [1, " + std::to_string(kMaxExperts) + "]");
  }
  if (in.top_k < 0) fail("top_k = " + std::to_string(in.top_k) + " must be positive");
  meta_.top_k = in.top_k;  // nominal k; by default the largest K of the layers
  for (const auto& a : in.experts)
    if (in.top_k == 0) meta_.top_k = std::max<int64_t>(meta_.top_k, a.shape(1));
  meta_.top_k = std::max<int64_t>(meta_.top_k, 1);
  meta_.domain_names = in.domain_names;
  meta_.reference_groups = in.reference_groups;
  meta_.source = "python";

  view_.label = kArrayLabel;
  view_.n_tokens = n_tokens;
  for (int l = 0; l < n_layers; ++l) {
    const pyb::array& a = in.experts[static_cast<std::size_t>(l)];
    LayerView lv;
    lv.k = a.shape(1);
    const bool needed = in.layers.empty() || std::find(in.layers.begin(), in.layers.end(), l) != in.layers.end();
    if (needed && a.dtype().kind() == 'i' && a.itemsize() == 2 && dense_rows(a, 2)) {
      lv.experts_i16 = static_cast<const int16_t*>(a.data());
      kept_.push_back(a);
    } else if (needed && a.dtype().kind() == 'i' && a.itemsize() == 4 && dense_rows(a, 4)) {
      lv.experts_i32 = static_cast<const int32_t*>(a.data());
      kept_.push_back(a);
    } else if (needed) {
      converted_.push_back(experts_as_int32(a, l, meta_.num_experts));
      converted_bytes_ += static_cast<int64_t>(converted_.back().size()) * 4;
      lv.experts_i32 = converted_.back().data();
    }
    view_.layers.push_back(lv);
  }
  has_token_ids_ = !in.token_ids.is_none();
  view_.token_ids = token_array(in.token_ids, "token_ids", n_tokens, 0);
  view_.positions = token_array(in.positions, "positions", n_tokens, -2);  // one sequence
  view_.domain_ids = token_array(in.domain_ids, "domain_ids", n_tokens, -1);
}

}  // namespace moetb::python
