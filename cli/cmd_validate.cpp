// `moetb validate`: run the planted validation suite and print expected vs measured;
// exit code 1 if any check fails.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/output.h"
#include "oracle/validation.h"

namespace moetb::cli {

void add_validate(CLI::App& app) {
  auto* cmd = app.add_subcommand("validate", "Check the metrics on planted routing with known answers");
  struct Args {
    bool json = false, list = false;
    std::vector<std::string> only;
    std::string out = "-";
  };
  auto a = std::make_shared<Args>();
  cmd->add_flag("--json", a->json, "Print JSON (moetb-validate/1)");
  cmd->add_flag("--list", a->list, "List the scenarios and exit");
  cmd->add_option("--scenario", a->only, "Run only these scenarios (repeatable)");
  cmd->add_option("--out,-o", a->out, "Write to this file (atomically) instead of stdout");
  cmd->callback([a] {
    if (a->list) {
      for (const auto& s : validation_scenarios()) std::cout << s.name << ": " << s.description << "\n";
      return;
    }
    const auto checks = run_validation(a->only);
    nlohmann::json j = validation_json(checks);
    j["git_revision"] = git_revision();
    write_output(a->out, a->json ? j.dump(2) + "\n" : validation_table(checks));
    if (j["failed"].get<int>() > 0) exit_code() = 1;
  });
}

}  // namespace moetb::cli
