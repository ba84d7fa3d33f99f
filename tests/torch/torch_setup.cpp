// Run-wide setup of the LibTorch test binary: one intra-op thread (tests are small, and
// on this 2-core machine OpenMP threads cost more than they give; see design.md).
// Simplification: a Catch2 listener rather than a custom main, so catch_main.cpp is shared.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <ATen/Parallel.h>
#include "tests/torch/torch_catch.h"

namespace {

struct SingleThreadListener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testRunStarting(const Catch::TestRunInfo& info) override {
    at::set_num_threads(1);
    TestEventListenerBase::testRunStarting(info);
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(SingleThreadListener)

TEST_CASE("the torch tests run on one intra-op thread", "[routers]") { CHECK(at::get_num_threads() == 1); }
