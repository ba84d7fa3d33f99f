// Output files of the CLI: results are written through a temporary name and a rename,
// except into a device or FIFO (`-o /dev/null`, a pipe), which must be written into and
// never replaced: renaming over /dev/null as root would replace the device itself.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/core/cli_test_util.h"
#include "tests/core/trace_test_util.h"

namespace fs = std::filesystem;

TEST_CASE("cli: -o into a FIFO writes through it and leaves it a FIFO", "[cli]") {
  ctu::Cli cli("cli-fifo");
  REQUIRE(cli.run("simulate -o t.safetensors -E 8 -k 2 -D 2 -L 1 -T 2000 --seed 1").rc == 0);
  const std::string fifo = cli.work.file("pipe");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string reader = "cat '" + fifo + "' > '" + cli.work.file("received.json") + "' &";
  REQUIRE(std::system(reader.c_str()) == 0);
  const ctu::Result r = cli.run("metrics t.safetensors --json -o pipe");
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(fs::is_fifo(fifo));
  for (int i = 0; i < 100 && ttu::read_bytes(cli.work.file("received.json")).find("moetb-metrics/1") == std::string::npos; ++i)
    ::usleep(20000);
  CHECK(ttu::contains(ttu::read_bytes(cli.work.file("received.json")), "moetb-metrics/1"));
  for (const auto& e : fs::directory_iterator(cli.work.path())) CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
}
