// `moetb train`: train a small MoE LM on a datagen dataset (models/trainer.h). Settings:
// defaults < --config FILE.toml < dedicated flags (--data, --router, --steps, --threads,
// --device, --seed) < --set key=value. --resume continues a run from its last checkpoint.
#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/config_binder.h"
#include "models/trainer.h"
#include "routers/router.h"

namespace moetb::cli {
namespace {

struct TrainArgs {
  std::string config_file, out, data, router, device;
  std::vector<std::string> sets;
  int64_t steps = 0, threads = 0, seed = -1, stop_after = 0;
  bool resume = false, force = false, quiet = false;
};

void run_train(const TrainArgs& a) {
  if (a.resume && a.force)
    throw std::invalid_argument("--resume and --force cannot be combined: --resume continues the run, --force replaces it");
  TrainConfig cfg;
  ConfigBinder binder;
  bind_train_config(binder, cfg);
  if (a.resume) {  // a resumed run keeps its own effective config
    binder.load_file(a.out + "/config.toml");
  } else if (!a.config_file.empty()) {
    binder.load_file(a.config_file);
  }
  if (!a.data.empty()) binder.set("data.dir=" + a.data);
  if (!a.router.empty()) binder.set("router.name=" + a.router);
  if (a.steps > 0) binder.set("train.steps=" + std::to_string(a.steps));
  if (a.threads > 0) binder.set("train.threads=" + std::to_string(a.threads));
  if (!a.device.empty()) binder.set("train.device=" + a.device);
  if (a.seed >= 0) binder.set("train.seed=" + std::to_string(a.seed));
  for (const auto& s : a.sets) binder.set(s);
  validate_train_config(cfg);
  // Stored paths are absolute: the run's config.toml works from any folder.
  cfg.data_dir = std::filesystem::absolute(cfg.data_dir).lexically_normal().string();
  TrainOptions opts;
  opts.run_dir = a.out;
  opts.resume = a.resume;
  opts.force = a.force;
  opts.stop_after = a.stop_after;
  opts.git_revision = git_revision();
  opts.config_toml = "# moetb train effective config (moetb " + std::string(git_revision()) + ")\n" + binder.to_toml();
  opts.config_json = binder.to_json();
  opts.progress = !a.quiet;
  const TrainResult r = train_model(cfg, opts);
  if (!r.finished) {
    std::cerr << "stopped after step " << r.last_step << " (checkpoint written; continue with --resume)\n";
    return;
  }
  const auto& ev = r.eval["eval"];
  std::cerr << "done: " << a.out << "/eval.json, val loss ";
  if (ev["loss_bits"].is_number()) std::cerr << ev["loss_bits"].get<double>() << " bits";
  else std::cerr << "n/a (no evaluation tokens)";
  if (ev["floor_bits"].is_number() && ev["unigram_bits"].is_number() && ev["gap_closed"].is_number())
    std::cerr << " (floor " << ev["floor_bits"].get<double>() << ", unigram " << ev["unigram_bits"].get<double>()
              << ", gap closed " << ev["gap_closed"].get<double>() << ")";
  std::cerr << "\n";
}

}  // namespace

void add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a small MoE language model and record its routing");
  auto a = std::make_shared<TrainArgs>();
  cmd->add_option("--out,-o", a->out, "Run directory")->required();
  cmd->add_option("--config,-c", a->config_file, "TOML config (docs/training.md lists every key)");
  cmd->add_option("--data", a->data, "Dataset directory (data.dir)");
  std::string names;  // every registered router, so the help never lags the registry
  for (const auto& n : router_names()) names += (names.empty() ? "" : ", ") + n;
  cmd->add_option("--router", a->router, "Router (router.name): " + names + "; moetb routers describes each");
  cmd->add_option("--steps", a->steps, "Optimizer steps (train.steps)");
  cmd->add_option("--threads", a->threads, "Intra-op threads (train.threads)");
  cmd->add_option("--device", a->device, "cpu or cuda (train.device)");
  cmd->add_option("--seed", a->seed, "Seed (train.seed)");
  cmd->add_option("--set", a->sets, "Override a config key: key=value (repeatable, applied last)");
  cmd->add_flag("--resume", a->resume, "Continue the run in --out from its last checkpoint");
  cmd->add_flag("--force", a->force, "Replace an existing run directory");
  cmd->add_option("--stop-after", a->stop_after, "Stop after this step with a checkpoint (as if interrupted)");
  cmd->add_flag("--quiet,-q", a->quiet, "No progress output");
  cmd->callback([a] { run_train(*a); });
}

}  // namespace moetb::cli
