// safetensors container: parse a header from a byte buffer, map files, write files.
// Format (Hugging Face safetensors): u64 little-endian header length N, N bytes of
// JSON {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__": {str: str}},
// then the data section. Parsing never reads outside the given buffer; every
// problem throws TraceError with a one-line "file: tensor: problem" message.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/mapped_file.h"
#include "common/safe_output.h"

namespace moetb {

// A malformed or unusable trace / safetensors file. what() is one line.
class TraceError : public std::runtime_error {
 public:
  explicit TraceError(const std::string& message) : std::runtime_error(one_line(message)) {}
  // Control characters (from file names or metadata values) are escaped so that a
  // message always stays on one line.
  static std::string one_line(const std::string& text);
};

enum class DType { kI8, kU8, kI16, kU16, kI32, kU32, kI64, kU64, kF16, kBF16, kF32, kF64, kBool, kOther };

DType dtype_from_name(const std::string& name);  // kOther for names we do not use
const char* dtype_name(DType dtype);
std::size_t dtype_size(DType dtype);               // 0 for kOther

struct TensorInfo {
  std::string name;
  std::string dtype_str;        // as written in the header
  DType dtype = DType::kOther;
  std::vector<int64_t> shape;
  uint64_t begin = 0;           // byte offsets inside the data section
  uint64_t end = 0;
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;                 // in data-offset order
  std::map<std::string, std::string> metadata;     // __metadata__
  uint64_t data_start = 0;                         // absolute offset of the data section
  uint64_t data_size = 0;
  std::vector<std::size_t> by_name;                // tensor indices sorted by name (parse fills it)
  const TensorInfo* find(const std::string& name) const;  // O(log n): lookups per layer stay linear in layers
};

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;  // 100 MB, per the trace spec

// Parses and checks the container (header size, JSON, offsets in range, no overlap,
// size == dtype x shape for known dtypes). `label` names the file in errors.
SafetensorsHeader parse_safetensors(const uint8_t* bytes, std::size_t size, const std::string& label);

struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t bytes() const;
};

// Streams a safetensors file: the header is written first from the declared specs,
// then tensor bytes in declaration order (any number of chunks per tensor).
// Writes through the output layer (common/safe_output.h: a temporary name, fsync, rename
// on commit(); a device or FIFO written through); an uncommitted writer removes its
// temporary, so no half-written file is ever left at `path`. Write failures throw
// OutputError ("write failed: PATH: no space left on device"). `opt` defaults to replacing
// an existing file (traces inside a run directory); the CLI passes --force and its inputs.
class SafetensorsWriter {
 public:
  SafetensorsWriter(std::string path, std::vector<TensorSpec> specs,
                    const std::map<std::string, std::string>& metadata, const OutputOptions& opt = OutputOptions{true, {}});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  void write(const void* data, std::size_t n_bytes);  // next bytes of the current tensor(s)
  void commit();

 private:
  std::string path_;
  std::vector<TensorSpec> specs_;
  uint64_t total_bytes_ = 0, written_ = 0;
  std::unique_ptr<OutputFile> file_;
};

// float conversions for the optional weights / probs tensors
float f16_to_float(uint16_t h);
float bf16_to_float(uint16_t h);
uint16_t float_to_f16(float f);
uint16_t float_to_bf16(float f);

}  // namespace moetb
