// `moetb finetune RUN --domain D --arm A --steps S --out DIR`: fine-tune a trained run on
// one domain with only the arm's parameters trainable (models/finetune.h, docs/finetune.md).
// DBES expert paths (arXiv 2605.18498) with random / least-used / all-expert / full controls.
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/output.h"
#include "models/finetune.h"

namespace moetb::cli {

void add_finetune(CLI::App& app) {
  auto* cmd = app.add_subcommand("finetune", "Fine-tune a run on one domain with only chosen experts trainable (DBES paths and controls)");
  auto o = std::make_shared<FinetuneOptions>();
  auto quiet = std::make_shared<bool>(false);
  cmd->add_option("run", o->run_dir, "The trained run directory")->required();
  cmd->add_option("--domain", o->domain, "Target domain (a name of the run's dataset or of --data)")->required();
  cmd->add_option("--arm", o->arm, "paths, random, least, experts or full")->required();
  cmd->add_option("--out,-o", o->out_dir, "Output run directory (finetune.json inside)")->required();
  cmd->add_option("--steps", o->steps, "Optimizer steps")->capture_default_str();
  cmd->add_option("--tau", o->tau, "Expert-path threshold: cumulative routing share, in (0, 1]")->capture_default_str();
  cmd->add_option("--draw", o->draw, "random arm: which draw (seeds the subsets)")->capture_default_str();
  cmd->add_option("--data", o->data_dir, "Target dataset with the run's vocabulary (default: the run's own)");
  cmd->add_option("--lr", o->lr, "Peak learning rate (AdamW, fresh state)")->capture_default_str();
  cmd->add_option("--warmup", o->warmup_steps, "Warmup steps (-1 = steps/10)")->capture_default_str();
  cmd->add_option("--weight-decay", o->weight_decay, "AdamW weight decay")->capture_default_str();
  cmd->add_option("--micro-batch", o->micro_batch, "Sequences per step (0 = the run's)")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Batch order seed (-1 = the run's train.seed)")->capture_default_str();
  cmd->add_option("--eval-sequences", o->eval_sequences, "Validation sequences before/after (0 = the run's)")->capture_default_str();
  cmd->add_option("--device", o->device, "cpu or cuda (default: the run's)");
  cmd->add_flag("--force", o->force, "Replace an existing fine-tune directory");
  cmd->add_flag("--quiet,-q", *quiet, "No progress output");
  cmd->callback([o, quiet] {
    o->progress = !*quiet;
    o->git_revision = git_revision();
    const auto r = run_finetune(*o);
    const auto& t = r["target"];
    std::cerr << "done: " << o->out_dir << "/finetune.json, " << o->domain << " loss " << t["loss_before_bits"].get<double>()
              << " -> " << t["loss_after_bits"].get<double>() << " bits, forgetting " << r["forgetting_bits"].get<double>()
              << " bits, " << r["trainable_parameters"].get<int64_t>() << " trainable parameters\n";
  });
}

}  // namespace moetb::cli
