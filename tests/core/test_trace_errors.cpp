// Trace format v1, the rejecting side: one test case per error of the spec's Errors
// section (and a few more), each on a hand-corrupted file, expecting a one-line TraceError
// naming the file, the tensor and the problem; plus truncation and header-mutation sweeps.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <limits>

#include "oracle/planted_simulator.h"
#include "tests/core/trace_test_util.h"

using namespace moetb;
using ttu::i16_bytes;
using ttu::RawFile;
using ttu::replace;
using ttu::set_value;
using ttu::TempDir;

namespace {

// A file with `header_text` as its (exactly sized) header and no data.
std::string with_header(const std::string& header_text) { return ttu::u64_le(header_text.size()) + header_text; }

}  // namespace

TEST_CASE("error: header length larger than the file", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  std::string bytes = ttu::valid_raw_trace().bytes();
  bytes.replace(0, 8, ttu::u64_le(bytes.size() - 7));
  ttu::write_bytes(path, bytes);
  CHECK_TRACE_ERROR({path}, path, "header length", "file size");
  ttu::write_bytes(path, ttu::u64_le(1000) + "{}");
  CHECK_TRACE_ERROR({path}, path, "header length 1000", "exceeds");
}

TEST_CASE("error: header length over 100 MB in a small file", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  const std::string rest = ttu::valid_raw_trace().bytes().substr(8);
  for (uint64_t n : {uint64_t{100000001}, uint64_t{1} << 40, std::numeric_limits<uint64_t>::max() - 3}) {
    INFO("header length " << n);
    ttu::write_bytes(path, ttu::u64_le(n) + rest);
    CHECK_TRACE_ERROR({path}, path, "100 MB");
  }
}

TEST_CASE("error: header JSON that does not parse", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  for (const std::string& text : {std::string("{\"token_ids\": {\"dtype\": \"I32\""), std::string("not json at all"),
                                 std::string("{\n\"a\":\n\n tru"), std::string("\xff\xfe{}"), std::string("")}) {
    INFO("header: " << text);
    ttu::write_bytes(path, with_header(text) + "data");
    CHECK_TRACE_ERROR({path}, path, "JSON", "parse");
  }
  ttu::write_bytes(path, with_header("[1, 2, 3]"));
  CHECK_TRACE_ERROR({path}, path, "JSON", "not an object");
  ttu::write_bytes(path, with_header("{\"__metadata__\": {\"format\": 1}}"));
  CHECK_TRACE_ERROR({path}, path, "__metadata__", "not a string");
  ttu::write_bytes(path, with_header("{\"token_ids\": {\"dtype\": \"I32\", \"shape\": [-1], \"data_offsets\": [0, 0]}}"));
  CHECK_TRACE_ERROR({path}, path, "token_ids", "shape");
}

TEST_CASE("error: tensor byte range outside the data section", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  RawFile f = ttu::valid_raw_trace();
  auto& off = f.header["layers.1.experts"]["data_offsets"];
  off = {off[0].get<uint64_t>() + 4, off[1].get<uint64_t>() + 4};  // right size, 4 bytes past the end
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "layers.1.experts", "outside the data section");
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  f = ttu::valid_raw_trace();
  f.header["positions"]["data_offsets"] = {max - 23, max};  // would wrap around if added carelessly
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "positions", "outside");
  f = ttu::valid_raw_trace();
  f.header["domain_ids"]["data_offsets"] = {30, 6};
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "domain_ids", "begin after");
}

TEST_CASE("error: overlapping tensors", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  RawFile f = ttu::valid_raw_trace();
  f.header["positions"]["data_offsets"] = f.header["token_ids"]["data_offsets"];  // identical ranges
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "positions", "token_ids", "overlaps");
  f = ttu::valid_raw_trace();
  f.header["domain_ids"]["data_offsets"] = {44, 68};  // tail of positions [24, 48)
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "domain_ids", "overlaps");
}

// A zero-length tensor sorted between two overlapping ones must not hide the overlap.
TEST_CASE("error: overlapping tensors with an empty tensor between them", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  RawFile f = ttu::valid_raw_trace();
  f.header["positions"]["data_offsets"] = {4, 28};  // overlaps token_ids [0, 24); [28, 48) unused
  f.header["empty"] = {{"dtype", "I32"}, {"shape", {0}}, {"data_offsets", {2, 2}}};
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "positions", "overlaps");
}

TEST_CASE("error: byte size not matching dtype x shape", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  RawFile f = ttu::valid_raw_trace();
  f.header["layers.0.experts"]["shape"] = {6, 3};
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "layers.0.experts", "does not match");
  f = ttu::valid_raw_trace();
  f.header["layers.1.experts"]["dtype"] = "I32";  // 24 bytes declared as 12 I32 values
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "layers.1.experts", "does not match");
  f = ttu::valid_raw_trace();
  f.header["token_ids"]["shape"] = {4611686018427387904ull, 4};  // elements x size overflows
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "token_ids", "too large");
}

TEST_CASE("error: missing required tensor", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  for (const char* name : {"token_ids", "positions", "domain_ids"}) {
    SECTION(name) {
      RawFile f = ttu::valid_raw_trace();
      f.header.erase(name);
      f.write(path);
      CHECK_TRACE_ERROR({path}, path, name, "missing");
    }
  }
  SECTION("layers.0.experts, no layer at all") {
    RawFile f = ttu::valid_raw_trace();
    f.header.erase("layers.0.experts");
    f.header.erase("layers.1.experts");
    f.write(path);
    CHECK_TRACE_ERROR({path}, path, "layers.0.experts", "missing");
  }
  SECTION("layers.0.experts, layer 1 present") {
    RawFile f = ttu::valid_raw_trace();
    f.header.erase("layers.0.experts");
    f.write(path);
    CHECK_TRACE_ERROR({path}, path, "layers.0.experts", "missing");
  }
}

TEST_CASE("error: missing metadata key", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  for (const char* key : {"format", "num_experts", "top_k"}) {
    SECTION(key) {
      RawFile f = ttu::valid_raw_trace();
      f.header["__metadata__"].erase(key);
      f.write(path);
      CHECK_TRACE_ERROR({path}, path, "__metadata__", key, "missing");
    }
  }
  SECTION("no __metadata__ at all") {
    RawFile f = ttu::valid_raw_trace();
    f.header.erase("__metadata__");
    f.write(path);
    CHECK_TRACE_ERROR({path}, path, "__metadata__", "format", "missing");
  }
}

TEST_CASE("error: wrong format string", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  for (const char* format : {"moe-routing-trace/2", "", "MOE-ROUTING-TRACE/1", "moe-routing-trace/1 "}) {
    INFO("format '" << format << "'");
    RawFile f = ttu::valid_raw_trace();
    f.header["__metadata__"]["format"] = format;
    f.write(path);
    CHECK_TRACE_ERROR({path}, path, "__metadata__", "format", "expected 'moe-routing-trace/1'");
  }
}

TEST_CASE("error: bad num_experts / top_k values", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  for (const char* key : {"num_experts", "top_k"})
    for (const char* value : {"0", "-3", "abc", "8.0", " 8", "1234567890", ""}) {
      INFO(key << " = '" << value << "'");
      RawFile f = ttu::valid_raw_trace();
      f.header["__metadata__"][key] = value;
      f.write(path);
      CHECK_TRACE_ERROR({path}, path, "__metadata__", key);
    }
}

TEST_CASE("error: malformed or out-of-limit metadata values", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"num_experts", "65537"}, {"num_experts", "999999999"}, {"domain_names", "not json"},
           {"domain_names", "[1, 2]"}, {"domain_names", "[\"a\", \"a\"]"}, {"reference_groups", "[[0, 1], [8]]"},
           {"reference_groups", "[[0, 0]]"}, {"reference_groups", "[1]"}}) {
    INFO(key << " = " << value);
    RawFile f = ttu::valid_raw_trace();
    f.header["__metadata__"][key] = value;
    f.write(path);
    CHECK_TRACE_ERROR({path}, path, "__metadata__", key);
  }
}

// Metadata values are copied into messages; a control character must not split the line.
TEST_CASE("error messages stay one line when metadata holds a newline", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  RawFile f = ttu::valid_raw_trace();
  f.header["__metadata__"]["format"] = "moe-routing-trace/1\nsecond line";
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "__metadata__", "format");
  f = ttu::valid_raw_trace();
  f.header["__metadata__"]["num_experts"] = "8\n";
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "__metadata__", "num_experts");
}

TEST_CASE("error: shapes disagreeing on T", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  auto check = [&](const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
                   const std::string& bytes) {
    RawFile f = ttu::valid_raw_trace();
    replace(f, name, dtype, shape, bytes);
    f.write(path);
    CHECK_TRACE_ERROR({path}, path, name, "T = 6");
  };
  SECTION("positions") { check("positions", "I32", {5}, std::string(20, '\0')); }
  SECTION("domain_ids") { check("domain_ids", "I32", {7}, std::string(28, '\0')); }
  SECTION("layers.0.experts") { check("layers.0.experts", "I16", {7, 2}, i16_bytes(14)); }
  SECTION("layers.1.experts") { check("layers.1.experts", "I16", {5, 2}, i16_bytes(10)); }
  SECTION("experts of rank 1") { check("layers.1.experts", "I16", {6}, i16_bytes(6)); }
  SECTION("layers.0.weights") {
    RawFile f = ttu::valid_raw_trace();
    f.add("layers.0.weights", "F32", {5, 2}, std::string(40, '\0'));
    f.write(path);
    CHECK_TRACE_ERROR({path}, path, "layers.0.weights", "shape");
  }
}

TEST_CASE("error: expert id outside [-1, E)", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  struct Bad { const char* dtype; const char* tensor; std::size_t index; int32_t value; };
  for (const Bad& b : {Bad{"I16", "layers.1.experts", 7, 8}, Bad{"I16", "layers.0.experts", 4, -2},
                       Bad{"I16", "layers.0.experts", 0, -32768}, Bad{"I32", "layers.1.experts", 11, 70000},
                       Bad{"I32", "layers.0.experts", 3, std::numeric_limits<int32_t>::min()}}) {
    INFO(b.dtype << " " << b.tensor << "[" << b.index << "] = " << b.value);
    RawFile f = ttu::valid_raw_trace(b.dtype);
    set_value(f, b.tensor, b.index, b.value);
    f.write(path);
    CHECK_NOTHROW(Trace({path}));  // a content check: found while the layer streams
    CHECK_TRACE_ERROR({path}, path, b.tensor, "outside", std::to_string(b.value));
  }
}

TEST_CASE("error: duplicated expert within one token's slots", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  for (const char* dtype : {"I16", "I32"}) {
    RawFile f = ttu::valid_raw_trace(dtype);
    set_value(f, "layers.1.experts", 6, 5);  // token 3: {5, 6} -> {5, 5}
    set_value(f, "layers.1.experts", 7, 5);
    f.write(path);
    CHECK_TRACE_ERROR({path}, path, "layers.1.experts", "twice", "token 3");
  }
}

TEST_CASE("error: shards disagreeing on metadata", "[trace][errors]") {
  TempDir dir("err");
  const std::string a = dir.file("a.safetensors"), b = dir.file("b.safetensors");
  ttu::valid_raw_trace().write(a);
  ttu::valid_raw_trace().write(b);
  REQUIRE(Trace({a, b}).n_tokens() == 12);  // control: identical shards concatenate
  REQUIRE(ttu::trace_error_of({dir.path()}) == "<no error>");
  struct Change { const char* key; const char* value; };  // value nullptr: remove the key
  for (const Change& c : {Change{"num_experts", "9"}, Change{"top_k", "3"}, Change{"model", "other"},
                          Change{"domain_names", nullptr}}) {
    INFO("key " << c.key);
    RawFile f = ttu::valid_raw_trace();
    if (c.value != nullptr)
      f.header["__metadata__"][c.key] = c.value;
    else
      f.header["__metadata__"].erase(c.key);
    f.write(b);
    CHECK_TRACE_ERROR((std::vector<std::string>{a, b}), b, "__metadata__", c.key, "disagrees");
    CHECK_TRACE_ERROR({dir.path()}, b, "__metadata__", c.key, "disagrees");
  }
}

TEST_CASE("error: shards disagreeing on K", "[trace][errors]") {
  TempDir dir("err");
  const std::string a = dir.file("a.safetensors"), b = dir.file("b.safetensors");
  ttu::valid_raw_trace().write(a);
  RawFile f = ttu::valid_raw_trace();
  replace(f, "layers.1.experts", "I16", {6, 3}, i16_bytes(18));
  f.write(b);
  CHECK_TRACE_ERROR((std::vector<std::string>{a, b}), b, "layers.1.experts", "K = 3", "K = 2");
  f = ttu::valid_raw_trace();
  f.header.erase("layers.1.experts");
  f.write(b);
  CHECK_TRACE_ERROR((std::vector<std::string>{a, b}), b, "layers", "disagree");
}

TEST_CASE("error: wrong dtype of a known tensor", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  RawFile f = ttu::valid_raw_trace();
  replace(f, "layers.0.experts", "F32", {6, 2}, std::string(48, '\0'));
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "layers.0.experts", "dtype", "F32");
  f = ttu::valid_raw_trace();
  replace(f, "token_ids", "I64", {6}, std::string(48, '\0'));
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "token_ids", "dtype", "I64");
  f = ttu::valid_raw_trace();
  f.add("layers.1.probs", "I32", {6, 8}, std::string(192, '\0'));
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "layers.1.probs", "dtype", "I32");
}

TEST_CASE("error: non-contiguous layer indices", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  RawFile f = ttu::valid_raw_trace();
  f.header["layers.2.experts"] = f.header["layers.1.experts"];
  f.header.erase("layers.1.experts");
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "layers.2.experts", "contiguous");
  f.header["layers.1000000000000.experts"] = f.header["layers.2.experts"];  // index too big for an int
  f.header.erase("layers.2.experts");
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "layers.1000000000000.experts", "contiguous");
}

TEST_CASE("error: file shorter than 8 bytes", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("short.safetensors");
  for (std::size_t n = 0; n < 8; ++n) {
    INFO(n << " bytes");
    ttu::write_bytes(path, std::string(n, '\x01'));
    CHECK_TRACE_ERROR({path}, path, "too short");
  }
}

TEST_CASE("error: empty directory", "[trace][errors]") {
  TempDir dir("err");
  CHECK_TRACE_ERROR({dir.path()}, dir.path(), "no *.safetensors");
  ttu::write_bytes(dir.file("trace.safetensors.bak"), ttu::valid_raw_trace().bytes());
  CHECK_TRACE_ERROR({dir.path()}, dir.path(), "no *.safetensors");
}

TEST_CASE("error: nonexistent path", "[trace][errors]") {
  TempDir dir("err");
  const std::string good = dir.file("good.safetensors"), missing = dir.file("missing.safetensors");
  ttu::valid_raw_trace().write(good);
  CHECK_TRACE_ERROR({missing}, missing, "no such file");
  CHECK_TRACE_ERROR((std::vector<std::string>{good, missing}), missing, "no such file");
  CHECK_THROWS_AS(Trace(std::vector<std::string>{}), TraceError);
}

TEST_CASE("error: domain id outside [-1, 1023]", "[trace][errors]") {
  TempDir dir("err");
  const std::string path = dir.file("bad.safetensors");
  for (int32_t d : {-5, -2, 1024, 65536}) {
    RawFile f = ttu::valid_raw_trace();
    set_value(f, "domain_ids", 2, d);
    f.write(path);
    CHECK_TRACE_ERROR({path}, path, "domain_ids", std::to_string(d), "outside");
  }
}

TEST_CASE("truncation sweep: every prefix of a trace opens identically or throws TraceError", "[trace][errors]") {
  TempDir dir("err-trunc");
  SimConfig cfg;
  cfg.n_experts = 8;
  cfg.top_k = 2;
  cfg.n_domains = 2;
  cfg.n_layers = 2;
  cfg.n_tokens = 24;
  cfg.seq_len = 10;
  SimOutput out;
  out.path = dir.file("full.safetensors");
  out.weights_dtype = DType::kF16;
  out.probs_dtype = DType::kBF16;
  simulate_to_disk(cfg, out);
  const std::string full = ttu::read_bytes(out.path);
  const nlohmann::json want = ttu::metrics_json(Trace({out.path}));
  const std::string path = dir.file("cut.safetensors");
  int opened = 0, rejected = 0;
  for (std::size_t n = 0; n <= full.size(); ++n) {
    ttu::write_bytes(path, full.substr(0, n));
    try {
      const Trace t({path});
      CHECK(ttu::metrics_json(t) == want);
      ++opened;
    } catch (const TraceError& e) {
      const std::string msg = e.what();
      if (msg.find('\n') != std::string::npos || msg.find(path) == std::string::npos)
        FAIL("prefix of " << n << " bytes: bad message: " << msg);
      ++rejected;
    }
  }
  CHECK(opened == 1);  // only the whole file: the last tensor ends at the end of the file
  CHECK(rejected == static_cast<int>(full.size()));
}

TEST_CASE("header mutation sweep: no crash, only TraceError", "[trace][errors]") {
  TempDir dir("err-mutate");
  const std::string good = ttu::valid_raw_trace().bytes();
  const std::size_t header_end = 8 + ttu::read_u64_le(good);
  const std::string path = dir.file("mut.safetensors");
  int opened = 0, rejected = 0;
  for (std::size_t i = 8; i < header_end; ++i)
    for (char c : {' ', '"', '}', ',', 'x', '\xff', '\0'}) {
      std::string bytes = good;
      if (bytes[i] == c) continue;
      bytes[i] = c;
      ttu::write_bytes(path, bytes);
      const std::string msg = ttu::trace_error_of({path});
      if (msg == "<no error>") {
        ++opened;
        continue;
      }
      ++rejected;
      if (msg.find('\n') != std::string::npos || msg.find(path) == std::string::npos ||
          msg.rfind("<other exception", 0) == 0)
        FAIL("byte " << i << " set to " << static_cast<int>(c) << ": " << msg);
    }
  CHECK(rejected > 0);
  CHECK(opened > 0);  // e.g. a changed domain name or padding
}

// A FIFO (or any non-regular file) must be refused at once, not block waiting for a writer.
TEST_CASE("error: a FIFO is rejected without blocking", "[trace][errors]") {
  TempDir dir("fifo");
  const std::string path = dir.file("pipe.safetensors");
  REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
  CHECK_TRACE_ERROR({path}, path, "", "regular file");
}
