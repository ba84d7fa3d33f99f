// Regression tests for hostile inputs found in review and fuzzing: deeply nested or
// malformed reference groups, shape dimensions that wrap, too many slots, and domain
// names that collide with decimal ids. Each must fail with one clear line, no crash.
#include <catch2/catch.hpp>

#include "metrics/trace_metrics.h"
#include "metrics/safetensors.h"
#include "oracle/planted_simulator.h"
#include "tests/core/trace_test_util.h"

using namespace moetb;
using ttu::RawFile;
using ttu::TempDir;

TEST_CASE("deeply nested reference_groups fail cleanly instead of overflowing the stack", "[trace][errors]") {
  TempDir dir("limits");
  const std::string path = dir.file("deep.safetensors");
  RawFile f = ttu::valid_raw_trace();
  f.header["__metadata__"]["reference_groups"] = "[" + std::string(200000, '[') + std::string(200000, ']') + "]";
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "__metadata__", "reference_groups");
}

TEST_CASE("reference groups: duplicates, non-integers and out-of-range ids are rejected", "[trace][errors]") {
  CHECK_THROWS_WITH(parse_reference_groups_text("[[0,0,1],[2]]", 8), Catch::Contains("twice"));
  CHECK_THROWS_WITH(parse_reference_groups_text("[[4294967296]]", 0), Catch::Contains("out of range"));
  CHECK_THROWS_WITH(parse_reference_groups_text("[[1.5]]", 8), Catch::Contains("not an integer"));
  CHECK_THROWS_WITH(parse_reference_groups_text("[[8]]", 8), Catch::Contains("outside [0, 8)"));
  CHECK(parse_reference_groups_text("[[0,1],[],[7]]", 8) == std::vector<std::vector<int>>{{0, 1}, {}, {7}});
  // An override with duplicates is refused by the metrics too (it would inflate purity_ids).
  const TraceData t = ttu::small_trace_data(32, 8, {2});
  MetricsOptions options;
  options.reference_groups = std::vector<std::vector<int>>{{0, 0}, {1}};
  CHECK_THROWS_WITH(compute_trace_metrics(t, options), Catch::Contains("twice"));
}

TEST_CASE("a shape dimension of 2^64-1 after a zero dimension is rejected", "[trace][errors]") {
  TempDir dir("limits");
  const std::string path = dir.file("wrap.safetensors");
  RawFile f;
  f.header["__metadata__"] = ttu::trace_metadata();
  for (const char* name : {"token_ids", "positions", "domain_ids"}) f.add(name, "I32", {0}, "");
  f.add("layers.0.experts", "I16", {0, 1}, "");
  f.header["layers.0.experts"]["shape"] = nlohmann::json::array({0, UINT64_MAX});
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "layers.0.experts", "too large");
}

TEST_CASE("more slots than moetb's expert limit are rejected", "[trace][errors]") {
  TempDir dir("limits");
  const std::string path = dir.file("wide.safetensors");
  RawFile f;
  f.header["__metadata__"] = ttu::trace_metadata();
  for (const char* name : {"token_ids", "positions", "domain_ids"}) f.add(name, "I32", {0}, "");
  f.add("layers.0.experts", "I16", {0, int64_t{1} << 40}, "");
  f.write(path);
  CHECK_TRACE_ERROR({path}, path, "layers.0.experts", "K = ");
}

TEST_CASE("an unnamed domain whose decimal id is another domain's name is an error", "[trace][errors]") {
  TraceData t = ttu::small_trace_data(32, 8, {2});
  t.meta_data.domain_names = {"1"};  // domain 0 is named "1"; domain 1 would fall back to "1"
  for (std::size_t i = 0; i < t.domain_ids.size(); ++i) t.domain_ids[i] = static_cast<int32_t>(i % 2);
  CHECK_THROWS_WITH(compute_trace_metrics(t), Catch::Contains("decimal id"));
}

TEST_CASE("trace: tensor lookups are by name, so reading stays linear in the number of layers", "[trace]") {
  ttu::TempDir dir("trace-many-layers");
  const std::string path = dir.file("deep.safetensors");
  moetb::SimConfig cfg;
  cfg.n_layers = 3000;
  cfg.n_tokens = 16;
  cfg.seq_len = 16;
  cfg.n_experts = 8;
  cfg.top_k = 2;
  cfg.n_domains = 2;
  moetb::SimOutput out;
  out.path = path;
  moetb::simulate_to_disk(cfg, out);
  const moetb::Trace trace({path});
  CHECK(trace.n_layers() == 3000);
  const moetb::MappedFile file(path);
  const auto h = moetb::parse_safetensors(file.data(), file.size(), path);
  REQUIRE(h.by_name.size() == h.tensors.size());
  for (int l : {0, 1234, 2999}) CHECK(h.find("layers." + std::to_string(l) + ".experts") != nullptr);
  CHECK(h.find("layers.3000.experts") == nullptr);
  CHECK(h.find("token_ids") != nullptr);
}

TEST_CASE("metrics: each shard is viewed a fixed number of times, however many layers (linear in layers)", "[metrics]") {
  struct Counting : moetb::TraceData {
    mutable int calls = 0;
    moetb::ShardView shard(std::size_t i) const override {
      ++calls;
      return moetb::TraceData::shard(i);
    }
  };
  for (int64_t n_layers : {4, 64}) {
    Counting c;
    static_cast<moetb::TraceData&>(c) = ttu::small_trace_data(64, 8, std::vector<int64_t>(static_cast<std::size_t>(n_layers), 2));
    moetb::MetricsOptions opt;
    opt.threads = 1;
    const auto m = moetb::compute_trace_metrics(c, opt);
    CHECK(m.layers.size() == static_cast<std::size_t>(n_layers));
    CHECK(c.calls == 2);  // once per pass, not once per layer (each view holds every layer)
  }
}
