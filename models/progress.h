// Training progress on stderr: a one-line bar redrawn in place on a terminal (step,
// tokens/s, loss, aux loss, max load violation), plain periodic lines otherwise (logs, CI).
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace moetb {

class Progress {
 public:
  Progress(bool enabled, int64_t total_steps, int64_t every)
      : enabled_(enabled), tty_(enabled && ::isatty(2)), total_(total_steps), every_(every) {}
  void update(int64_t step, double tokens_per_s, double loss_bits, double aux, double violation) {
    if (!enabled_) return;
    if (!tty_ && step % every_ != 0 && step != total_) return;
    const int width = 24;
    const auto filled = static_cast<int>(width * step / total_);
    std::fprintf(stderr, "%s[%.*s%*s] step %lld/%lld | %.0f tok/s | loss %.4f bits | aux %.4f | max load viol %.2f%s",
                 tty_ ? "\r" : "", filled, "########################", width - filled, "", static_cast<long long>(step),
                 static_cast<long long>(total_), tokens_per_s, loss_bits, aux, violation, tty_ ? "\x1b[K" : "\n");
    std::fflush(stderr);
  }
  void note(const std::string& text) {
    if (!enabled_) return;
    std::fprintf(stderr, "%s%s\n", tty_ ? "\r\x1b[K" : "", text.c_str());
  }
  void finish() {
    if (enabled_ && tty_) std::fprintf(stderr, "\n");
  }

 private:
  bool enabled_, tty_;
  int64_t total_, every_;
};

}  // namespace moetb
