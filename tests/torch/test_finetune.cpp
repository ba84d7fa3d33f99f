// moetb finetune and moetb knockout (docs/finetune.md): frozen parameters stay bit for bit
// in the fine-tuned checkpoint (paths, random, experts arms) while the trained slices move;
// every arm records the same schema and the FLOP estimate orders them; remove_experts
// empties a removed expert's slots and renormalises only the tokens that held it; and on the
// oracle router removing an expert of domain d's group changes only domain d's loss.
#include "tests/torch/torch_catch.h"

#include <ATen/ops/equal.h>
#include <ATen/ops/tensor.h>
#include <torch/serialize/input-archive.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "common/config_binder.h"
#include "datagen/dataset_writer.h"
#include "models/expert_mask.h"
#include "models/finetune.h"
#include "models/finetune_flops.h"
#include "models/knockout.h"
#include "models/run_model.h"
#include "models/trainer.h"
#include "tests/torch/training_test_util.h"

using namespace moetb;
using namespace training_test;
namespace fs = std::filesystem;

namespace {

// Trains a tiny run whose config.toml is its real effective config (load_run reads it).
fs::path train_tiny(const ScratchDir& dir, TrainConfig cfg, const std::string& name) {
  cfg.eval_sequences = 0;  // the whole validation split: every domain is in the trace
  ConfigBinder binder;
  bind_train_config(binder, cfg);
  TrainOptions o = quiet_options(dir.path / name);
  o.config_toml = binder.to_toml();
  o.config_json = binder.to_json();
  REQUIRE(train_model(cfg, o).finished);
  return dir.path / name;
}

std::map<std::string, at::Tensor> checkpoint_tensors(const fs::path& run) {
  LoadedRun r = load_run(run.string());
  std::map<std::string, at::Tensor> out;
  for (const auto& p : r.model->named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

FinetuneOptions options(const fs::path& run, const fs::path& out, const std::string& arm) {
  FinetuneOptions o;
  o.run_dir = run.string();
  o.out_dir = out.string();
  o.domain = "d1";
  o.arm = arm;
  o.steps = 4;
  o.lr = 1e-2;
  o.weight_decay = 0.1;  // frozen slices must survive decoupled weight decay too
  o.draw = 2;
  o.eval_sequences = 32;  // the whole validation split: every domain has tokens
  return o;
}

bool is_expert_tensor(const std::string& name) {
  return name.find("moe.w_gate") != std::string::npos || name.find("moe.w_up") != std::string::npos ||
         name.find("moe.w_down") != std::string::npos;
}

}  // namespace

TEST_CASE("finetune: frozen parameters stay bit for bit, the chosen experts move", "[training]") {
  ScratchDir dir;
  TrainConfig cfg = tiny_config(tiny_dataset(dir));
  const fs::path run = train_tiny(dir, cfg, "run");
  const auto base = checkpoint_tensors(run);
  for (const std::string arm : {"paths", "random", "least", "experts", "full"}) {
    DYNAMIC_SECTION("arm " << arm) {
      const fs::path out = dir.path / ("ft-" + arm);
      const nlohmann::json r = run_finetune(options(run, out, arm));
      REQUIRE(r["format"] == "moetb-finetune/1");
      REQUIRE(fs::exists(out / "finetune.json"));
      REQUIRE(fs::exists(out / "eval.json"));
      const auto experts = r["experts"].get<std::vector<std::vector<int>>>();
      const auto path = r["path"].get<std::vector<std::vector<int>>>();
      REQUIRE(experts.size() == 2);
      for (std::size_t l = 0; l < experts.size(); ++l) {
        if (arm == "paths") REQUIRE(experts[l] == path[l]);
        if (arm == "random" || arm == "least") REQUIRE(experts[l].size() == path[l].size());
        if (arm == "experts" || arm == "full") REQUIRE(experts[l].size() == 4);
      }
      const auto after = checkpoint_tensors(out);
      int64_t moved = 0;
      for (const auto& [name, t] : base) {
        const at::Tensor& a = after.at(name);
        if (arm == "full") {
          moved += at::equal(t, a) ? 0 : 1;
          continue;
        }
        if (!is_expert_tensor(name)) {
          INFO(name);
          REQUIRE(at::equal(t, a));  // attention, norms, embedding, router: untouched
          continue;
        }
        const std::size_t layer = name.rfind("block0", 0) == 0 ? 0 : 1;
        const std::set<int> chosen(experts[layer].begin(), experts[layer].end());
        for (int64_t e = 0; e < t.size(0); ++e) {
          INFO(name << " expert " << e);
          if (chosen.count(static_cast<int>(e))) moved += at::equal(t[e], a[e]) ? 0 : 1;
          else REQUIRE(at::equal(t[e], a[e]));
        }
      }
      REQUIRE(moved > 0);
      REQUIRE(r["trainable_parameters"].get<int64_t>() > 0);
      REQUIRE(r["training_flops"].get<double>() <= r["training_flops_full"].get<double>() * (1 + 1e-12));
      if (arm == "full") REQUIRE(r["flops_fraction"].get<double>() == Approx(1.0));
      REQUIRE(r["other_domains"].size() == 2);
    }
  }
}

TEST_CASE("finetune: every arm trains on the same batches; bad options are one-line errors", "[training]") {
  ScratchDir dir;
  const fs::path run = train_tiny(dir, tiny_config(tiny_dataset(dir)), "run");
  const nlohmann::json a = run_finetune(options(run, dir.path / "a", "paths"));
  const nlohmann::json b = run_finetune(options(run, dir.path / "b", "least"));
  REQUIRE(a["target"]["loss_before_bits"] == b["target"]["loss_before_bits"]);
  REQUIRE(a["optimizer"] == b["optimizer"]);
  auto bad = options(run, dir.path / "c", "paths");
  bad.domain = "nope";
  REQUIRE_THROWS_WITH(run_finetune(bad), Catch::Contains("--domain: 'nope' is not a domain"));
  bad = options(run, dir.path / "c", "some");
  REQUIRE_THROWS_WITH(run_finetune(bad), Catch::Contains("--arm: unknown arm 'some'"));
  bad = options(run, dir.path / "a", "paths");  // exists
  REQUIRE_THROWS_WITH(run_finetune(bad), Catch::Contains("already exists"));
  bad = options(run, run / "inside", "paths");
  REQUIRE_THROWS(run_finetune(bad));
  REQUIRE(!fs::exists(dir.path / "c"));
}

TEST_CASE("remove_experts empties the removed expert's slots and renormalises only those tokens", "[models]") {
  RoutingDecision d;
  d.experts = at::tensor(std::vector<int64_t>{0, 1, 2, 3, 1, -1}, at::kLong).view({3, 2});
  d.weights = at::tensor(std::vector<double>{0.75, 0.25, 0.6, 0.4, 1.0, 0.0}, at::kDouble).view({3, 2});
  const at::Tensor before = d.weights.clone();
  at::Tensor removed = at::zeros({4}, at::kBool);
  removed[1] = true;
  remove_experts(d, removed);
  const auto e = d.experts.contiguous();
  const auto w = d.weights.contiguous();
  REQUIRE(e[0][1].item<int64_t>() == -1);
  REQUIRE(w[0][0].item<double>() == 1.0);  // 0.75 rescaled to the token's total, 1
  REQUIRE(w[0][1].item<double>() == 0.0);
  REQUIRE(at::equal(w[1], before[1]));      // untouched token: bit for bit
  REQUIRE(at::equal(e[1], at::tensor(std::vector<int64_t>{2, 3}, at::kLong)));
  REQUIRE(e[2][0].item<int64_t>() == -1);  // its only expert removed: no weight left
  REQUIRE(w[2][0].item<double>() == 0.0);
}

TEST_CASE("finetune FLOPs: full is 3x forward, a partial arm costs less and nothing frozen costs no backward", "[models]") {
  FlopShape s;
  s.d_model = 16, s.n_heads = 2, s.vocab = 50, s.d_ff = 16, s.n_experts = 4, s.dense_d_ff = 32;
  s.moe_index = {-1, 0, 1};
  StepRouting r{4, 8, {64, 64}, {0, 16}};
  const StepFlops full = step_flops(s, r, true), part = step_flops(s, r, false);
  REQUIRE(full.forward + full.backward == Approx(3 * full.forward));
  REQUIRE(part.forward == full.forward);
  REQUIRE(part.backward < full.backward);
  REQUIRE(part.backward > 0);
  r.trainable_assignments = {0, 0};
  REQUIRE(step_flops(s, r, false).backward == 0);
}

TEST_CASE("knockout on the oracle router: removing an expert of domain d's group changes only d's loss", "[training]") {
  ScratchDir dir;
  DatagenConfig c;
  c.domains = 3;
  c.vocab_per_domain = 16;
  c.motifs_per_domain = 2;
  c.seq_len = 16;
  c.train_tokens = 4096;
  c.val_tokens = 512;
  c.doc_len_mean = 40;
  c.packing = "domain";  // one domain per sequence: attention cannot carry a removal across domains
  DatasetWriteOptions w;
  w.dir = (dir.path / "data").string();
  write_synthetic_dataset(SyntheticCorpus(c), w);
  TrainConfig cfg = tiny_config(w.dir);
  cfg.router.name = "oracle";
  cfg.n_experts = 6;  // groups of 2 per domain
  const fs::path run = train_tiny(dir, cfg, "oracle");
  LoadedRun loaded = load_run(run.string());
  const nlohmann::json j = run_knockout(loaded, {});
  REQUIRE(j["format"] == "moetb-knockout/1");
  const auto domains = j["domains"].get<std::vector<std::string>>();
  REQUIRE(j["layers"].size() == 2);
  int changed = 0;
  for (const auto& layer : j["layers"])
    for (const auto& ex : layer["experts"]) {
      const int e = ex["expert"].get<int>();
      for (std::size_t d = 0; d < domains.size(); ++d) {
        const auto& group = loaded.groups[d];
        const bool in_group = std::find(group.begin(), group.end(), e) != group.end();
        const double inc = ex["loss_increase_bits"][domains[d]].get<double>();
        INFO("layer " << layer["layer"] << " expert " << e << " domain " << domains[d]);
        if (!in_group) REQUIRE(inc == 0.0);  // exactly: other domains never see the expert
        else changed += inc != 0.0;
      }
      REQUIRE(ex["specialization"].get<double>() == 1.0);  // the oracle's experts serve one domain
    }
  REQUIRE(changed == 12);  // every (layer, expert) changes its own domain's loss
  REQUIRE(j["correlation"]["cell"]["spearman"].is_number());
  // The model is left as found: a second knockout gives the same numbers.
  REQUIRE(run_knockout(loaded, {})["layers"] == j["layers"]);
}
