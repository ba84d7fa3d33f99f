// Reading a run directory (moetb-run/1, docs/run-format.md): the one reader `moetb runs`,
// `moetb demo`, reports/ and sweeps/ use. A torn last line of train_log.jsonl (a run killed
// mid-write) is skipped and reported, not an error; a damaged line before it is. Runs from
// before the format marker (run.json without "format") are read as moetb-run/1 with a note.
// Torch-free.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "runs/run_format.h"

namespace moetb::runs {

struct TrainLog {
  std::vector<StepRecord> steps;  // in file order
  std::vector<EvalRecord> evals;
  bool torn_tail = false;         // the last line was cut short (a killed run) and skipped
};

// True when `dir` looks like a run directory: it has run.json, eval.json or train_log.jsonl.
bool looks_like_run(const std::filesystem::path& dir);

// run.json; nullopt when the run has none. Throws std::invalid_argument with one line for an
// unreadable or foreign run.json or a newer format. A run.json without the marker (written
// before moetb-run/1) reads with format "" and appends a note to *notes (when given).
std::optional<RunInfo> read_run_info(const std::filesystem::path& dir, std::vector<std::string>* notes = nullptr);
// The note for such a run.
std::string legacy_note(const std::filesystem::path& dir);

// train_log.jsonl of a run directory (or the log file itself); empty when it is missing.
// Throws std::runtime_error("PATH: line N is not a JSON object") for a damaged line other
// than the last one.
TrainLog read_train_log(const std::filesystem::path& dir_or_file);

// eval.json; nullopt when the run has not finished (no eval.json). Throws
// std::invalid_argument with one line when it is there but is not one.
std::optional<FinalEval> read_final_eval(const std::filesystem::path& dir);

// The metric summary of the run: eval.json's, else the last evaluation in the log; null
// when neither has one.
nlohmann::json metrics_summary(const std::filesystem::path& dir);

// The final routing trace: the one eval.json names, else the last evaluation's, else the
// newest traces/*.safetensors; empty when there is none.
std::filesystem::path final_trace(const std::filesystem::path& dir);

}  // namespace moetb::runs
