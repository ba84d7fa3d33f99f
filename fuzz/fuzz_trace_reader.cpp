// libFuzzer target for the trace reader: any byte string is parsed as a safetensors
// trace; opening must either succeed and stream through the full metric suite or
// throw TraceError, never crash or read out of bounds (run under ASan + UBSan).
// Build and run: see docs/trace-format.md ("Fuzzing the reader").
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <string>

#include "metrics/trace.h"
#include "metrics/trace_metrics.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The reader memory-maps files, so the input goes through a real file.
  static const std::string path = "/tmp/moetb-fuzz-" + std::to_string(::getpid()) + ".safetensors";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  if (size > 0) std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    moetb::Trace trace({path});
    moetb::MetricsOptions options;
    options.threads = 1;
    (void)moetb::compute_trace_metrics(trace, options);
  } catch (const moetb::TraceError&) {
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
