// Runs the real moetb binary (MOETB_BINARY) as a user would, for the CLI tests: in its own
// working directory, with stdout and stderr captured in a second one, so that a test can
// check what the command left behind. Plus the "one stderr line" check every error needs.
#pragma once
#include <sys/wait.h>

#include <cstdlib>
#include <string>

#include "tests/core/trace_test_util.h"

namespace ctu {

struct Result {
  int rc = -1;
  std::string out, err;
};

struct Cli {
  explicit Cli(const std::string& tag = "cli") : work(tag), io(tag + "-io") {}
  // Runs `moetb ARGS` in the working directory.
  Result run(const std::string& args) const {
    const std::string out = io.file("stdout"), err = io.file("stderr");
    const std::string cmd = "cd '" + work.path() + "' && '" + MOETB_BINARY + "' " + args + " >'" + out + "' 2>'" + err + "'";
    const int status = std::system(cmd.c_str());
    Result r;
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = ttu::read_bytes(out);
    r.err = ttu::read_bytes(err);
    return r;
  }
  ttu::TempDir work, io;
};

inline bool one_line(const std::string& s) { return !s.empty() && s.back() == '\n' && s.find('\n') == s.size() - 1; }

}  // namespace ctu
