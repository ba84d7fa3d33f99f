// Running one demo of the catalogue (demos.h) end to end: plan its embedded sweep spec into a
// folder, make the dataset, train the runs (a rerun resumes), collect, add the figures that
// result.json does not hold (training-log tail, routing-trace slot counts), print the comparison
// table and the findings, and write the demo report plus one report per finished run.
// `moetb demo NAME` (cli/cmd_demo.cpp) is a thin front end to run_demo. Torch-free.
#pragma once
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "demos/demos.h"
#include "sweeps/sweep_dir.h"

namespace moetb::demos {

struct DemoRunOptions {
  std::string name;   // a catalogue name (find_demo)
  std::string out;    // folder (empty: out/demos/NAME)
  std::string moetb;  // the moetb executable that trains the runs (empty: this one)
  int jobs = 0;       // runs at a time (0: the runs, at most the cores)
  bool force = false; // delete the folder first and start over
  // Writes one report file (the CLI passes its atomic output writer).
  std::function<void(const std::string& path, const std::string& text)> write;
};

// Runs the demo, printing progress, the table, the findings and the written files to `out`
// and warnings to `err`. Returns the sweep's exit status (0 when every run finished).
// Throws std::invalid_argument on a bad name or a folder that is not a demo folder.
int run_demo(const DemoRunOptions& options, std::ostream& out, std::ostream& err);

// Adds each finished run's training-log tail (train_log_extras) and routing-trace figures
// (eval.experts_mean, eval.experts_max, eval.no_expert, eval.dropped) to its result row, and
// for a run whose training routing is already dropless and per token (no capacity, not expert
// choice) its own numbers as its dropless.* columns; a trace that cannot be read gives a
// warning on `err` and no figures.
void add_extras(const sweeps::SweepDir& dir, ResultsTable& table, std::ostream& err);

}  // namespace moetb::demos
