// Trace format v1 (shared/spec/trace-format.md), the accepting side: writer/reader round
// trips, the simulator's on-disk output (weights/probs dtypes, shards, determinism,
// alignment), tolerated variations (unaligned data, unknown tensors, padding, mixed K), f16/bf16.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <set>

#include "oracle/planted_simulator.h"
#include "tests/core/trace_test_util.h"

using namespace moetb;
using ttu::check_same;
using ttu::Flat;
using ttu::flatten;
using ttu::TempDir;

namespace {

float decode(const void* base, DType dtype, int64_t i) {
  const auto* p = static_cast<const uint8_t*>(base);
  if (dtype == DType::kF32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return dtype == DType::kF16 ? f16_to_float(h) : bf16_to_float(h);
}

SimConfig small_sim(uint64_t seed = 1) {
  SimConfig cfg;
  cfg.n_experts = 16;
  cfg.top_k = 4;
  cfg.n_domains = 3;
  cfg.n_layers = 2;
  cfg.n_tokens = 1000;
  cfg.seq_len = 64;
  cfg.vocab_per_domain = 50;
  cfg.unlabeled = 0.1;
  cfg.seed = seed;
  return cfg;
}

}  // namespace

TEST_CASE("write_trace_file round trip, I16 and I32 experts", "[trace]") {
  TempDir dir("fmt-roundtrip");
  TraceData data = ttu::small_trace_data(37, 16, {3, 1, 4});  // K differs between layers, -1 padding
  data.meta_data.domain_names = {"code", "math", "prose"};
  data.meta_data.reference_groups = std::vector<std::vector<int>>{{0, 1, 2}, {5, 6}, {15}};
  data.meta_data.model = "test-model \"quoted\"";
  data.meta_data.source = "unit-test";
  for (DType dt : {DType::kI16, DType::kI32}) {
    SECTION(dtype_name(dt)) {
      const std::string path = dir.file("t.safetensors");
      write_trace_file(data, path, dt, {{"custom_key", "custom value"}, {"another", "{\"json\": 1}"}});
      CHECK(dir.entries() == std::vector<std::string>{"t.safetensors"});  // no temp file left
      const Trace trace({path});
      REQUIRE(trace.n_shards() == 1);
      REQUIRE(trace.n_layers() == 3);
      const ShardView v = trace.shard(0);
      CHECK(v.n_tokens == 37);
      for (const auto& lv : v.layers) {
        CHECK((lv.experts_i16 != nullptr) == (dt == DType::kI16));
        CHECK((lv.experts_i32 != nullptr) == (dt == DType::kI32));
        CHECK(lv.weights == nullptr);
        CHECK(lv.probs == nullptr);
      }
      Flat want{data.token_ids, data.positions, data.domain_ids, data.k, data.experts};
      check_same(flatten(trace), want);
      const TraceMeta& m = trace.meta();
      CHECK(m.num_experts == 16);
      CHECK(m.top_k == 3);
      CHECK(m.domain_names == data.meta_data.domain_names);
      REQUIRE(m.reference_groups.has_value());
      CHECK(*m.reference_groups == *data.meta_data.reference_groups);
      CHECK(m.model == data.meta_data.model);
      CHECK(m.source == "unit-test");
      CHECK(m.raw.at("format") == "moe-routing-trace/1");
      CHECK(m.raw.at("custom_key") == "custom value");
      CHECK(m.raw.at("another") == "{\"json\": 1}");
      // Same metrics from the file as from memory.
      CHECK(ttu::metrics_json(trace) == ttu::metrics_json(data));
    }
  }
}

TEST_CASE("I16 writer rejects expert ids that do not fit, leaving nothing behind", "[trace]") {
  TempDir dir("fmt-i16");
  TraceData data = ttu::small_trace_data(4, 40000, {2});
  data.experts[0][3] = 39999;
  CHECK_THROWS_AS(write_trace_file(data, dir.file("t.safetensors"), DType::kI16), TraceError);
  CHECK(dir.entries().empty());
  write_trace_file(data, dir.file("t.safetensors"), DType::kI32);
  CHECK(Trace({dir.file("t.safetensors")}).shard(0).layers[0].expert(1, 1) == 39999);
}

TEST_CASE("simulate_to_disk weights and probs decode to the planted values", "[trace]") {
  TempDir dir("fmt-floats");
  const SimConfig cfg = small_sim();
  const TraceData mem = simulate_trace(cfg);
  const int k = cfg.top_k;
  const auto n_e = cfg.n_experts;
  std::vector<double> slot_weight(static_cast<std::size_t>(k));
  for (int j = 0; j < k; ++j) slot_weight[j] = static_cast<double>(k - j) / (0.5 * k * (k + 1));
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    SECTION(dtype_name(dt)) {
      // Relative rounding error of the dtype (half an ulp), plus float arithmetic slack.
      const double tol = dt == DType::kF32 ? 1e-6 : dt == DType::kF16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
      SimOutput out;
      out.path = dir.file("sim.safetensors");
      out.weights_dtype = dt;
      out.probs_dtype = dt;
      simulate_to_disk(cfg, out);
      const Trace trace({out.path});
      check_same(flatten(trace), Flat{mem.token_ids, mem.positions, mem.domain_ids, mem.k, mem.experts});
      const ShardView v = trace.shard(0);
      for (int l = 0; l < cfg.n_layers; ++l) {
        const LayerView& lv = v.layers[l];
        REQUIRE(lv.weights != nullptr);
        REQUIRE(lv.probs != nullptr);
        CHECK(lv.weights_dtype == dt);
        CHECK(lv.probs_dtype == dt);
        int bad_w = 0, bad_p = 0;
        double worst_sum = 0;
        for (int64_t t = 0; t < v.n_tokens; ++t) {
          std::vector<double> want(static_cast<std::size_t>(n_e), 0.2 / static_cast<double>(n_e));
          for (int j = 0; j < k; ++j) {
            const double w = lv.weight(t, j);
            bad_w += std::abs(w - slot_weight[j]) > tol * slot_weight[j] + 1e-7;
            want[static_cast<std::size_t>(lv.expert(t, j))] += 0.8 * slot_weight[j];
          }
          double sum = 0;
          for (int64_t e = 0; e < n_e; ++e) {
            const double p = decode(lv.probs, dt, t * n_e + e);
            sum += p;
            bad_p += std::abs(p - want[static_cast<std::size_t>(e)]) > tol * want[static_cast<std::size_t>(e)] + 1e-7;
          }
          worst_sum = std::max(worst_sum, std::abs(sum - 1.0));
        }
        INFO("layer " << l);
        CHECK(bad_w == 0);
        CHECK(bad_p == 0);
        CHECK(worst_sum < static_cast<double>(n_e) * tol + 1e-5);
      }
      // The F16/BF16 weights are exactly the library's rounding of the F32 value.
      if (dt != DType::kF32) {
        const float w0 = static_cast<float>(k) / (0.5f * static_cast<float>(k * (k + 1)));
        const float want = dt == DType::kF16 ? f16_to_float(float_to_f16(w0)) : bf16_to_float(float_to_bf16(w0));
        CHECK(v.layers[0].weight(0, 0) == want);
      }
    }
  }
}

TEST_CASE("sharded simulator output equals the unsharded trace", "[trace]") {
  TempDir dir("fmt-shards");
  SimConfig cfg = small_sim();
  cfg.n_tokens = 2048;
  SimOutput one;
  one.path = dir.file("one.safetensors");
  simulate_to_disk(cfg, one);
  SimOutput sharded = one;
  sharded.path = dir.file("sharded");
  sharded.shard_tokens = 700;
  simulate_to_disk(cfg, sharded);
  CHECK(dir.entries() == std::vector<std::string>{"one.safetensors", "sharded"});

  const Trace a({one.path}), b({sharded.path});
  REQUIRE(b.n_shards() == 3);
  CHECK(b.files() == std::vector<std::string>{(ttu::fs::path(sharded.path) / "shard-00000.safetensors").string(),
                                              (ttu::fs::path(sharded.path) / "shard-00001.safetensors").string(),
                                              (ttu::fs::path(sharded.path) / "shard-00002.safetensors").string()});
  CHECK(b.shard(0).n_tokens == 700);
  CHECK(b.shard(2).n_tokens == 648);
  CHECK(b.n_tokens() == 2048);
  CHECK(a.meta().raw == b.meta().raw);
  check_same(flatten(a), flatten(b));
  const nlohmann::json ja = ttu::metrics_json(a);
  CHECK(ja == ttu::metrics_json(b));
  CHECK(ja["trace"]["tokens"] == 2048);
}

TEST_CASE("a directory is read in file-name order, other files ignored", "[trace]") {
  TempDir dir("fmt-dir");
  const TraceData full = ttu::small_trace_data(30, 8, {2, 3});
  auto piece = [&](int64_t begin, int64_t n) {
    TraceData p;
    p.meta_data = full.meta_data;
    p.k = full.k;
    auto cut = [&](const std::vector<int32_t>& v, int64_t width) {
      return std::vector<int32_t>(v.begin() + begin * width, v.begin() + (begin + n) * width);
    };
    p.token_ids = cut(full.token_ids, 1);
    p.positions = cut(full.positions, 1);
    p.domain_ids = cut(full.domain_ids, 1);
    for (std::size_t l = 0; l < full.k.size(); ++l) p.experts.push_back(cut(full.experts[l], full.k[l]));
    return p;
  };
  // Written in an order different from the name order.
  write_trace_file(piece(20, 10), dir.file("c.safetensors"), DType::kI16);
  write_trace_file(piece(0, 12), dir.file("a.safetensors"), DType::kI16);
  write_trace_file(piece(12, 8), dir.file("b.safetensors"), DType::kI32);
  ttu::write_bytes(dir.file("README.txt"), "not a shard");
  ttu::fs::create_directory(dir.file("sub.safetensors.d"));

  const Trace t({dir.path()});
  CHECK(t.files() == std::vector<std::string>{dir.file("a.safetensors"), dir.file("b.safetensors"),
                                              dir.file("c.safetensors")});
  const Flat want{full.token_ids, full.positions, full.domain_ids, full.k, full.experts};
  check_same(flatten(t), want);
  CHECK(ttu::metrics_json(t) == ttu::metrics_json(full));
  // Files listed explicitly are read in the given order.
  const Trace listed({dir.file("a.safetensors"), dir.file("b.safetensors"), dir.file("c.safetensors")});
  check_same(flatten(listed), want);
  const Trace reordered({dir.file("c.safetensors"), dir.file("a.safetensors"), dir.file("b.safetensors")});
  CHECK(flatten(reordered).token_ids != want.token_ids);
}

TEST_CASE("simulator output is byte-identical for the same seed, different for another", "[trace]") {
  TempDir dir("fmt-determinism");
  SimOutput out;
  out.weights_dtype = DType::kBF16;
  out.probs_dtype = DType::kF16;
  out.path = dir.file("a.safetensors");
  simulate_to_disk(small_sim(7), out);
  out.path = dir.file("b.safetensors");
  simulate_to_disk(small_sim(7), out);
  out.path = dir.file("c.safetensors");
  simulate_to_disk(small_sim(8), out);
  const std::string a = ttu::read_bytes(dir.file("a.safetensors"));
  CHECK(a.size() > 1000);
  CHECK(a == ttu::read_bytes(dir.file("b.safetensors")));
  CHECK(a != ttu::read_bytes(dir.file("c.safetensors")));
  // Sharded runs are deterministic too.
  out.shard_tokens = 300;
  out.path = dir.file("s1");
  simulate_to_disk(small_sim(7), out);
  out.path = dir.file("s2");
  simulate_to_disk(small_sim(7), out);
  for (const char* shard : {"shard-00000.safetensors", "shard-00003.safetensors"})
    CHECK(ttu::read_bytes(dir.file(std::string("s1/") + shard)) == ttu::read_bytes(dir.file(std::string("s2/") + shard)));
}

TEST_CASE("written headers are padded so the data section starts 8-byte aligned", "[trace]") {
  TempDir dir("fmt-align");
  TraceData data = ttu::small_trace_data(5, 8, {2});
  std::set<std::size_t> unpadded_residues;
  for (int len = 0; len < 12; ++len) {  // metadata lengths covering every residue mod 8
    const std::string path = dir.file("t" + std::to_string(len) + ".safetensors");
    write_trace_file(data, path, DType::kI16, {{"pad", std::string(static_cast<std::size_t>(len), 'x')}});
    const std::string bytes = ttu::read_bytes(path);
    const uint64_t n = ttu::read_u64_le(bytes);
    INFO("metadata length " << len << ", header length " << n);
    CHECK((8 + n) % 8 == 0);
    const std::string text = bytes.substr(8, n);
    const auto j = nlohmann::json::parse(text);  // the padding is JSON whitespace
    unpadded_residues.insert((8 + j.dump().size()) % 8);
    CHECK(Trace({path}).shard(0).layers[0].expert(4, 1) == data.experts[0][9]);
  }
  CHECK(unpadded_residues.size() > 1);  // the padding really had work to do
}

TEST_CASE("tensors that are not aligned in the file still read correctly", "[trace]") {
  TempDir dir("fmt-unaligned");
  for (const char* dt : {"I16", "I32"}) {
    const ttu::RawFile raw = ttu::valid_raw_trace(dt);
    raw.write(dir.file("aligned.safetensors"));
    const nlohmann::json want = ttu::metrics_json(Trace({dir.file("aligned.safetensors")}));
    const Flat want_flat = flatten(Trace({dir.file("aligned.safetensors")}));
    for (std::size_t extra = 1; extra < 8; ++extra) {
      std::string text = raw.header.dump();
      while ((8 + text.size()) % 8 != extra) text.push_back(' ');  // data starts at 8k + extra
      const std::string path = dir.file("unaligned.safetensors");
      ttu::write_bytes(path, ttu::u64_le(text.size()) + text + raw.data);
      INFO(dt << ", data section offset mod 8 = " << extra);
      const Trace t({path});
      check_same(flatten(t), want_flat);
      CHECK(ttu::metrics_json(t) == want);
    }
  }
}

TEST_CASE("unknown extra tensors are ignored", "[trace]") {
  TempDir dir("fmt-extra");
  ttu::RawFile raw = ttu::valid_raw_trace();
  raw.write(dir.file("plain.safetensors"));
  raw.add("layers.0.router_logits", "F32", {6, 8}, std::string(6 * 8 * 4, '\x01'));
  raw.add("layers.x.experts", "I16", {1}, std::string(2, '\x7f'));
  raw.add("something_else", "F8_E4M3", {3}, std::string(3, '\0'));  // a dtype the reader does not know
  raw.add("empty", "I32", {0}, "");
  raw.write(dir.file("extra.safetensors"));
  const Trace plain({dir.file("plain.safetensors")}), extra({dir.file("extra.safetensors")});
  CHECK(extra.n_layers() == 2);
  check_same(flatten(plain), flatten(extra));
  CHECK(ttu::metrics_json(plain) == ttu::metrics_json(extra));
}

TEST_CASE("padding (-1) in any slot and K differing between layers are accepted", "[trace]") {
  TempDir dir("fmt-padding");
  TraceData data = ttu::small_trace_data(12, 8, {1, 4, 2});
  // Layer 1: token 0 unrouted, token 1 padded in front, token 2 padded in the middle.
  auto& l1 = data.experts[1];
  std::fill(l1.begin(), l1.begin() + 4, -1);
  l1[4] = -1;
  l1[10] = -1;
  int64_t valid = 0, routed = 0;
  for (int64_t t = 0; t < 12; ++t) {
    int64_t n = 0;
    for (int j = 0; j < 4; ++j) n += l1[static_cast<std::size_t>(t * 4 + j)] != -1;
    valid += n;
    routed += n > 0;
  }
  write_trace_file(data, dir.file("t.safetensors"), DType::kI16);
  const Trace t({dir.file("t.safetensors")});
  CHECK(flatten(t).k == std::vector<int64_t>{1, 4, 2});
  MetricsOptions options;
  options.threads = 1;
  const TraceMetrics m = compute_trace_metrics(t, options);
  REQUIRE(m.layers.size() == 3);
  CHECK(m.layers[1].stats.assignments == valid);
  CHECK(m.layers[1].stats.routed_tokens == routed);
  CHECK(routed < 12);
}

TEST_CASE("f16 conversion: exact, round-to-nearest-even, subnormals, inf and nan", "[trace]") {
  // Every f16 value survives decode + encode; NaNs stay NaN.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_float(static_cast<uint16_t>(h));
    const bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
    CHECK(std::isnan(f) == nan);
    if (nan)
      CHECK(std::isnan(f16_to_float(float_to_f16(f))));
    else if (float_to_f16(f) != h)
      FAIL("f16 0x" << std::hex << h << " does not round trip");
  }
  CHECK(f16_to_float(0x3c00) == 1.0f);
  CHECK(f16_to_float(0xc000) == -2.0f);
  CHECK(f16_to_float(0x7bff) == 65504.0f);
  CHECK(f16_to_float(0x0400) == std::ldexp(1.0f, -14));
  CHECK(f16_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(f16_to_float(0x03ff) == 1023 * std::ldexp(1.0f, -24));
  CHECK(std::signbit(f16_to_float(0x8000)));
  CHECK(f16_to_float(0x7c00) == std::numeric_limits<float>::infinity());
  CHECK(f16_to_float(0xfc00) == -std::numeric_limits<float>::infinity());
  // Ties go to the even neighbour; anything past the tie goes up.
  CHECK(float_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
  CHECK(float_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  CHECK(float_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3c01);
  CHECK(float_to_f16(-1.0f - std::ldexp(1.0f, -11)) == 0xbc00);
  // Subnormals and underflow.
  CHECK(float_to_f16(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(float_to_f16(std::ldexp(1.0f, -25)) == 0x0000);                          // tie to even (0)
  CHECK(float_to_f16(std::ldexp(1.0f, -25) * 1.0001f) == 0x0001);
  CHECK(float_to_f16(3 * std::ldexp(1.0f, -25)) == 0x0002);                      // tie to even (2)
  CHECK(float_to_f16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25)) == 0x0400);  // tie into the normals
  CHECK(float_to_f16(-std::ldexp(1.0f, -24)) == 0x8001);
  CHECK(float_to_f16(1e-10f) == 0x0000);
  CHECK(float_to_f16(-1e-10f) == 0x8000);
  // Overflow, infinities, NaN (including a NaN whose payload sits in the low bits only).
  CHECK(float_to_f16(65519.0f) == 0x7bff);
  CHECK(float_to_f16(65520.0f) == 0x7c00);
  CHECK(float_to_f16(1e10f) == 0x7c00);
  CHECK(float_to_f16(-std::numeric_limits<float>::infinity()) == 0xfc00);
  CHECK(std::isnan(f16_to_float(float_to_f16(std::numeric_limits<float>::quiet_NaN()))));
  uint32_t low_nan_bits = 0x7f800001u;
  float low_nan;
  std::memcpy(&low_nan, &low_nan_bits, 4);
  CHECK(std::isnan(f16_to_float(float_to_f16(low_nan))));
  // Random finite floats in range map to a nearest f16, ties to even.
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> expo(-26.0f, 16.0f);
  int bad = 0;
  for (int i = 0; i < 20000; ++i) {
    const float x = std::pow(2.0f, expo(rng)) * (i % 2 ? -1.0f : 1.0f);
    if (std::abs(x) >= 65504.0f) continue;
    const uint16_t h = float_to_f16(x);
    const double err = std::abs(static_cast<double>(f16_to_float(h)) - x);
    for (int d : {-1, 1}) {
      const auto n = static_cast<uint16_t>(h + d);
      if ((n & 0x7fff) >= 0x7c00 || ((n ^ h) & 0x8000)) continue;  // stay finite, same sign
      const double nerr = std::abs(static_cast<double>(f16_to_float(n)) - x);
      bad += nerr < err || (nerr == err && (h & 1));
    }
  }
  CHECK(bad == 0);
}

TEST_CASE("bf16 conversion: exact, round-to-nearest-even, subnormals, inf and nan", "[trace]") {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = bf16_to_float(static_cast<uint16_t>(h));
    const bool nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0;
    CHECK(std::isnan(f) == nan);
    if (nan)
      CHECK(std::isnan(bf16_to_float(float_to_bf16(f))));
    else if (float_to_bf16(f) != h)
      FAIL("bf16 0x" << std::hex << h << " does not round trip");
  }
  CHECK(bf16_to_float(0x3f80) == 1.0f);
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);       // tie to even
  CHECK(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);   // tie to even
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3f81);
  CHECK(float_to_bf16(std::ldexp(1.0f, -133)) == 0x0001);             // smallest bf16 subnormal
  CHECK(float_to_bf16(std::ldexp(1.0f, -134)) == 0x0000);             // tie to even (0)
  CHECK(float_to_bf16(3 * std::ldexp(1.0f, -134)) == 0x0002);
  CHECK(float_to_bf16(std::numeric_limits<float>::max()) == 0x7f80);  // rounds up to inf
  CHECK(float_to_bf16(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(float_to_bf16(-std::numeric_limits<float>::infinity()) == 0xff80);
  uint32_t low_nan_bits = 0x7f800001u;
  float low_nan;
  std::memcpy(&low_nan, &low_nan_bits, 4);
  CHECK(std::isnan(bf16_to_float(float_to_bf16(low_nan))));
  CHECK(std::isnan(bf16_to_float(float_to_bf16(-std::numeric_limits<float>::quiet_NaN()))));
}
