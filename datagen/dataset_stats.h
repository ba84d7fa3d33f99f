// `moetb datagen --stats`: per-domain token counts, unigram entropy, the analytic entropy
// rate (synthetic) next to a bigram plug-in estimate, and separability: the validation
// accuracy of a naive-Bayes domain classifier (add-one smoothed unigram model per domain,
// trained on the train split) from 1 token and from a 16-token window inside a document.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "datagen/dataset.h"

namespace moetb {

struct DomainStats {
  std::string name;
  int64_t tokens[2] = {0, 0};     // train, val
  int64_t documents[2] = {0, 0};
  double unigram_entropy_bits = 0.0;        // plug-in, train split
  std::optional<double> entropy_rate_bits;  // analytic (synthetic only)
  double bigram_entropy_bits = 0.0;         // plug-in H(x_t | x_t-1) inside documents, train split
  double motif_token_fraction = 0.0;        // train split
  double nb_recall_token = 0.0, nb_recall_window = 0.0;  // per-domain accuracy on val
};

struct DatasetStats {
  std::vector<DomainStats> domains;
  int64_t window = 16;
  double nb_accuracy_token = 0.0, nb_accuracy_window = 0.0;
  int64_t n_windows = 0;
  double majority_baseline = 0.0;  // accuracy of always guessing the largest domain (val)
};

DatasetStats compute_dataset_stats(const Dataset& data, int64_t window = 16);
std::string dataset_stats_table(const DatasetStats& stats);
nlohmann::json dataset_stats_json(const DatasetStats& stats);

}  // namespace moetb
