// Writes a dataset directory (docs/datagen.md, "Dataset format"): manifest.json,
// config.toml, and per split memory-mappable shards of tokens, domain ids and motif ids,
// plus documents.bin. Written through the output layer (common/safe_output.h): built under
// a temporary name beside the target, under a lock, and swapped into place when complete;
// a failed run leaves no partial dataset and loses nothing; --force replaces only a folder
// that is a moetb dataset (its manifest.json says moetb-dataset/*).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "datagen/synthetic_corpus.h"
#include "datagen/text_corpus.h"

namespace moetb {

inline constexpr const char* kDatasetFormat = "moetb-dataset/1";

struct DatasetWriteOptions {
  std::string dir;
  bool force = false;            // replace an existing moetb dataset (never any other folder)
  std::vector<std::string> inputs;  // the command's inputs (text folders, config): never written over
  std::string git_revision;      // provenance, written into the manifest
  std::string config_toml;       // the effective config, written as config.toml
  nlohmann::json config_json;    // the same, embedded in the manifest
};

// Return the manifest that was written.
nlohmann::json write_synthetic_dataset(const SyntheticCorpus& corpus, const DatasetWriteOptions& opts);
nlohmann::json write_text_dataset(const TextCorpus& corpus, const DatagenConfig& cfg, const DatasetWriteOptions& opts);

}  // namespace moetb
