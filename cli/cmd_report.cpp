// `moetb report PATH --out FILE.html`: one self-contained HTML report (inline CSS and SVG, no
// scripts or network) of a training run directory, a sweep directory or a routing trace
// (reports/report.h). Written atomically: on any error nothing is left at FILE.
#include <memory>

#include "cli/commands.h"
#include "cli/output.h"
#include "reports/report.h"

namespace moetb::cli {

void add_report(CLI::App& app) {
  auto* cmd = app.add_subcommand("report", "Write a self-contained HTML report of a run, a sweep or a trace");
  struct Args {
    std::string path, out;
    bool force = false;
    reports::ReportOptions options;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("path", a->path, "A run directory, a sweep directory, or a trace (.safetensors file or folder of shards)")
      ->required();
  cmd->add_option("--out,-o", a->out, "The HTML file to write (atomically; - = stdout)")->required();
  cmd->add_flag("--force", a->force, "Replace an existing --out file");
  cmd->add_option("--title", a->options.title, "Title of the report (default: from the path)");
  cmd->add_option("--reference", a->options.references,
                  "A run directory whose metrics are shown beside the run's (repeatable; default: sibling runs named "
                  "oracle and random, when present)")
      ->allow_extra_args(false);  // one directory per --reference, so PATH may follow it
  cmd->callback([a] {
    std::vector<std::string> inputs = a->options.references;
    inputs.push_back(a->path);
    const OutputOptions out_opt = output_options(a->force, inputs);  // report RUN -o RUN/eval.json is refused
    if (a->out != "-") check_output(a->out, OutputKind::file, out_opt);
    const std::string html = reports::render_report(a->path, a->options);
    write_output(a->out, html, out_opt);
  });
}

}  // namespace moetb::cli
