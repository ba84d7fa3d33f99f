// `moetb datagen`: write a multi-domain dataset with known ground truth (datagen/), from
// a shipped --preset, a TOML config, one flag per config key, and --set overrides (applied
// in that order); `moetb datagen --stats DIR` prints its per-domain statistics and
// separability.
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/config_binder.h"
#include "datagen/dataset_stats.h"
#include "datagen/dataset_writer.h"
#include "datagen/presets.h"
#include "datagen/subword_tokenizer.h"

namespace moetb::cli {
namespace {

struct DatagenArgs {
  std::string preset, config_file, out, stats_dir;
  std::vector<std::string> sets, text_domains, manpage_domains;
  int64_t window = 16;
  bool force = false, json = false;
  std::map<std::string, std::string> flag_values;  // config key -> value given as --key
};

void print_summary(const nlohmann::json& m, const std::string& dir) {
  std::cerr << "wrote " << dir << ": " << m["kind"].get<std::string>() << ", vocab " << m["vocab_size"] << ", "
            << m["splits"]["train"]["n_tokens"] << " train / " << m["splits"]["val"]["n_tokens"] << " val tokens (seed "
            << m["seed"] << ", moetb " << m["git_revision"].get<std::string>() << ")\n";
  if (m.contains("tokenizer") && m["tokenizer"]["kind"] == "sentencepiece")
    std::cerr << "  tokenizer: sentencepiece " << m["tokenizer"]["model_type"].get<std::string>() << ", "
              << m["tokenizer"]["n_pieces"] << " pieces, trained on the train split, stored as " << dir << "/tokenizer.model\n";
  for (const auto& d : m["domains"]) {
    std::cerr << "  " << d["name"].get<std::string>() << ": " << d["tokens"]["train"] << " train tokens";
    if (d["entropy_rate_bits"].is_number()) std::cerr << ", entropy rate " << d["entropy_rate_bits"].get<double>() << " bits/token";
    if (d.contains("pages_skipped"))
      std::cerr << " (" << d["files"]["train"] << " + " << d["files"]["val"] << " pages of " << d["files_found"] << ", "
                << d["pages_skipped"] << " left out)";
    std::cerr << "\n";
  }
}

void run_datagen(const DatagenArgs& args) {
  if (!args.stats_dir.empty()) {
    if (args.window < 1 || args.window > 65536) throw std::invalid_argument("--window: " + std::to_string(args.window) + " is outside [1, 65536]");
    const Dataset data(args.stats_dir);
    const DatasetStats st = compute_dataset_stats(data, args.window);
    write_output("-", args.json ? dataset_stats_json(st).dump(2) + "\n" : dataset_stats_table(st));
    return;
  }
  if (args.out.empty()) throw std::invalid_argument("--out is required (or --stats DIR)");
  DatagenConfig cfg;
  ConfigBinder binder;
  bind_datagen_config(binder, cfg);
  if (!args.preset.empty()) binder.load_toml(datagen_preset(args.preset), "preset " + args.preset);
  if (!args.config_file.empty()) binder.load_file(args.config_file);
  for (const auto& [key, value] : args.flag_values) binder.set(key + "=" + value);
  auto add_domains = [&](const std::vector<std::string>& specs, const char* flag, const char* key) {
    for (const auto& spec : specs) {
      const auto eq = spec.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
        throw std::invalid_argument(std::string(flag) + " " + spec + ": expected NAME=DIR");
      binder.set(std::string(key) + "." + spec.substr(0, eq) + "=" + spec.substr(eq + 1));
    }
  };
  add_domains(args.text_domains, "--domain", "text_domains");
  add_domains(args.manpage_domains, "--manpages", "manpage_domains");
  for (const auto& s : args.sets) binder.set(s);
  validate_datagen_config(cfg);
  register_sentencepiece_tokenizer();
  make_parent_folders(args.out);  // after the config checks: bad input leaves no folder behind
  DatasetWriteOptions opts;
  opts.dir = args.out;
  opts.force = args.force;
  if (!args.config_file.empty()) opts.inputs.push_back(args.config_file);
  {  // before the corpus is read or generated: a refused output costs nothing
    std::vector<std::string> inputs = opts.inputs;
    for (const auto& [name, folder] : cfg.text_domains) inputs.push_back(folder);
    check_output(args.out, OutputKind::dataset, output_options(args.force, inputs));
  }
  opts.git_revision = git_revision();
  opts.config_toml = "# moetb datagen effective config (moetb " + std::string(git_revision()) + ")\n" + binder.to_toml();
  opts.config_json = binder.to_json();
  const nlohmann::json m = is_text_dataset(cfg) ? write_text_dataset(TextCorpus(cfg), cfg, opts)
                                                : write_synthetic_dataset(SyntheticCorpus(cfg), opts);
  print_summary(m, args.out);
}

}  // namespace

void add_datagen(CLI::App& app) {
  auto* cmd = app.add_subcommand("datagen", "Write a multi-domain dataset with known ground truth, or print its --stats");
  auto args = std::make_shared<DatagenArgs>();
  cmd->add_option("--out,-o", args->out, "Dataset directory to write");
  std::string names;
  for (const auto& n : datagen_preset_names()) names += (names.empty() ? "" : ", ") + n;
  cmd->add_option("--preset", args->preset, "A shipped config, applied first (" + names + "; datagen/presets/NAME.toml)");
  cmd->add_option("--config,-c", args->config_file, "TOML config (docs/datagen.md lists every key)");
  cmd->add_option("--set", args->sets, "Override a config key: key=value (repeatable, applied last)");
  cmd->add_option("--domain", args->text_domains, "Real text domain NAME=DIR (repeatable; byte-level, one document per file)");
  cmd->add_option("--manpages", args->manpage_domains, "Manual-page domain NAME=DIR (repeatable; DIR/man*/ pages rendered by groff)");
  cmd->add_flag("--force", args->force, "Replace an existing dataset directory");
  cmd->add_option("--stats", args->stats_dir, "Print statistics of an existing dataset directory");
  cmd->add_flag("--json", args->json, "With --stats: JSON instead of a table");
  cmd->add_option("--window", args->window, "With --stats: tokens per naive-Bayes window (default 16)");
  // One flag per config key (--vocab-per-domain for vocab_per_domain), defaults shown in --help.
  DatagenConfig defaults;
  ConfigBinder binder;
  bind_datagen_config(binder, defaults);
  for (const auto& f : binder.fields()) {
    if (f.key == "text_domains" || f.key == "manpage_domains") continue;  // --domain / --manpages NAME=DIR
    std::string flag = "--" + f.key;
    for (char& c : flag) c = c == '_' ? '-' : c;
    auto* opt = cmd->add_option_function<std::string>(
        flag, [args, key = f.key](const std::string& v) { args->flag_values[key] = v; }, f.help);
    opt->type_name("VALUE");
  }
  cmd->callback([args] { run_datagen(*args); });
}

}  // namespace moetb::cli
