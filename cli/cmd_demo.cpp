// `moetb demo [NAME] [--out DIR] [--jobs N] [--force]`: the guided demos (demos/demos.h).
// A thin front end to demos/run_demo.h: a demo plans its embedded sweep spec into DIR (default
// out/demos/NAME), runs it (a rerun resumes), collects it, prints the comparison table and what
// to look for with the measured numbers, and writes DIR/report.html with those findings as the
// intro. With no name it lists the demos. docs/tutorial.md walks through them in order.
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/output.h"
#include "demos/demos.h"
#include "demos/run_demo.h"

namespace moetb::cli {
namespace {

using demos::demo_catalogue;

struct DemoArgs {
  std::string name, out, moetb;
  int jobs = 0;
  bool force = false;
};

void list_demos() {
  std::cout << "moetb demo NAME [--out DIR] [--jobs N] [--force]: small sweeps that each show one effect of routing\n"
               "(2-3 settings over 5 seeds, 2-3 minutes on two cores; docs/tutorial.md walks through them in order)\n\n";
  for (const auto& d : demo_catalogue()) {
    char line[256];
    std::snprintf(line, sizeof line, "  %-14s %s\n", d.name.c_str(), d.summary.c_str());
    std::cout << line;
  }
  std::cout << "\nstart with: moetb demo " << demo_catalogue().front().name << "\n";
}

void run(const DemoArgs& a) {
  demos::DemoRunOptions o;
  o.name = a.name, o.out = a.out, o.moetb = a.moetb, o.jobs = a.jobs, o.force = a.force;
  o.write = [](const std::string& path, const std::string& text) { write_output(path, text); };
  exit_code() = demos::run_demo(o, std::cout, std::cerr);
}

}  // namespace

void add_demo(CLI::App& app) {
  auto a = std::make_shared<DemoArgs>();
  CLI::App* demo = app.add_subcommand("demo", "Guided demos: small sweeps that each show one effect (no NAME: list them)");
  demo->add_option("name", a->name, "Demo to run (moetb demo lists them)");
  demo->add_option("--out,-o", a->out, "Folder (default out/demos/NAME; a rerun resumes)");
  demo->add_option("--jobs,-j", a->jobs, "Runs at a time (default: the runs, at most the cores)")->check(CLI::Range(1, 1024));
  demo->add_flag("--force", a->force, "Delete the folder first and start over");
  demo->add_option("--moetb", a->moetb, "The moetb executable that trains the runs (tests)")->group("");
  demo->callback([a] { a->name.empty() ? list_demos() : run(*a); });
}

}  // namespace moetb::cli
