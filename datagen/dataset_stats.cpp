// Dataset statistics and the naive-Bayes separability probe (dataset_stats.h).
#include "datagen/dataset_stats.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <unordered_map>

namespace moetb {
namespace {

double plug_in_entropy_bits(const std::vector<int64_t>& counts) {
  int64_t n = 0;
  for (int64_t c : counts) n += c;
  double h = 0.0;
  for (int64_t c : counts)
    if (c > 0) {
      const double p = static_cast<double>(c) / static_cast<double>(n);
      h -= p * std::log2(p);
    }
  return h;
}

}  // namespace

DatasetStats compute_dataset_stats(const Dataset& data, int64_t window) {
  const int64_t D = data.n_domains(), V = data.vocab_size(), S = data.seq_len();
  if (V * D > (int64_t{1} << 26)) throw std::invalid_argument("--stats: vocabulary x domains too large for the count tables");
  DatasetStats st;
  st.window = window;
  st.domains.resize(D);
  std::vector<std::vector<int64_t>> unigram(D, std::vector<int64_t>(V, 0));
  std::vector<std::unordered_map<uint64_t, int64_t>> bigram(D);
  std::vector<int64_t> motif_tokens(D, 0);
  for (int64_t d = 0; d < D; ++d) {
    st.domains[d].name = data.domain_names()[d];
    st.domains[d].entropy_rate_bits = data.entropy_rate_bits(d);
  }
  std::vector<int64_t> tok(S), dom(S), mot(S);
  for (int s = 0; s < 2; ++s) {
    const auto split = static_cast<Split>(s);
    for (const auto& doc : data.documents(split)) st.domains[doc.domain].documents[s] += 1;
    for (int64_t q = 0; q < data.n_sequences(split); ++q) {
      data.gather(split, {q}, tok.data(), dom.data(), mot.data());
      for (int64_t i = 0; i < S; ++i) {
        st.domains[dom[i]].tokens[s] += 1;
        if (s != 0) continue;
        unigram[dom[i]][tok[i]] += 1;
        motif_tokens[dom[i]] += mot[i] >= 0;
      }
    }
  }
  // Bigram pairs inside each train document (documents may span sequences).
  for (const auto& doc : data.documents(Split::kTrain)) {
    int64_t prev = -1;
    for (uint64_t p = doc.start; p < doc.start + doc.length; ++p) {
      const auto t = static_cast<int64_t>(data.token(Split::kTrain, static_cast<int64_t>(p) / S, static_cast<int64_t>(p) % S));
      if (prev >= 0) bigram[doc.domain][static_cast<uint64_t>(prev) * static_cast<uint64_t>(V) + static_cast<uint64_t>(t)] += 1;
      prev = t;
    }
  }
  std::vector<std::vector<double>> log_p(D, std::vector<double>(V));  // add-one smoothed log p(token | domain)
  std::vector<double> log_prior(D);
  int64_t train_total = 0;
  for (int64_t d = 0; d < D; ++d) train_total += st.domains[d].tokens[0];
  for (int64_t d = 0; d < D; ++d) {
    DomainStats& ds = st.domains[d];
    const int64_t n = ds.tokens[0];
    ds.unigram_entropy_bits = plug_in_entropy_bits(unigram[d]);
    ds.motif_token_fraction = n > 0 ? static_cast<double>(motif_tokens[d]) / static_cast<double>(n) : 0.0;
    // H(X_t | X_t-1) = H(pairs) - H(first of pair)
    std::vector<int64_t> pairs, firsts(V, 0);
    for (const auto& [key, c] : bigram[d]) {
      pairs.push_back(c);
      firsts[static_cast<int64_t>(key / static_cast<uint64_t>(V))] += c;
    }
    ds.bigram_entropy_bits = plug_in_entropy_bits(pairs) - plug_in_entropy_bits(firsts);
    log_prior[d] = n > 0 ? std::log(static_cast<double>(n) / static_cast<double>(train_total)) : -1e300;
    for (int64_t t = 0; t < V; ++t)
      log_p[d][t] = std::log((static_cast<double>(unigram[d][t]) + 1.0) / (static_cast<double>(n) + static_cast<double>(V)));
  }
  auto classify = [&](const std::vector<double>& score) {
    int64_t best = 0;
    for (int64_t d = 1; d < D; ++d)
      if (score[d] > score[best]) best = d;
    return best;
  };
  // 1-token and window probes over the validation split.
  std::vector<int64_t> correct_tok(D, 0), seen_tok(D, 0), correct_win(D, 0), seen_win(D, 0);
  std::vector<double> score(D), acc(D);
  for (const auto& doc : data.documents(Split::kVal)) {
    std::fill(acc.begin(), acc.end(), 0.0);
    int64_t in_window = 0;
    for (uint64_t p = doc.start; p < doc.start + doc.length; ++p) {
      const auto t = data.token(Split::kVal, static_cast<int64_t>(p) / S, static_cast<int64_t>(p) % S);
      for (int64_t d = 0; d < D; ++d) {
        score[d] = log_prior[d] + log_p[d][t];
        acc[d] += log_p[d][t];
      }
      seen_tok[doc.domain] += 1;
      correct_tok[doc.domain] += classify(score) == doc.domain;
      if (++in_window == window) {  // non-overlapping windows inside the document
        for (int64_t d = 0; d < D; ++d) acc[d] += log_prior[d];
        seen_win[doc.domain] += 1;
        correct_win[doc.domain] += classify(acc) == doc.domain;
        std::fill(acc.begin(), acc.end(), 0.0);
        in_window = 0;
      }
    }
  }
  int64_t ct = 0, nt = 0, cw = 0, nw = 0, largest = 0;
  for (int64_t d = 0; d < D; ++d) {
    DomainStats& ds = st.domains[d];
    ds.nb_recall_token = seen_tok[d] ? static_cast<double>(correct_tok[d]) / static_cast<double>(seen_tok[d]) : 0.0;
    ds.nb_recall_window = seen_win[d] ? static_cast<double>(correct_win[d]) / static_cast<double>(seen_win[d]) : 0.0;
    ct += correct_tok[d], nt += seen_tok[d], cw += correct_win[d], nw += seen_win[d];
    largest = std::max(largest, seen_tok[d]);
  }
  st.nb_accuracy_token = nt ? static_cast<double>(ct) / static_cast<double>(nt) : 0.0;
  st.nb_accuracy_window = nw ? static_cast<double>(cw) / static_cast<double>(nw) : 0.0;
  st.n_windows = nw;
  st.majority_baseline = nt ? static_cast<double>(largest) / static_cast<double>(nt) : 0.0;
  return st;
}

std::string dataset_stats_table(const DatasetStats& st) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-14s %11s %9s %7s %8s %8s %8s %7s %7s %7s\n", "domain", "train_tok", "val_tok", "docs",
                "H_unigr", "H_rate", "H_bigr", "motif%", "NB@1", "NB@win");
  out += line;
  for (const auto& d : st.domains) {
    char rate[16] = "-";
    if (d.entropy_rate_bits) std::snprintf(rate, sizeof rate, "%.4f", *d.entropy_rate_bits);
    std::snprintf(line, sizeof line, "%-14.14s %11lld %9lld %7lld %8.4f %8s %8.4f %7.2f %7.3f %7.3f\n", d.name.c_str(),
                  static_cast<long long>(d.tokens[0]), static_cast<long long>(d.tokens[1]),
                  static_cast<long long>(d.documents[0]), d.unigram_entropy_bits, rate, d.bigram_entropy_bits,
                  100.0 * d.motif_token_fraction, d.nb_recall_token, d.nb_recall_window);
    out += line;
  }
  std::snprintf(line, sizeof line,
                "separability (naive Bayes on val): 1 token %.3f, %lld-token window %.3f (%lld windows); majority class %.3f\n",
                st.nb_accuracy_token, static_cast<long long>(st.window), st.nb_accuracy_window,
                static_cast<long long>(st.n_windows), st.majority_baseline);
  out += line;
  out += "bits per token; H_rate = analytic entropy rate (the loss floor), H_bigr = plug-in H(x_t | x_t-1), train split\n";
  return out;
}

nlohmann::json dataset_stats_json(const DatasetStats& st) {
  nlohmann::json j;
  for (const auto& d : st.domains) {
    j["domains"].push_back({{"name", d.name},
                            {"tokens", {{"train", d.tokens[0]}, {"val", d.tokens[1]}}},
                            {"documents", {{"train", d.documents[0]}, {"val", d.documents[1]}}},
                            {"unigram_entropy_bits", d.unigram_entropy_bits},
                            {"entropy_rate_bits", d.entropy_rate_bits ? nlohmann::json(*d.entropy_rate_bits) : nlohmann::json(nullptr)},
                            {"bigram_entropy_bits", d.bigram_entropy_bits},
                            {"motif_token_fraction", d.motif_token_fraction},
                            {"nb_recall_token", d.nb_recall_token},
                            {"nb_recall_window", d.nb_recall_window}});
  }
  j["window"] = st.window;
  j["nb_accuracy_token"] = st.nb_accuracy_token;
  j["nb_accuracy_window"] = st.nb_accuracy_window;
  j["n_windows"] = st.n_windows;
  j["majority_baseline"] = st.majority_baseline;
  return j;
}

}  // namespace moetb
