// safetensors container: bounds-checked header parsing, memory mapping, streaming writer.
// Follows the Hugging Face safetensors layout; the 100 MB header cap is the trace
// spec's. Every check happens before any tensor byte is touched.
#include "metrics/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

namespace moetb {
namespace {

struct DTypeRow {
  DType dtype;
  const char* name;
  std::size_t size;
};
constexpr DTypeRow kDTypes[] = {
    {DType::kI8, "I8", 1},    {DType::kU8, "U8", 1},     {DType::kI16, "I16", 2},
    {DType::kU16, "U16", 2},  {DType::kI32, "I32", 4},   {DType::kU32, "U32", 4},
    {DType::kI64, "I64", 8},  {DType::kU64, "U64", 8},   {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kF32, "F32", 4},  {DType::kF64, "F64", 8},
    {DType::kBool, "BOOL", 1},
};

[[noreturn]] void fail(const std::string& label, const std::string& tensor, const std::string& what) {
  throw TraceError(label + ": " + (tensor.empty() ? "" : tensor + ": ") + what);
}

// Multiplies non-negative values, returning false on overflow past 2^62.
bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > (uint64_t{1} << 62) / a) return false;
  *out = a * b;
  return true;
}

}  // namespace

std::string TraceError::one_line(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (static_cast<unsigned char>(c) < 0x20) out += '?';
    else out += c;
  }
  return out;
}

DType dtype_from_name(const std::string& name) {
  for (const auto& row : kDTypes)
    if (name == row.name) return row.dtype;
  return DType::kOther;
}

const char* dtype_name(DType dtype) {
  for (const auto& row : kDTypes)
    if (row.dtype == dtype) return row.name;
  return "?";
}

std::size_t dtype_size(DType dtype) {
  for (const auto& row : kDTypes)
    if (row.dtype == dtype) return row.size;
  return 0;
}

const TensorInfo* SafetensorsHeader::find(const std::string& name) const {
  if (by_name.size() != tensors.size()) {  // a header built by hand: scan
    for (const auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  const auto it = std::lower_bound(by_name.begin(), by_name.end(), name,
                                   [&](std::size_t i, const std::string& n) { return tensors[i].name < n; });
  return it != by_name.end() && tensors[*it].name == name ? &tensors[*it] : nullptr;
}

SafetensorsHeader parse_safetensors(const uint8_t* bytes, std::size_t size, const std::string& label) {
  if (size < 8) fail(label, "", "file of " + std::to_string(size) + " bytes is too short for a safetensors header");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n > kMaxHeaderBytes) fail(label, "", "header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > size - 8)
    fail(label, "", "header length " + std::to_string(n) + " exceeds the file size " + std::to_string(size));

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + n);
  } catch (const nlohmann::json::exception& e) {
    fail(label, "", std::string("header JSON does not parse: ") + e.what());
  }
  if (!header.is_object()) fail(label, "", "header JSON is not an object");

  SafetensorsHeader out;
  out.data_start = 8 + n;
  out.data_size = size - out.data_start;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(label, name, "is not an object of strings");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) fail(label, "__metadata__", "value of key '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) fail(label, name, "entry is not an object");
    TensorInfo info;
    info.name = name;
    auto dt = entry.find("dtype");
    auto sh = entry.find("shape");
    auto off = entry.find("data_offsets");
    if (dt == entry.end() || !dt->is_string()) fail(label, name, "missing or non-string 'dtype'");
    if (sh == entry.end() || !sh->is_array()) fail(label, name, "missing or non-array 'shape'");
    if (off == entry.end() || !off->is_array() || off->size() != 2)
      fail(label, name, "'data_offsets' is not a pair [begin, end]");
    info.dtype_str = dt->get<std::string>();
    info.dtype = dtype_from_name(info.dtype_str);
    uint64_t elements = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) fail(label, name, "shape holds a value that is not a non-negative integer");
      const uint64_t v = d.get<uint64_t>();
      // Each dimension on its own too: after a 0 dimension the product no longer catches it.
      if (v > (uint64_t{1} << 62) || !checked_mul(elements, v, &elements)) fail(label, name, "shape is too large");
      info.shape.push_back(static_cast<int64_t>(v));
    }
    for (const auto& o : *off)
      if (!o.is_number_unsigned()) fail(label, name, "data_offsets hold a value that is not a non-negative integer");
    info.begin = (*off)[0].get<uint64_t>();
    info.end = (*off)[1].get<uint64_t>();
    if (info.begin > info.end) fail(label, name, "data_offsets begin after they end");
    if (info.end > out.data_size)
      fail(label, name, "byte range [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                            ") lies outside the data section of " + std::to_string(out.data_size) + " bytes");
    if (const std::size_t esize = dtype_size(info.dtype); esize != 0) {
      uint64_t expect = 0;
      if (!checked_mul(elements, esize, &expect) || expect != info.end - info.begin)
        fail(label, name, "byte range of " + std::to_string(info.end - info.begin) + " bytes does not match " +
                              info.dtype_str + " x shape (" + std::to_string(elements) + " elements)");
    }
    out.tensors.push_back(std::move(info));
  }
  std::sort(out.tensors.begin(), out.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  // Sorted by begin, a non-empty tensor overlaps an earlier one exactly when it starts
  // before the furthest end seen so far (empty tensors occupy no bytes and are skipped).
  const TensorInfo* furthest = nullptr;
  for (const auto& cur : out.tensors) {
    if (cur.end == cur.begin) continue;
    if (furthest != nullptr && cur.begin < furthest->end)
      fail(label, cur.name, "byte range overlaps tensor '" + furthest->name + "'");
    if (furthest == nullptr || cur.end > furthest->end) furthest = &cur;
  }
  out.by_name.resize(out.tensors.size());
  for (std::size_t i = 0; i < out.by_name.size(); ++i) out.by_name[i] = i;
  std::sort(out.by_name.begin(), out.by_name.end(),
            [&](std::size_t a, std::size_t b) { return out.tensors[a].name < out.tensors[b].name; });
  return out;
}

uint64_t TensorSpec::bytes() const {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorSpec> specs,
                                     const std::map<std::string, std::string>& metadata, const OutputOptions& opt)
    : path_(std::move(path)), specs_(std::move(specs)) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  for (const auto& spec : specs_) {
    const uint64_t b = spec.bytes();
    header[spec.name] = {{"dtype", dtype_name(spec.dtype)}, {"shape", spec.shape},
                         {"data_offsets", {total_bytes_, total_bytes_ + b}}};
    total_bytes_ += b;
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');  // keeps tensor data 8-byte aligned
  file_ = std::make_unique<OutputFile>(path_, opt, OutputKind::trace);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>((text.size() >> (8 * i)) & 0xff);
  file_->write(len, 8);
  file_->write(text);
}

SafetensorsWriter::~SafetensorsWriter() = default;  // an uncommitted OutputFile removes its temporary

void SafetensorsWriter::write(const void* data, std::size_t n_bytes) {
  if (written_ + n_bytes > total_bytes_) throw TraceError(path_ + ": more tensor bytes written than declared");
  if (n_bytes > 0) file_->write(data, n_bytes);
  written_ += n_bytes;
}

void SafetensorsWriter::commit() {
  if (written_ != total_bytes_)
    throw TraceError(path_ + ": " + std::to_string(total_bytes_ - written_) + " declared tensor bytes were not written");
  file_->commit();
}

float f16_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN stays NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

uint16_t float_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (abs < 0x38800000u) {                                               // subnormal or zero in f16
    if (abs < 0x33000000u) return sign;
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;  // 14..24
    const uint32_t rounded = (mant + (1u << (shift - 1)) - 1 + ((mant >> shift) & 1u)) >> shift;
    return static_cast<uint16_t>(sign | rounded);
  }
  uint32_t r = abs + 0xfffu + ((abs >> 13) & 1u) - ((127 - 15) << 23);  // rebias + round to nearest even
  return static_cast<uint16_t>(sign | (r >> 13));
}

}  // namespace moetb
