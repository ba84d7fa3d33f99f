// Helpers shared by the trace-format, trace-error and CLI tests: unique temp directories,
// raw safetensors files assembled byte by byte (so tests can corrupt any part), and a
// checker for "one line naming the file, the tensor and the problem" TraceErrors.
#pragma once
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "metrics/safetensors.h"
#include "metrics/trace.h"
#include "metrics/trace_metrics.h"

namespace ttu {

namespace fs = std::filesystem;

// A fresh directory /tmp/moetb-<tag>-<pid>-<n>, removed (with its contents) on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static std::atomic<int> counter{0};
    path_ = (fs::temp_directory_path() /
             ("moetb-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)))
                .string();
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return (fs::path(path_) / name).string(); }
  // Names of all entries in the directory, sorted.
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::string path_;
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Replaces the file (unlink + create: much faster than truncating it in place on ext4).
inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::remove(path.c_str());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <typename T>
std::string raw_of(const std::vector<T>& v) {
  std::string s(v.size() * sizeof(T), '\0');
  if (!v.empty()) std::memcpy(&s[0], v.data(), s.size());
  return s;
}

inline uint64_t read_u64_le(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes.at(static_cast<std::size_t>(i)));
  return n;
}

inline std::string u64_le(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file under construction: the JSON header (which tests may edit freely,
// including data_offsets) and the data section.
struct RawFile {
  nlohmann::json header = nlohmann::json::object();
  std::string data;

  // Appends a tensor after the current data and records its header entry.
  void add(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
           const std::string& bytes) {
    header[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  }
  // 8-byte LE length + header JSON (+ spaces up to a multiple of `align`) + data.
  std::string bytes(std::size_t align = 8) const {
    std::string text = header.dump();
    while (align > 1 && (8 + text.size()) % align != 0) text.push_back(' ');
    return u64_le(text.size()) + text + data;
  }
  void write(const std::string& path, std::size_t align = 8) const { write_bytes(path, bytes(align)); }
};

// The metadata of a valid trace with E experts and top-k.
inline nlohmann::json trace_metadata(int64_t num_experts = 8, int64_t top_k = 2) {
  return {{"format", "moe-routing-trace/1"},
          {"num_experts", std::to_string(num_experts)},
          {"top_k", std::to_string(top_k)},
          {"domain_names", "[\"a\",\"b\"]"}};
}

// A valid hand-built trace: T = 6 tokens (two sequences of 3), E = 8, two layers with
// K = 2, experts in `expert_dtype` (I16 or I32). Tests corrupt it before writing.
inline RawFile valid_raw_trace(const std::string& expert_dtype = "I16") {
  RawFile f;
  f.header["__metadata__"] = trace_metadata();
  f.add("token_ids", "I32", {6}, raw_of(std::vector<int32_t>{10, 11, 12, 20, 21, 22}));
  f.add("positions", "I32", {6}, raw_of(std::vector<int32_t>{0, 1, 2, 0, 1, 2}));
  f.add("domain_ids", "I32", {6}, raw_of(std::vector<int32_t>{0, 0, 0, 1, 1, -1}));
  const std::vector<int32_t> l0 = {0, 1, 0, 1, 0, 2, 4, 5, 4, 5, 6, -1};
  const std::vector<int32_t> l1 = {1, 2, 1, 2, 3, 1, 5, 6, 7, 5, -1, -1};
  for (int l = 0; l < 2; ++l) {
    const auto& v = l == 0 ? l0 : l1;
    const std::string name = "layers." + std::to_string(l) + ".experts";
    if (expert_dtype == "I16")
      f.add(name, "I16", {6, 2}, raw_of(std::vector<int16_t>(v.begin(), v.end())));
    else
      f.add(name, expert_dtype, {6, 2}, raw_of(v));
  }
  return f;
}

// A small in-memory trace (T tokens, E experts, per-layer K) with deterministic contents.
inline moetb::TraceData small_trace_data(int64_t n_tokens, int64_t num_experts, const std::vector<int64_t>& ks) {
  moetb::TraceData d;
  d.meta_data.num_experts = num_experts;
  d.meta_data.top_k = ks.empty() ? 1 : ks[0];
  for (int64_t t = 0; t < n_tokens; ++t) {
    d.token_ids.push_back(static_cast<int32_t>(100 + (t * 7) % 13));
    d.positions.push_back(static_cast<int32_t>(t % 5));
    d.domain_ids.push_back(static_cast<int32_t>(t % 7 == 6 ? -1 : (t / 5) % 3));
  }
  for (int64_t k : ks) {
    std::vector<int32_t> e;
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t s = 0; s < k; ++s)
        e.push_back((t + s) % 11 == 10 ? -1 : static_cast<int32_t>((t * 3 + s * 5) % num_experts));
    d.k.push_back(k);
    d.experts.push_back(std::move(e));
  }
  return d;
}

// Overwrites element `index` of an I16/I32 tensor in the data section.
inline void set_value(RawFile& f, const std::string& tensor, std::size_t index, int32_t value) {
  const auto& entry = f.header.at(tensor);
  const auto begin = entry["data_offsets"][0].get<std::size_t>();
  if (entry["dtype"] == "I16") {
    const auto v = static_cast<int16_t>(value);
    std::memcpy(&f.data[begin + 2 * index], &v, 2);
  } else {
    std::memcpy(&f.data[begin + 4 * index], &value, 4);
  }
}

// Drops a tensor's entry and appends a new one of the same name (its old bytes become unused).
inline void replace(RawFile& f, const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
             const std::string& bytes) {
  f.header.erase(name);
  f.add(name, dtype, shape, bytes);
}

inline std::string i16_bytes(std::size_t n, int16_t first = 0) {
  std::vector<int16_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<int16_t>(first + static_cast<int16_t>(i % 8));
  return raw_of(v);
}

// All of a source's tokens flattened: token ids, positions, domains, and per layer [T*K] experts.
struct Flat {
  std::vector<int32_t> token_ids, positions, domain_ids;
  std::vector<int64_t> k;
  std::vector<std::vector<int32_t>> experts;
};

inline Flat flatten(const moetb::ShardSource& src) {
  Flat f;
  f.experts.resize(static_cast<std::size_t>(src.n_layers()));
  for (std::size_t s = 0; s < src.n_shards(); ++s) {
    const moetb::ShardView v = src.shard(s);
    REQUIRE(static_cast<int>(v.layers.size()) == src.n_layers());
    f.token_ids.insert(f.token_ids.end(), v.token_ids, v.token_ids + v.n_tokens);
    f.positions.insert(f.positions.end(), v.positions, v.positions + v.n_tokens);
    f.domain_ids.insert(f.domain_ids.end(), v.domain_ids, v.domain_ids + v.n_tokens);
    if (s == 0)
      for (const auto& lv : v.layers) f.k.push_back(lv.k);
    for (std::size_t l = 0; l < v.layers.size(); ++l)
      for (int64_t t = 0; t < v.n_tokens; ++t)
        for (int64_t j = 0; j < v.layers[l].k; ++j) f.experts[l].push_back(v.layers[l].expert(t, j));
  }
  return f;
}

inline void check_same(const Flat& a, const Flat& b) {
  CHECK(a.token_ids == b.token_ids);
  CHECK(a.positions == b.positions);
  CHECK(a.domain_ids == b.domain_ids);
  CHECK(a.k == b.k);
  REQUIRE(a.experts.size() == b.experts.size());
  for (std::size_t l = 0; l < a.experts.size(); ++l) {
    INFO("layer " << l);
    CHECK(a.experts[l] == b.experts[l]);
  }
}

// Metrics JSON of a trace (one thread, so the result does not depend on the machine).
inline nlohmann::json metrics_json(const moetb::ShardSource& src) {
  moetb::MetricsOptions options;
  options.threads = 1;
  return moetb::metrics_to_json(moetb::compute_trace_metrics(src, options));
}

// Opens `paths` and computes the metrics; returns the TraceError message, or a marker
// ("<no error>", "<other exception: ...>") when no TraceError was thrown.
inline std::string trace_error_of(const std::vector<std::string>& paths) {
  try {
    moetb::Trace trace(paths);
    (void)metrics_json(trace);
  } catch (const moetb::TraceError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<other exception: ") + e.what() + ">";
  }
  return "<no error>";
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace ttu

// Opening/computing `paths` throws TraceError with a one-line message that contains
// every string in the brace list (file path, tensor name, a word of the problem).
#define CHECK_TRACE_ERROR(paths, ...)                                         \
  do {                                                                        \
    const std::string msg_ = ttu::trace_error_of(paths);                      \
    INFO("message: " << msg_);                                                \
    CHECK_FALSE(ttu::contains(msg_, "<no error>"));                           \
    CHECK_FALSE(ttu::contains(msg_, "<other exception"));                     \
    CHECK(msg_.find('\n') == std::string::npos);                              \
    for (const std::string& part_ : std::vector<std::string>{__VA_ARGS__}) {  \
      INFO("expected to contain: " << part_);                                 \
      CHECK(ttu::contains(msg_, part_));                                      \
    }                                                                         \
  } while (false)
