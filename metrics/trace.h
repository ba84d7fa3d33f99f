// Routing trace format v1 (../shared/spec/trace-format.md): the one hand-off between
// what produces routing and what measures it. A trace is one or more safetensors
// shards concatenated along the token axis. ShardView is the read-only, typed view
// the metrics consume; Trace opens files (memory-mapped, checked), TraceData holds
// a trace in memory (the simulator and the tests build these).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "metrics/safetensors.h"

namespace moetb {

constexpr const char* kTraceFormat = "moe-routing-trace/1";
// Limits that keep per-layer state bounded on hostile input (found by fuzzing: a domain
// id of 65535 made the D x D di_pairs matrix 64 GB). Real models and benchmarks sit far below.
constexpr int kMaxDomainId = 1023;       // at most 1024 domains; larger ids are rejected
constexpr int64_t kMaxExperts = 65536;   // num_experts above this is rejected

struct TraceMeta {
  int64_t num_experts = 0;
  int64_t top_k = 0;
  std::vector<std::string> domain_names;                          // may be empty
  std::optional<std::vector<std::vector<int>>> reference_groups;  // domain id -> expert ids
  std::string model, source;
  std::map<std::string, std::string> raw;  // every metadata key as written
};

// One layer of one shard. Exactly one of experts_i16 / experts_i32 is set.
struct LayerView {
  int64_t k = 0;                          // slots per token
  const int16_t* experts_i16 = nullptr;   // [n_tokens, k]
  const int32_t* experts_i32 = nullptr;   // [n_tokens, k]
  const void* weights = nullptr;          // [n_tokens, k], optional
  DType weights_dtype = DType::kOther;
  const void* probs = nullptr;            // [n_tokens, num_experts], optional
  DType probs_dtype = DType::kOther;
  int32_t expert(int64_t token, int64_t slot) const {
    const int64_t i = token * k + slot;
    return experts_i16 != nullptr ? experts_i16[i] : experts_i32[i];
  }
  float weight(int64_t token, int64_t slot) const;  // requires weights
};

struct ShardView {
  std::string label;                 // file name, for errors
  int64_t first_token = 0;           // index in the file of this view's token 0 (a slice), for errors
  int64_t n_tokens = 0;
  const int32_t* token_ids = nullptr;   // [n_tokens]
  const int32_t* positions = nullptr;   // [n_tokens]
  const int32_t* domain_ids = nullptr;  // [n_tokens]
  std::vector<LayerView> layers;
};

// Expert-id contents (range, duplicates) are checked while streaming, by LayerAccumulator.
// Checks domain ids of tokens [begin, end) (end < 0: to the end) lie in [-1, kMaxDomainId].
void check_domain_ids(const ShardView& shard, int64_t begin = 0, int64_t end = -1);

// Anything the metrics can stream: a list of shards sharing one TraceMeta.
class ShardSource {
 public:
  virtual ~ShardSource() = default;
  virtual const TraceMeta& meta() const = 0;
  virtual int n_layers() const = 0;
  virtual std::size_t n_shards() const = 0;
  virtual ShardView shard(std::size_t i) const = 0;
  virtual void release(std::size_t /*i*/) const {}  // done with shard i for now
  virtual void release_layer(std::size_t /*i*/, int /*layer*/) const {}  // done with one layer of shard i
  // Done with the bytes [begin, end) of shard i for now (whole pages inside; ignored unless mapped).
  virtual void release_range(std::size_t /*i*/, const void* /*begin*/, const void* /*end*/) const {}
  int64_t n_tokens() const;
  std::vector<std::string> domain_list(int max_domain_id) const;  // names, else decimal ids
};

// Which per-layer expert tensor a Trace reads as each layer's experts: the routing
// (layers.{l}.experts, the spec's) or moetb's optional extension layers.{l}.experts_before_capacity,
// the router's choices before a capacity limit dropped some (docs/trace-format.md). Reading
// the latter leaves the weights out (they are those after the drop); a trace without it
// is a TraceError naming the file and the tensor.
enum class ExpertsTensor { kRouted, kBeforeCapacity };
constexpr const char* kBeforeCapacitySuffix = "experts_before_capacity";

// A trace on disk: a file, several files, or directories of *.safetensors (name order).
class Trace : public ShardSource {
 public:
  explicit Trace(const std::vector<std::string>& paths, ExpertsTensor which = ExpertsTensor::kRouted);
  ~Trace() override;
  const TraceMeta& meta() const override { return meta_; }
  int n_layers() const override { return n_layers_; }
  std::size_t n_shards() const override { return shards_.size(); }
  ShardView shard(std::size_t i) const override;
  void release(std::size_t i) const override;
  void release_layer(std::size_t i, int layer) const override;
  void release_range(std::size_t i, const void* begin, const void* end) const override;
  const std::vector<std::string>& files() const { return files_; }

 private:
  struct Shard;
  std::vector<std::string> files_;
  std::vector<std::unique_ptr<Shard>> shards_;
  TraceMeta meta_;
  int n_layers_ = 0;
};

// A trace held in memory (one shard), experts stored as int32.
struct TraceData : public ShardSource {
  TraceMeta meta_data;
  std::vector<int32_t> token_ids, positions, domain_ids;  // [T]
  std::vector<int64_t> k;                                  // [L]
  std::vector<std::vector<int32_t>> experts;               // [L][T * k[l]]
  // Optional (moetb extension): the choices before capacity, [L][T * k[l]], or empty (none).
  std::vector<std::vector<int32_t>> experts_before_capacity;

  const TraceMeta& meta() const override { return meta_data; }
  int n_layers() const override { return static_cast<int>(experts.size()); }
  std::size_t n_shards() const override { return 1; }
  ShardView shard(std::size_t i) const override;
  // A copy whose experts are experts_before_capacity; throws TraceError when there are none.
  TraceData before_capacity() const;
};

// Parses the metadata of a trace (format, num_experts, top_k, names, groups).
TraceMeta parse_trace_meta(const std::map<std::string, std::string>& raw, const std::string& label);
// Reference groups (index = domain id) of distinct expert ids in [0, num_experts), at most
// kMaxDomainId + 1 domains. parse_* reads JSON text (num_experts <= 0: range checked later);
// both throw std::invalid_argument with a one-line reason.
std::vector<std::vector<int>> parse_reference_groups_text(const std::string& text, int64_t num_experts);
void check_reference_groups(const std::vector<std::vector<int>>& groups, int64_t num_experts);
// Builds the metadata map for a trace; `extra` keys are added as they are.
std::map<std::string, std::string> make_trace_metadata(const TraceMeta& meta,
                                                       const std::map<std::string, std::string>& extra = {});

// Writes one trace shard (format v1) atomically: temp file, then rename.
struct TraceShardLayout {
  int64_t n_tokens = 0;
  std::vector<int64_t> k;            // per layer
  DType experts_dtype = DType::kI16;
  DType weights_dtype = DType::kOther;  // kOther: no weights tensors
  DType probs_dtype = DType::kOther;    // kOther: no probs tensors
  int64_t num_experts = 0;
  bool before_capacity = false;         // layers.{l}.experts_before_capacity, as experts_dtype [T, k]
};
std::vector<TensorSpec> trace_tensor_specs(const TraceShardLayout& layout);
// Writes a whole in-memory trace to one file.
void write_trace_file(const TraceData& trace, const std::string& path, DType experts_dtype,
                      const std::map<std::string, std::string>& extra_metadata = {});

}  // namespace moetb
