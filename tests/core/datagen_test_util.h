// Shared pieces of the datagen tests: writing a dataset the way `moetb datagen` does
// (effective config and provenance included), and checking that an operation fails with
// one line holding given words.
#pragma once
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/config_binder.h"
#include "datagen/dataset_writer.h"
#include "tests/core/trace_test_util.h"

namespace dtu {

// Writes a synthetic or text dataset (by cfg.text_domains) into `dir`; returns the manifest.
inline nlohmann::json write_dataset(const moetb::DatagenConfig& cfg, const std::string& dir) {
  moetb::DatagenConfig copy = cfg;
  moetb::ConfigBinder b;
  moetb::bind_datagen_config(b, copy);
  moetb::DatasetWriteOptions o;
  o.dir = dir;
  o.git_revision = "test-revision";
  o.config_toml = b.to_toml();
  o.config_json = b.to_json();
  return moetb::is_text_dataset(cfg) ? moetb::write_text_dataset(moetb::TextCorpus(cfg), cfg, o)
                                     : moetb::write_synthetic_dataset(moetb::SyntheticCorpus(cfg), o);
}

// The message of what `f` throws ("<no error>" when nothing is thrown).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace dtu

// `expr` throws one line holding every given word.
#define CHECK_ONE_LINE_ERROR(expr, ...)                                      \
  do {                                                                       \
    const std::string msg_ = dtu::error_of([&] { expr; });                   \
    INFO("message: " << msg_);                                               \
    CHECK(msg_ != "<no error>");                                             \
    CHECK(msg_.find('\n') == std::string::npos);                             \
    for (const std::string& part_ : std::vector<std::string>{__VA_ARGS__})   \
      CHECK(ttu::contains(msg_, part_));                                     \
  } while (false)
