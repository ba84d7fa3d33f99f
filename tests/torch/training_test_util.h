// Shared fixtures of the training tests: a scratch directory, a tiny synthetic dataset
// (3 domains, seq_len 16) and a tiny model/training config that runs in well under a
// second, so that end-to-end runs (resume, NaN, every router) stay cheap.
#pragma once
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

#include "datagen/dataset_writer.h"
#include "models/trainer.h"

namespace training_test {

namespace fs = std::filesystem;

// A fresh directory under /tmp, removed with its contents on destruction.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    static std::atomic<int> n{0};
    path = fs::temp_directory_path() / ("moetb-train-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

inline std::string tiny_dataset(const ScratchDir& dir, int64_t train_tokens = 4096, int64_t val_tokens = 512) {
  moetb::DatagenConfig c;
  c.domains = 3;
  c.vocab_per_domain = 16;
  c.motifs_per_domain = 2;
  c.seq_len = 16;
  c.train_tokens = train_tokens;
  c.val_tokens = val_tokens;
  c.doc_len_mean = 40;
  moetb::DatasetWriteOptions o;
  o.dir = (dir.path / "data").string();
  moetb::write_synthetic_dataset(moetb::SyntheticCorpus(c), o);
  return o.dir;
}

inline moetb::TrainConfig tiny_config(const std::string& data) {
  moetb::TrainConfig c;
  c.data_dir = data;
  c.d_model = 16;
  c.n_heads = 2;
  c.n_layers = 2;
  c.n_experts = 4;
  c.top_k = 2;
  c.d_ff = 16;
  c.micro_batch = 4;
  c.accum_steps = 2;
  c.steps = 6;
  c.warmup_steps = 2;
  c.eval_every = 3;
  c.eval_sequences = 8;
  c.checkpoint_every = 0;
  return c;
}

inline moetb::TrainOptions quiet_options(const fs::path& run) {
  moetb::TrainOptions o;
  o.run_dir = run.string();
  o.progress = false;
  o.config_toml = "# test\n";
  return o;
}

}  // namespace training_test
