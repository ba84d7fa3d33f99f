// A routing trace held in NumPy buffers, seen by the metric suite as a ShardSource
// (metrics/trace.h, format v1 of docs/trace-format.md): the `import moetb` module's
// in-memory input. Arrays whose layout the metrics can read (int16/int32 expert ids,
// int32 token arrays, C-contiguous rows) are used in place; anything else (int64 ids,
// strided views) is converted once, with the ids range-checked on the way.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "metrics/trace.h"

namespace moetb::python {

namespace pyb = pybind11;

// What the Python layer (python/moetb/__init__.py) hands over: NumPy arrays or None.
struct ArrayInputs {
  std::vector<pyb::array> experts;        // [L] of [T, K_l] integer arrays
  pyb::object token_ids, positions, domain_ids;  // [T] integer arrays or None
  int64_t n_experts = 0;                  // 0 = max id + 1
  int64_t top_k = 0;                      // 0 = the largest K_l
  std::vector<std::string> domain_names;
  std::optional<std::vector<std::vector<int>>> reference_groups;
  std::vector<int> layers;                // layers that will be read (empty = all)
};

constexpr const char* kArrayLabel = "arrays";  // the "file name" in error messages

class ArraySource : public ShardSource {
 public:
  // Checks dtypes and shapes and keeps the arrays alive (call with the GIL held).
  explicit ArraySource(const ArrayInputs& in);
  const TraceMeta& meta() const override { return meta_; }
  int n_layers() const override { return static_cast<int>(view_.layers.size()); }
  std::size_t n_shards() const override { return 1; }
  ShardView shard(std::size_t /*i*/) const override { return view_; }
  bool has_token_ids() const { return has_token_ids_; }
  int64_t converted_bytes() const { return converted_bytes_; }  // 0: every array read in place

 private:
  const int32_t* token_array(const pyb::object& obj, const char* name, int64_t n_tokens, int fill);
  TraceMeta meta_;
  ShardView view_;
  std::vector<pyb::array> kept_;                 // arrays read in place
  std::vector<std::vector<int32_t>> converted_;  // copies of the others
  bool has_token_ids_ = false;
  int64_t converted_bytes_ = 0;
};

// Shared checks of the bindings ---------------------------------------------------------

// "int64", "float32", ... of a NumPy array, for messages.
std::string dtype_str(const pyb::array& a);
bool is_integer(const pyb::array& a);
// Largest value of an integer array of any layout (-1 when empty); `name` labels errors.
int64_t max_value(const pyb::array& a);
// An integer array [T, K] as int32 rows, range-checked to [-1, n_experts) (n_experts <= 0:
// to int32), with the accumulator's message naming layer, token and slot.
std::vector<int32_t> experts_as_int32(const pyb::array& a, int layer, int64_t n_experts);
// The same check on ids the metrics will read in place (write_trace checks before writing).
void check_expert_ids(const ShardView& view, int layer, int64_t n_experts);

}  // namespace moetb::python
