// `moetb simulate`: write a planted routing trace whose specialization is known
// (oracle/planted_simulator.h). Same arguments and seed give byte-identical files.
#include <iostream>

#include "cli/commands.h"
#include "cli/output.h"
#include "oracle/planted_simulator.h"

namespace moetb::cli {
namespace {

DType parse_dtype(const std::string& name, const std::string& flag, bool allow_none) {
  if (allow_none && (name.empty() || name == "none")) return DType::kOther;
  const DType d = dtype_from_name(name);
  if (flag == "--expert-dtype" && (d == DType::kI16 || d == DType::kI32)) return d;
  if (flag != "--expert-dtype" && (d == DType::kF32 || d == DType::kF16 || d == DType::kBF16)) return d;
  throw std::invalid_argument(flag + ": '" + name + "' is not one of " +
                              (flag == "--expert-dtype" ? "I16, I32" : "none, F32, F16, BF16"));
}

}  // namespace

void add_simulate(CLI::App& app) {
  auto* cmd = app.add_subcommand("simulate", "Write a planted routing trace with known specialization");
  auto cfg = std::make_shared<SimConfig>();
  auto out = std::make_shared<SimOutput>();
  auto dtypes = std::make_shared<std::array<std::string, 3>>(std::array<std::string, 3>{"I16", "none", "none"});
  cmd->add_option("--out,-o", out->path, "Output .safetensors file, or directory when sharded")->required();
  cmd->add_option("--experts,-E", cfg->n_experts, "Experts E")->capture_default_str();
  cmd->add_option("--top-k,-k", cfg->top_k, "Slots per token")->capture_default_str();
  cmd->add_option("--domains,-D", cfg->n_domains, "Domains D")->capture_default_str();
  cmd->add_option("--shares", cfg->domain_shares, "Relative domain shares (D values; default equal)")->delimiter(',');
  cmd->add_option("--domain-names", cfg->domain_names, "Domain names (D values)")->delimiter(',');
  cmd->add_option("--layers,-L", cfg->n_layers, "Layers L")->capture_default_str();
  cmd->add_option("--alpha", cfg->alpha, "Specialization per layer: one value or L values")->delimiter(',')->capture_default_str();
  cmd->add_option("--load-profile", cfg->load_profile, "Global load profile: uniform or zipf")->capture_default_str();
  cmd->add_option("--zipf-s", cfg->zipf_s, "Zipf exponent of the global profile")->capture_default_str();
  cmd->add_option("--beta", cfg->beta, "Stiffness: P(a token id keeps its fixed expert set)")->capture_default_str();
  cmd->add_option("--gamma", cfg->gamma, "Span coherence: P(a token reuses the previous token's set)")->capture_default_str();
  cmd->add_option("--overlap", cfg->overlap, "Experts each domain group shares with the next")->capture_default_str();
  cmd->add_option("--vocab-per-domain", cfg->vocab_per_domain, "Token ids per domain (disjoint)")->capture_default_str();
  cmd->add_option("--unlabeled", cfg->unlabeled, "Fraction of tokens written with domain id -1")->capture_default_str();
  cmd->add_option("--seq-len", cfg->seq_len, "Tokens per sequence")->capture_default_str();
  cmd->add_option("--tokens,-T", cfg->n_tokens, "Tokens T")->capture_default_str();
  cmd->add_option("--seed", cfg->seed, "Random seed")->capture_default_str();
  cmd->add_option("--shard-tokens", out->shard_tokens, "Tokens per shard (0 = one file)")->capture_default_str();
  cmd->add_option("--expert-dtype", (*dtypes)[0], "I16 or I32")->capture_default_str();
  cmd->add_option("--weights", (*dtypes)[1], "Write combine weights: none, F32, F16, BF16")->capture_default_str();
  cmd->add_option("--probs", (*dtypes)[2], "Write router distributions: none, F32, F16, BF16")->capture_default_str();
  cmd->add_flag("--force", out->force, "Replace an existing output");
  cmd->callback([cfg, out, dtypes] {
    out->experts_dtype = parse_dtype((*dtypes)[0], "--expert-dtype", false);
    out->weights_dtype = parse_dtype((*dtypes)[1], "--weights", true);
    out->probs_dtype = parse_dtype((*dtypes)[2], "--probs", true);
    make_parent_folders(out->path);
    simulate_to_disk(*cfg, *out);
    std::cerr << "wrote " << out->path << ": " << cfg->n_tokens << " tokens, " << cfg->n_layers << " layers, "
              << cfg->n_experts << " experts, top-" << cfg->top_k << " (seed " << cfg->seed << ", moetb "
              << git_revision() << ")\n";
  });
}

}  // namespace moetb::cli
