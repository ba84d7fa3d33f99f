// `moetb knockout RUN`: per MoE layer and expert, the per-domain validation loss increase
// when the expert is removed, beside its routing specialization (models/knockout.h).
// JSON (moetb-knockout/1) to stdout or -o FILE; RUN/knockout.json feeds `moetb report RUN`.
#include <memory>

#include "cli/commands.h"
#include "cli/output.h"
#include "models/knockout.h"

namespace moetb::cli {

void add_knockout(CLI::App& app) {
  auto* cmd = app.add_subcommand("knockout", "Causal expert importance: loss increase per domain when each expert is removed");
  struct Args {
    std::string run, out = "-", device;
    int64_t eval_sequences = 0;
    bool quiet = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("run", a->run, "The trained run directory")->required();
  cmd->add_option("--out,-o", a->out, "Write the JSON to this file (atomically) instead of stdout");
  cmd->add_option("--eval-sequences", a->eval_sequences, "Validation sequences (0 = the run's eval.sequences)");
  cmd->add_option("--device", a->device, "cpu or cuda (default: the run's)");
  cmd->add_flag("--quiet,-q", a->quiet, "No progress output");
  cmd->callback([a] {
    LoadedRun run = load_run(a->run, a->device);
    KnockoutOptions options;
    options.eval_sequences = a->eval_sequences;
    options.progress = !a->quiet;
    nlohmann::json j = run_knockout(run, options);
    j["git_revision"] = git_revision();
    write_output(a->out, j.dump(2) + "\n");
  });
}

}  // namespace moetb::cli
