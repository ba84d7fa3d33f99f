// The run directory's format, moetb-run/1 (docs/run-format.md): its file names and one
// typed record per thing it holds: the run (run.json: format marker, seed, git revision,
// device, threads, dataset as an absolute path, the effective config, provenance), each
// optimizer step and each evaluation (train_log.jsonl lines), and the final evaluation
// (eval.json). The trainer writes them (run_writer.h), everyone else reads them
// (run_reader.h). Plays for runs the part metrics/trace.h plays for traces. Torch-free.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace moetb::runs {

inline constexpr const char* kFormat = "moetb-run/1";  // run.json "format": name and version
inline constexpr const char* kFormatName = "moetb-run";

// The files of a run directory.
inline constexpr const char* kRunFile = "run.json";
inline constexpr const char* kConfigFile = "config.toml";  // the effective config, reusable with --config
inline constexpr const char* kLogFile = "train_log.jsonl";
inline constexpr const char* kEvalFile = "eval.json";
inline constexpr const char* kTracesDir = "traces";
// The dropless evaluation's traces beside the main ones (eval.routing "both"): a folder of its
// own, so that final_trace and everything listing traces/ never mistake one for the other.
inline constexpr const char* kDroplessTracesDir = "traces-dropless";
inline constexpr const char* kCheckpointsDir = "checkpoints";

// run.json: what the run is. Written once, when the run starts.
struct RunInfo {
  std::string format = kFormat;   // empty when read from a run written before the marker
  int64_t seed = 0;
  std::string git_revision;
  int64_t threads = 1;
  std::string device = "cpu";
  std::string dataset;            // the dataset folder, absolute
  nlohmann::json config = nlohmann::json::object();      // the effective config (nested, as config.toml)
  nlohmann::json provenance = nlohmann::json::object();  // how and where it ran (free-form; may be empty)
  nlohmann::json machine = nlohmann::json::object();     // CPU, BLAS and its kernel, threads (common/machine_info.h)

  nlohmann::json to_json() const;
  // Throws std::invalid_argument("WHERE: ...") when j is not a run record or is of a newer format.
  static RunInfo from_json(const nlohmann::json& j, const std::string& where);
};

// One MoE block's load in a training step (of the last micro-batch of the step).
struct LayerLoad {
  double max_share = 0, min_share = 0;  // busiest / least-used expert's share of the kept assignments
  double violation = 0;                 // E * max_share - 1
  double dropped_fraction = 0;          // share of assignments dropped by capacity
};

// One optimizer step: a train_log.jsonl line without "eval". Numbers absent from a log
// line read as NaN.
struct StepRecord {
  int64_t step = 0;                 // 1-based
  double lr = 0;
  double loss_bits = 0;             // training cross-entropy, bits/token (mean over micro-batches)
  double aux_loss = 0;              // the routers' auxiliary losses, summed over blocks
  std::map<std::string, double> aux_terms;  // each term, mean over blocks and micro-batches
  std::vector<LayerLoad> load;      // one per MoE block
  double max_load_violation = 0;    // the worst block's violation
  double tokens_per_s = 0;          // since this process started

  nlohmann::json to_json() const;
  static StepRecord from_json(const nlohmann::json& j);
};

// Validation loss of one domain. A domain with no evaluated tokens has no loss (null).
struct DomainEval {
  std::string name;
  int64_t n_tokens = 0;
  std::optional<double> loss_bits, floor_bits, gap_bits;
};

// The loss side of an evaluation ("eval" in a log line and in eval.json).
struct EvalSummary {
  std::optional<double> loss_bits;     // over all evaluated tokens; null when there were none
  std::optional<double> floor_bits;    // token-weighted entropy-rate floor (synthetic data)
  std::optional<double> unigram_bits;  // the train split's unigram model on the same tokens
  std::optional<double> gap_bits;      // loss - floor
  std::optional<double> gap_closed;    // (unigram - loss) / (unigram - floor)
  int64_t n_tokens = 0;
  std::vector<DomainEval> domains;

  nlohmann::json to_json() const;
  static EvalSummary from_json(const nlohmann::json& j);
};

// The dropless evaluation beside the training-time one (eval.routing "both", docs/run-format.md).
struct SecondEval {
  std::string rule;                                           // one line: how it routed
  EvalSummary eval;
  std::string trace;                                          // traces-dropless/step-NNNNNN.safetensors
  nlohmann::json metrics_summary = nlohmann::json::object();
};

// One evaluation: a train_log.jsonl line with "eval".
struct EvalRecord {
  int64_t step = 0;
  EvalSummary eval;
  std::string trace;                                          // relative to the run: traces/step-NNNNNN.safetensors
  nlohmann::json metrics_summary = nlohmann::json::object();  // metrics/ summary of that trace
  std::string routing;                // how eval/trace were routed: "train" or "dropless"; "" = not recorded (older runs)
  std::optional<SecondEval> dropless; // only with eval.routing "both"

  nlohmann::json to_json() const;
  static EvalRecord from_json(const nlohmann::json& j);
};

// eval.json: the last evaluation of a finished run with the full metrics and its identity.
struct FinalEval {
  EvalRecord record;
  std::string router;
  nlohmann::json metrics = nlohmann::json::object();  // metrics_to_json of the final trace
  int64_t seed = 0;
  std::string git_revision;

  nlohmann::json to_json() const;
  // Throws std::invalid_argument("WHERE: not an eval.json written by moetb train") when it is not one.
  static FinalEval from_json(const nlohmann::json& j, const std::string& where);
};

// "traces/step-000006.safetensors"
std::string trace_name(int64_t step);
// "traces-dropless/step-000006.safetensors"
std::string dropless_trace_name(int64_t step);

// The effective-config keys a resumed run must share with the run it continues: the data,
// the model's shape, the router, the seed, the batch and the optimiser (prefixes end in '.').
const std::vector<std::string>& resume_fixed_keys();
// Throws std::invalid_argument("KEY cannot change on resume: was A, now B") for the first
// fixed key whose value differs between the stored run and the new effective config `now`
// (nested, as ConfigBinder::to_json). data.dir compares the stored absolute dataset path with
// now's data.dir made absolute. Keys only one side has (a newer or older moetb) are skipped.
void check_resume(const RunInfo& stored, const nlohmann::json& now);

}  // namespace moetb::runs
