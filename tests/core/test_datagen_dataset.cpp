// Synthetic datasets as written by write_synthetic_dataset: byte-identical for one config
// and seed; the token layout knobs (disjoint / one vocabulary / identical domains, u16
// limit); per-token ground truth (motif occurrences equal the manifest's motifs, motif ids
// of the token's domain, documents tiling the split and opening with BOS, one domain per
// sequence with packing = "domain"); document length laws and domain shares.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>
#include <vector>

#include "common/config_binder.h"
#include "datagen/dataset.h"
#include "datagen/dataset_writer.h"
#include "tests/core/datagen_test_util.h"
#include "tests/core/trace_test_util.h"

using namespace moetb;
using ttu::TempDir;
namespace fs = std::filesystem;

namespace {

DatagenConfig small_config() {
  DatagenConfig c;
  c.seed = 3;
  c.domains = 4;
  c.vocab_per_domain = 32;
  c.motifs_per_domain = 4;
  c.motif_rate = 0.05;
  c.doc_len_mean = 64;
  c.doc_len_min = 8;
  c.doc_len_max = 512;
  c.seq_len = 64;
  c.train_tokens = 40000;
  c.val_tokens = 8192;
  c.shard_sequences = 100;
  return c;
}


struct Stream {
  std::vector<int64_t> tok, dom, mot;
};

Stream read_stream(const Dataset& ds, Split split) {
  const int64_t n = ds.n_sequences(split), S = ds.seq_len();
  std::vector<int64_t> all(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[i] = i;
  Stream s;
  s.tok.resize(static_cast<std::size_t>(n * S));
  s.dom.resize(s.tok.size());
  s.mot.resize(s.tok.size());
  ds.gather(split, all, s.tok.data(), s.dom.data(), s.mot.data());
  return s;
}

// Relative path -> bytes of every file under dir.
std::map<std::string, std::string> all_files(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).generic_string()] = ttu::read_bytes(e.path().string());
  return out;
}

// Rows as distributions: state -> {symbol -> (next state, p)} over outcomes with p > 0.
std::vector<std::map<uint32_t, std::pair<uint32_t, double>>> rows_of(const MarkovSource& src) {
  std::vector<std::map<uint32_t, std::pair<uint32_t, double>>> rows(static_cast<std::size_t>(src.n_states()));
  for (uint32_t s = 0; s < rows.size(); ++s)
    for (uint32_t i = src.row_begin(s); i < src.row_end(s); ++i)
      if (src.probability(i) > 0.0) rows[s][src.outcome(i).symbol] = {src.outcome(i).next_state, src.probability(i)};
  return rows;
}

}  // namespace

TEST_CASE("datagen: one config and seed give byte-identical synthetic datasets", "[datagen]") {
  TempDir tmp("dg-det");
  const DatagenConfig cfg = small_config();
  const nlohmann::json m = dtu::write_dataset(cfg, tmp.file("a"));
  dtu::write_dataset(cfg, tmp.file("b"));
  const auto a = all_files(tmp.file("a")), b = all_files(tmp.file("b"));
  REQUIRE(a.size() > 8);
  CHECK(a.count("manifest.json") == 1);
  CHECK(a.count("config.toml") == 1);
  CHECK(a.count("train/shard-00000.tokens") == 1);
  CHECK(a.count("train/shard-00006.tokens") == 1);  // 625 sequences in shards of 100
  CHECK(a.count("val/documents.bin") == 1);
  for (const auto& [name, bytes] : a) {
    INFO(name);
    REQUIRE(b.count(name) == 1);
    CHECK(b.at(name) == bytes);
  }
  CHECK(b.size() == a.size());
  CHECK(tmp.entries() == std::vector<std::string>{"a", "b"});  // no temporary directories left
  // The manifest adds up.
  const int64_t n_train = (cfg.train_tokens + cfg.seq_len - 1) / cfg.seq_len;
  CHECK(m["splits"]["train"]["n_sequences"] == n_train);
  CHECK(m["splits"]["train"]["n_tokens"] == n_train * cfg.seq_len);
  int64_t per_domain = 0;
  for (const auto& d : m["domains"]) per_domain += d["tokens"]["train"].get<int64_t>();
  CHECK(per_domain == n_train * cfg.seq_len);
  CHECK(m["config"]["seed"] == cfg.seed);

  DatagenConfig other = cfg;
  other.seed = 4;
  dtu::write_dataset(other, tmp.file("c"));
  const auto c = all_files(tmp.file("c"));
  CHECK(c.at("train/shard-00000.tokens") != a.at("train/shard-00000.tokens"));
  CHECK(c.at("val/shard-00000.tokens") != a.at("val/shard-00000.tokens"));
  CHECK(c.at("train/shard-00000.tokens").size() == a.at("train/shard-00000.tokens").size());
  // The writer refuses an existing directory without force and replaces it with force.
  DatasetWriteOptions o;
  o.dir = tmp.file("a");
  CHECK_THROWS_WITH(write_synthetic_dataset(SyntheticCorpus(other), o), Catch::Contains("already exists"));
  CHECK(all_files(tmp.file("a")) == a);
  o.force = true;
  write_synthetic_dataset(SyntheticCorpus(other), o);
  CHECK(all_files(tmp.file("a")).at("train/shard-00000.tokens") == c.at("train/shard-00000.tokens"));
  CHECK(tmp.entries() == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("datagen: shared_vocab 0 gives disjoint domains and 1 one vocabulary", "[datagen]") {
  TempDir tmp("dg-layout");
  for (double shared : {0.0, 1.0}) {
    DatagenConfig cfg = small_config();
    cfg.shared_vocab = shared;
    cfg.domains = 3;
    cfg.vocab_per_domain = 16;
    const std::string dir = tmp.file(shared == 0.0 ? "disjoint" : "one");
    dtu::write_dataset(cfg, dir);
    const Dataset ds(dir);
    const TokenLayout t = make_token_layout(cfg);
    CHECK(ds.vocab_size() == t.vocab_size);
    CHECK(ds.bos_token() == t.vocab_size - 1);
    CHECK(t.vocab_size == (shared == 0.0 ? 3 * 16 : 16) + 3 * 4 + 1);
    const Stream s = read_stream(ds, Split::kTrain);
    std::vector<std::set<int64_t>> free(3), markers(3);
    for (std::size_t i = 0; i < s.tok.size(); ++i) {
      if (s.tok[i] == ds.bos_token()) continue;
      (s.tok[i] >= t.marker_base ? markers : free)[s.dom[i]].insert(s.tok[i]);
    }
    for (int64_t d = 0; d < 3; ++d) {
      INFO("shared " << shared << ", domain " << d);
      CHECK(free[d].size() == 16);  // every free token occurs with this much data
      CHECK(markers[d].size() == 4);
      for (int64_t x : markers[d]) CHECK((x - t.marker_base) / 4 == d);
      if (shared == 1.0) {
        CHECK(*free[d].begin() == 0);
        CHECK(*free[d].rbegin() == 15);
      }
      for (int64_t e = 0; e < d; ++e) {
        std::vector<int64_t> both;
        std::set_intersection(free[d].begin(), free[d].end(), free[e].begin(), free[e].end(), std::back_inserter(both));
        CHECK(both.size() == (shared == 0.0 ? 0u : 16u));
      }
    }
  }
}

TEST_CASE("datagen: common_mix 1 with one vocabulary makes every domain the same source", "[datagen]") {
  DatagenConfig cfg = small_config();
  cfg.shared_vocab = 1.0;
  cfg.common_mix = 1.0;
  cfg.motifs_per_domain = 0;
  cfg.motif_rate = 0.0;
  const SyntheticCorpus same(cfg);
  for (int64_t d = 1; d < same.n_domains(); ++d) {
    CHECK(rows_of(same.source(d)) == rows_of(same.source(0)));
    CHECK(same.source(d).entropy_rate_bits() == same.source(0).entropy_rate_bits());
    CHECK(same.layout().symbol_to_token[d] == same.layout().symbol_to_token[0]);
  }
  cfg.common_mix = 0.5;  // control: a partial mix keeps the domains apart
  const SyntheticCorpus mixed(cfg);
  CHECK(rows_of(mixed.source(1)) != rows_of(mixed.source(0)));
}

TEST_CASE("datagen: a vocabulary too large for u16 is an error naming token_dtype", "[datagen]") {
  DatagenConfig cfg = small_config();
  cfg.domains = 2;
  cfg.motifs_per_domain = 0;
  cfg.motif_rate = 0.0;
  cfg.shared_vocab = 0.0;
  cfg.vocab_per_domain = 32767;  // 2 * 32767 + BOS = 65535 ids: fits
  CHECK(make_token_layout(cfg).vocab_size == 65535);
  cfg.vocab_per_domain = 32768;  // 65537 ids
  CHECK_THROWS_WITH(make_token_layout(cfg), Catch::Contains("token_dtype") && Catch::Contains("65537"));
  CHECK_THROWS_WITH(SyntheticCorpus(cfg), Catch::Contains("token_dtype"));
  cfg.token_dtype = "u32";
  CHECK(make_token_layout(cfg).vocab_size == 65537);
}

namespace {

// Checks the per-token ground truth of one split against the manifest: documents tile the
// stream and open with BOS; motif ids belong to the token's domain; every motif occurrence
// is the motif's token list (a suffix only where a document starts inside a motif, as its
// start state is drawn from the stationary distribution; a prefix only where it is cut at
// the document's end).
struct Occurrences {
  int64_t complete = 0, cut_at_end = 0, started_inside = 0;
};
Occurrences check_ground_truth(const Dataset& ds, Split split, int64_t M) {
  const nlohmann::json& m = ds.manifest();
  const int64_t marker_base = m["layout"]["marker_base"].get<int64_t>();
  const Stream s = read_stream(ds, split);
  const auto& docs = ds.documents(split);
  REQUIRE(!docs.empty());
  CHECK(docs.front().start == 0);
  CHECK(docs.back().start + docs.back().length == s.tok.size());
  Occurrences seen;
  int64_t bad_tiles = 0, bad_tokens = 0;
  for (std::size_t k = 0; k < docs.size(); ++k) {
    const DocumentRecord& d = docs[k];
    if (k + 1 < docs.size() && d.start + d.length != docs[k + 1].start) ++bad_tiles;
    const auto b = static_cast<std::size_t>(d.start), e = b + d.length;
    if (s.tok[b] != ds.bos_token() || s.mot[b] != -1) ++bad_tokens;
    for (std::size_t i = b; i < e; ++i)
      if (s.dom[i] != d.domain) ++bad_tokens;
    for (std::size_t i = b + 1; i < e;) {
      const int64_t id = s.mot[i];
      if (id < 0) {
        if (s.tok[i] >= marker_base && s.tok[i] != ds.bos_token()) ++bad_tokens;  // a marker outside a motif
        ++i;
        continue;
      }
      if (id / M != d.domain) ++bad_tokens;
      const auto motif = m["domains"][d.domain]["motifs"][id % M].get<std::vector<int64_t>>();
      // The occurrence: from here while the id stays and no new marker starts.
      std::size_t j = i + 1;
      while (j < e && s.mot[j] == id && s.tok[j] != motif[0]) ++j;
      const std::vector<int64_t> occ(s.tok.begin() + static_cast<std::ptrdiff_t>(i), s.tok.begin() + static_cast<std::ptrdiff_t>(j));
      const bool at_start = i == b + 1, at_end = j == e;
      bool ok;
      if (occ[0] == motif[0]) {  // opens with its marker: the whole motif, or a prefix cut by the document's end
        ok = occ.size() == motif.size() || (at_end && occ.size() < motif.size());
        ok = ok && std::equal(occ.begin(), occ.end(), motif.begin());
        seen.complete += occ.size() == motif.size();
        seen.cut_at_end += occ.size() < motif.size();
      } else {  // no marker: only the document's first token may start inside a motif
        ok = at_start && occ.size() < motif.size() &&
             (std::equal(occ.begin(), occ.end(), motif.end() - static_cast<std::ptrdiff_t>(occ.size())) ||
              (at_end && std::search(motif.begin() + 1, motif.end(), occ.begin(), occ.end()) != motif.end()));
        seen.started_inside += 1;
      }
      if (!ok) {
        ++bad_tokens;
        INFO("occurrence at " << i << " of motif " << id << " (document at " << b << ", length " << d.length << ")");
        CHECK(occ == motif);
      }
      i = j;
    }
  }
  CHECK(bad_tiles == 0);
  CHECK(bad_tokens == 0);
  return seen;
}

}  // namespace

TEST_CASE("datagen: motif ids, documents and domains are exact ground truth", "[datagen]") {
  TempDir tmp("dg-truth");
  DatagenConfig cfg = small_config();
  cfg.motif_rate = 0.1;
  cfg.motifs_per_domain = 5;
  for (const char* packing : {"packed", "domain"}) {
    cfg.packing = packing;
    const std::string dir = tmp.file(packing);
    dtu::write_dataset(cfg, dir);
    const Dataset ds(dir);
    INFO("packing " << packing);
    for (Split split : {Split::kTrain, Split::kVal}) {
      const Occurrences o = check_ground_truth(ds, split, 5);
      CHECK(o.complete > 50);
      if (split == Split::kTrain) {  // ~30% of the stationary mass sits inside motifs
        CHECK(o.started_inside > 0);
        CHECK(o.cut_at_end > 0);
      }
    }
    if (cfg.packing == "domain") {  // every sequence holds one domain, and documents never cross a sequence
      const Stream s = read_stream(ds, Split::kTrain);
      int64_t mixed = 0;
      for (std::size_t q = 0; q < s.dom.size(); q += 64)
        for (std::size_t i = q; i < q + 64; ++i) mixed += s.dom[i] != s.dom[q];
      CHECK(mixed == 0);
      for (const auto& d : ds.documents(Split::kTrain)) CHECK(d.start / 64 == (d.start + d.length - 1) / 64);
    } else {  // packed: some sequences do change domain at a document boundary
      const Stream s = read_stream(ds, Split::kTrain);
      int64_t changes = 0;
      for (std::size_t i = 1; i < s.dom.size(); ++i) changes += s.dom[i] != s.dom[i - 1] && i % 64 != 0;
      CHECK(changes > 10);
    }
  }
}

namespace {

std::vector<int64_t> complete_lengths(const Dataset& ds) {  // every document but the last (cut at the split end)
  std::vector<int64_t> out;
  const auto& docs = ds.documents(Split::kTrain);
  for (std::size_t k = 0; k + 1 < docs.size(); ++k) out.push_back(docs[k].length);
  return out;
}

}  // namespace

TEST_CASE("datagen: document lengths follow the fixed and geometric laws", "[datagen]") {
  TempDir tmp("dg-len");
  DatagenConfig cfg = small_config();
  cfg.train_tokens = 120000;
  cfg.doc_len_dist = "fixed";
  cfg.doc_len_mean = 50;
  dtu::write_dataset(cfg, tmp.file("fixed"));
  const std::vector<int64_t> fixed = complete_lengths(Dataset(tmp.file("fixed")));
  CHECK(fixed.size() == 120000 / 50 - 1);
  CHECK(std::count(fixed.begin(), fixed.end(), 50) == static_cast<std::ptrdiff_t>(fixed.size()));

  cfg.doc_len_dist = "geometric";
  for (int64_t max : {4000, 60}) {  // the cap far out, and a cap that binds
    cfg.doc_len_min = 10;
    cfg.doc_len_mean = 40;
    cfg.doc_len_max = max;
    const std::string dir = tmp.file("geo" + std::to_string(max));
    dtu::write_dataset(cfg, dir);
    const std::vector<int64_t> len = complete_lengths(Dataset(dir));
    REQUIRE(len.size() > 1000);
    // min + G with P(G >= k) = q^k, q = m / (m + 1), capped at max: E = min + sum_{k=1}^{cap} q^k.
    const double extra = 30.0, q = extra / (extra + 1.0), cap = static_cast<double>(max - 10);
    const double expected = 10.0 + q * (1.0 - std::pow(q, cap)) / (1.0 - q);
    double mean = 0.0, var = 0.0;
    for (int64_t x : len) mean += static_cast<double>(x) / static_cast<double>(len.size());
    for (int64_t x : len) var += (static_cast<double>(x) - mean) * (static_cast<double>(x) - mean) / static_cast<double>(len.size() - 1);
    INFO("max " << max << ": mean " << mean << ", expected " << expected << ", n " << len.size());
    CHECK(*std::min_element(len.begin(), len.end()) == 10);
    CHECK(*std::max_element(len.begin(), len.end()) <= max);
    CHECK(std::fabs(mean - expected) < 5.0 * std::sqrt(var / static_cast<double>(len.size())));
    const double at_min = static_cast<double>(std::count(len.begin(), len.end(), 10)) / static_cast<double>(len.size());
    CHECK(std::fabs(at_min - (1.0 - q)) < 5.0 * std::sqrt((1.0 - q) * q / static_cast<double>(len.size())));
    if (max == 60) {
      const double at_cap = static_cast<double>(std::count(len.begin(), len.end(), 60)) / static_cast<double>(len.size());
      CHECK(std::fabs(at_cap - std::pow(q, cap)) < 5.0 * std::sqrt(std::pow(q, cap) / static_cast<double>(len.size())));
    }
  }
}

TEST_CASE("datagen: documents and one-domain sequences follow the shares", "[datagen]") {
  TempDir tmp("dg-shares");
  DatagenConfig cfg = small_config();
  cfg.train_tokens = 200000;
  cfg.doc_len_mean = 32;
  cfg.shares = {0.55, 0.25, 0.0, 0.2};
  for (const char* packing : {"packed", "domain"}) {
    cfg.packing = packing;
    const std::string dir = tmp.file(packing);
    dtu::write_dataset(cfg, dir);
    const Dataset ds(dir);
    std::vector<double> n(4, 0.0);
    double total = 0.0;
    if (cfg.packing == "packed") {  // one draw per document
      for (const auto& d : ds.documents(Split::kTrain)) n[d.domain] += 1.0;
    } else {  // one draw per sequence
      const Stream s = read_stream(ds, Split::kTrain);
      for (std::size_t q = 0; q < s.dom.size(); q += 64) n[static_cast<std::size_t>(s.dom[q])] += 1.0;
    }
    for (double x : n) total += x;
    REQUIRE(total > 1000);
    CHECK(n[2] == 0.0);
    for (std::size_t d = 0; d < 4; ++d) {
      const double p = cfg.shares[d];
      INFO(packing << ": domain " << d << " has " << n[d] << " of " << total);
      CHECK(std::fabs(n[d] / total - p) <= 5.0 * std::sqrt(p * (1.0 - p) / total));
    }
    CHECK(ds.manifest()["domains"][2]["share"] == 0.0);
    CHECK(ds.manifest()["domains"][0]["share"].get<double>() == Approx(0.55));
  }
}
