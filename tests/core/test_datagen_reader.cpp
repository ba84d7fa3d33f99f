// Reading datasets back (datagen/dataset.h): gather() equals the per-token accessors across
// uneven shards and both token widths; corrupted, truncated or missing files fail on open
// with one line naming the file; BatchSampler epochs are permutations, restore() continues
// the same stream, sequential order wraps. The naive-Bayes separability probe
// (dataset_stats.h) ranks disjoint > partly shared > identical domains (the last at chance).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <set>
#include <vector>

#include "common/config_binder.h"
#include "datagen/dataset.h"
#include "datagen/dataset_stats.h"
#include "datagen/dataset_writer.h"
#include "tests/core/datagen_test_util.h"
#include "tests/core/trace_test_util.h"

using namespace moetb;
using ttu::TempDir;
namespace fs = std::filesystem;

namespace {

DatagenConfig small_config() {
  DatagenConfig c;
  c.seed = 5;
  c.domains = 4;
  c.vocab_per_domain = 32;
  c.motifs_per_domain = 3;
  c.motif_rate = 0.05;
  c.doc_len_mean = 48;
  c.doc_len_min = 8;
  c.doc_len_max = 400;
  c.seq_len = 32;
  c.train_tokens = 16000;
  c.val_tokens = 4000;
  c.shard_sequences = 37;  // uneven shards
  return c;
}



}  // namespace

TEST_CASE("datagen: gather equals the per-token accessors", "[datagen]") {
  TempDir tmp("dg-gather");
  for (const char* dtype : {"u16", "u32"}) {
    DatagenConfig cfg = small_config();
    cfg.token_dtype = dtype;
    const std::string dir = tmp.file(dtype);
    dtu::write_dataset(cfg, dir);
    const Dataset ds(dir);
    INFO("token_dtype " << dtype);
    CHECK(ds.is_synthetic());
    CHECK(ds.seq_len() == 32);
    CHECK(ds.n_domains() == 4);
    CHECK(ds.n_sequences(Split::kTrain) == 500);
    CHECK(ds.n_sequences(Split::kVal) == 125);
    CHECK(ds.entropy_rate_bits(2).has_value());
    CHECK(*ds.entropy_rate_bits(2) == ds.manifest()["domains"][2]["entropy_rate_bits"].get<double>());
    for (Split split : {Split::kTrain, Split::kVal}) {
      // Every sequence once, in reverse (shard boundaries at multiples of 37), then a few repeats.
      std::vector<int64_t> seqs(static_cast<std::size_t>(ds.n_sequences(split)));
      std::iota(seqs.rbegin(), seqs.rend(), 0);
      seqs.insert(seqs.end(), {36, 37, 0, 36});
      const std::size_t n = seqs.size() * 32;
      std::vector<int64_t> tok(n), dom(n), mot(n), tok_only(n);
      ds.gather(split, seqs, tok.data(), dom.data(), mot.data());
      ds.gather(split, seqs, tok_only.data(), nullptr, nullptr);
      CHECK(tok_only == tok);
      int64_t mismatches = 0, motif_tokens = 0;
      for (std::size_t r = 0; r < seqs.size(); ++r)
        for (int64_t i = 0; i < 32; ++i) {
          const std::size_t at = r * 32 + static_cast<std::size_t>(i);
          mismatches += tok[at] != ds.token(split, seqs[r], i);
          mismatches += dom[at] != ds.domain(split, seqs[r], i);
          mismatches += mot[at] != ds.motif(split, seqs[r], i);
          mismatches += tok[at] < 0 || tok[at] >= ds.vocab_size();
          motif_tokens += mot[at] >= 0;
        }
      CHECK(mismatches == 0);
      CHECK(motif_tokens > 0);
      CHECK_THROWS_AS(ds.gather(split, {ds.n_sequences(split)}, tok.data(), nullptr, nullptr), std::out_of_range);
      CHECK_THROWS_AS(ds.token(split, -1, 0), std::out_of_range);
    }
  }
}

TEST_CASE("datagen: corrupt, truncated or missing dataset files fail on open naming the file", "[datagen]") {
  TempDir tmp("dg-corrupt");
  const std::string dir = tmp.file("ds");
  dtu::write_dataset(small_config(), dir);
  REQUIRE(dtu::error_of([&] { const Dataset ds_(dir); }) == "<no error>");
  const int64_t vocab = Dataset(dir).vocab_size();
  REQUIRE(vocab < 65535);
  const std::string tokens = (fs::path(dir) / "train" / "shard-00002.tokens").string();
  const std::string domains = (fs::path(dir) / "val" / "shard-00001.domains").string();
  const std::string docs = (fs::path(dir) / "val" / "documents.bin").string();
  const std::string manifest = (fs::path(dir) / "manifest.json").string();
  const std::string tok_bytes = ttu::read_bytes(tokens), dom_bytes = ttu::read_bytes(domains);
  const std::string doc_bytes = ttu::read_bytes(docs), man_bytes = ttu::read_bytes(manifest);

  for (uint16_t bad : {static_cast<uint16_t>(vocab), static_cast<uint16_t>(0xffff)}) {  // token >= vocab_size
    std::string b = tok_bytes;
    std::memcpy(&b[2 * 777], &bad, 2);
    ttu::write_bytes(tokens, b);
    CHECK_ONE_LINE_ERROR(const Dataset ds_(dir), tokens, "vocab_size", std::to_string(bad));
  }
  ttu::write_bytes(tokens, tok_bytes.substr(0, tok_bytes.size() - 2));  // one token short
  CHECK_ONE_LINE_ERROR(const Dataset ds_(dir), tokens, "bytes");
  ttu::write_bytes(tokens, tok_bytes + "xy");  // one token long
  CHECK_ONE_LINE_ERROR(const Dataset ds_(dir), tokens, "bytes");
  ttu::write_bytes(tokens, tok_bytes);
  REQUIRE(dtu::error_of([&] { const Dataset ds_(dir); }) == "<no error>");

  std::string d = dom_bytes;
  d[5] = 4;  // domain ids are 0..3
  ttu::write_bytes(domains, d);
  CHECK_ONE_LINE_ERROR(const Dataset ds_(dir), domains, "domain");
  ttu::write_bytes(domains, dom_bytes);

  const std::string motifs = (fs::path(dir) / "train" / "shard-00000.motifs").string();
  const std::string mot_bytes = ttu::read_bytes(motifs);
  const int64_t n_motif_ids = small_config().domains * small_config().motifs_per_domain;
  for (int16_t bad : {static_cast<int16_t>(-2), static_cast<int16_t>(n_motif_ids)}) {  // ids are -1 .. D*M-1
    std::string m = mot_bytes;
    std::memcpy(&m[2 * 11], &bad, 2);
    ttu::write_bytes(motifs, m);
    CHECK_ONE_LINE_ERROR(const Dataset ds_(dir), motifs, "motif id", std::to_string(bad));
  }
  ttu::write_bytes(motifs, mot_bytes);

  ttu::write_bytes(docs, doc_bytes.substr(0, doc_bytes.size() - 3));
  CHECK_ONE_LINE_ERROR(const Dataset ds_(dir), docs, "16");
  std::string moved = doc_bytes;  // a document beyond the split's end
  const uint64_t far = uint64_t{1} << 40;
  std::memcpy(&moved[0], &far, 8);
  ttu::write_bytes(docs, moved);
  CHECK_ONE_LINE_ERROR(const Dataset ds_(dir), docs, "outside");
  ttu::write_bytes(docs, doc_bytes);

  ttu::write_bytes(manifest, man_bytes.substr(0, man_bytes.size() / 2));
  CHECK_ONE_LINE_ERROR(const Dataset ds_(dir), manifest, "JSON");
  ttu::write_bytes(manifest, man_bytes);

  fs::remove(domains);
  CHECK_ONE_LINE_ERROR(const Dataset ds_(dir), domains);
  CHECK_ONE_LINE_ERROR(const Dataset ds_(tmp.file("nothing-here")), "nothing-here", "manifest.json");
}

TEST_CASE("datagen: BatchSampler epochs, restore and sequential order", "[datagen]") {
  const int64_t n = 23, batch = 5;
  BatchSampler a(n, batch, true, 99);
  std::vector<int64_t> stream;
  for (int k = 0; k < 20; ++k) {  // 100 draws: 4 whole epochs and a part
    const auto b = a.next();
    REQUIRE(b.size() == static_cast<std::size_t>(batch));
    stream.insert(stream.end(), b.begin(), b.end());
  }
  std::vector<std::vector<int64_t>> epochs;
  for (int e = 0; e < 4; ++e) {
    std::vector<int64_t> ep(stream.begin() + e * n, stream.begin() + (e + 1) * n), sorted = ep;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> all(static_cast<std::size_t>(n));
    std::iota(all.begin(), all.end(), 0);
    CHECK(sorted == all);  // a permutation of every sequence
    epochs.push_back(ep);
  }
  CHECK(epochs[0] != epochs[1]);  // a fresh order per epoch
  CHECK(epochs[1] != epochs[2]);
  CHECK(epochs[0] != std::vector<int64_t>(epochs[0].size(), 0));
  CHECK(a.state().epoch == 4);
  CHECK(a.state().position == 100 - 4 * n);
  // Same seed: same stream. Restoring a saved state continues it exactly.
  BatchSampler b(n, batch, true, 99), c(n, batch, true, 99);
  for (int k = 0; k < 7; ++k) b.next();
  const BatchSampler::State saved = b.state();
  std::vector<std::vector<int64_t>> after_b, after_c;
  for (int k = 0; k < 9; ++k) after_b.push_back(b.next());
  c.restore(saved);
  for (int k = 0; k < 9; ++k) after_c.push_back(c.next());
  CHECK(after_b == after_c);
  CHECK(after_b[0] == std::vector<int64_t>(stream.begin() + 35, stream.begin() + 40));
  BatchSampler other(n, batch, true, 100);
  CHECK(other.next() != std::vector<int64_t>(stream.begin(), stream.begin() + batch));
  BatchSampler::State bad;
  bad.position = n + 1;
  CHECK_THROWS_AS(c.restore(bad), std::invalid_argument);
  CHECK_THROWS_AS(BatchSampler(0, 4, true, 1), std::invalid_argument);
  CHECK_THROWS_AS(BatchSampler(4, 0, false, 1), std::invalid_argument);

  BatchSampler seq(5, 3, false, 1);
  CHECK(seq.next() == std::vector<int64_t>{0, 1, 2});
  CHECK(seq.next() == std::vector<int64_t>{3, 4, 0});
  CHECK(seq.next() == std::vector<int64_t>{1, 2, 3});
  CHECK(seq.state().epoch == 1);
}

TEST_CASE("datagen: naive-Bayes separability follows the vocabulary knobs", "[datagen]") {
  TempDir tmp("dg-stats");
  auto stats_for = [&](double shared, double mix, int64_t motifs, const std::string& name) {
    DatagenConfig cfg = small_config();
    cfg.shared_vocab = shared;
    cfg.common_mix = mix;
    cfg.motifs_per_domain = motifs;
    cfg.motif_rate = motifs > 0 ? 0.03 : 0.0;
    cfg.doc_len_mean = 64;
    cfg.seq_len = 64;
    cfg.shard_sequences = 8192;
    cfg.train_tokens = 100000;
    cfg.val_tokens = 65536;
    dtu::write_dataset(cfg, tmp.file(name));
    const Dataset ds(tmp.file(name));
    const DatasetStats st = compute_dataset_stats(ds);
    REQUIRE(st.domains.size() == 4);
    for (int64_t d = 0; d < 4; ++d) {  // the counts agree with the manifest
      const auto& md = ds.manifest()["domains"][d];
      CHECK(st.domains[d].name == md["name"].get<std::string>());
      CHECK(st.domains[d].tokens[0] == md["tokens"]["train"].get<int64_t>());
      CHECK(st.domains[d].documents[1] == md["documents"]["val"].get<int64_t>());
      CHECK(st.domains[d].entropy_rate_bits == md["entropy_rate_bits"].get<double>());
    }
    const nlohmann::json j = dataset_stats_json(st);
    CHECK(j["nb_accuracy_token"].get<double>() == st.nb_accuracy_token);
    const std::string table = dataset_stats_table(st);
    for (const auto& d : st.domains) CHECK(ttu::contains(table, d.name));
    return std::make_pair(st, static_cast<double>(ds.documents(Split::kVal).size()));
  };
  const auto [disjoint, n_disjoint] = stats_for(0.0, 0.0, 0, "disjoint");
  const auto [same, n_docs] = stats_for(1.0, 1.0, 0, "same");
  const auto [partial, n_partial] = stats_for(0.25, 0.0, 3, "partial");
  INFO("1-token accuracy: disjoint " << disjoint.nb_accuracy_token << ", partial " << partial.nb_accuracy_token
                                     << ", same " << same.nb_accuracy_token << " (majority " << same.majority_baseline << ")");
  INFO("window accuracy: same " << same.nb_accuracy_window << " over " << same.n_windows << " windows, " << n_docs << " documents");
  CHECK(disjoint.nb_accuracy_token > 0.97);  // only BOS is ambiguous
  CHECK(disjoint.nb_accuracy_window > 0.99);
  // Identical domains: no classifier beats the largest class but by chance. Windows of one
  // document share its domain, so count documents, not windows, as the independent draws.
  const double tol = 5.0 * std::sqrt(0.25 / n_docs);
  CHECK(same.nb_accuracy_window < same.majority_baseline + tol);
  CHECK(same.nb_accuracy_token < same.majority_baseline + tol);
  CHECK(same.majority_baseline < 0.25 + tol);
  CHECK(partial.nb_accuracy_token < disjoint.nb_accuracy_token - 0.05);
  CHECK(partial.nb_accuracy_token > same.nb_accuracy_token + 0.2);
  // For an order-1 source without motifs the bigram plug-in sits just above the rate: the
  // (BOS, first token) pairs add at most log2(V) bits once per document.
  for (const auto& d : disjoint.domains) {
    INFO(d.name << ": rate " << *d.entropy_rate_bits << ", bigram " << d.bigram_entropy_bits);
    CHECK(d.bigram_entropy_bits > *d.entropy_rate_bits - 0.03);
    CHECK(d.bigram_entropy_bits < *d.entropy_rate_bits + 5.0 / 64.0 + 0.03);
  }
}
