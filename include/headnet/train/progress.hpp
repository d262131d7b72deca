// headnet/train/progress.hpp: ProgressBar, what a training run shows while it runs.
//
// On a terminal (stderr is a tty): one line redrawn in place at most four times a second, with a
// bar, the epoch and step, the running loss, images/s, the time left and the last accuracy.
// Otherwise: nothing while an epoch runs and one plain line at its end, so that logs stay short.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include <unistd.h>

namespace headnet {
namespace train {

/// A one-line progress bar on a terminal (nothing when stderr is not one).
class ProgressBar {
 public:
  /// A bar, off when `enabled` is false, with `prefix` in front.
  explicit ProgressBar(bool enabled = true, std::string prefix = "")
      : enabled_(enabled), terminal_(enabled && ::isatty(STDERR_FILENO)), prefix_(std::move(prefix)) {}

  /// Redraws the bar (at most a few times a second).
  void update(int epoch, int epochs, std::int64_t step, std::int64_t steps, double loss, double images_per_second,
              double eta_seconds) {
    if (!terminal_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(250) && step != steps) return;
    last_ = now;
    const int width = 20;
    const int filled = steps > 0 ? int(double(width) * double(step) / double(steps)) : 0;
    char bar[width + 1];
    for (int i = 0; i < width; ++i) bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
    bar[width] = 0;
    const int eta = int(eta_seconds + 0.5);
    std::fprintf(stderr, "\r%s[%s] epoch %d/%d  step %lld/%lld  loss %.3f  %.0f img/s  ETA %d:%02d%s   ", prefix_.c_str(),
                 bar, epoch, epochs, (long long)step, (long long)steps, loss, images_per_second, eta / 60, eta % 60,
                 accuracy_.c_str());
    std::fflush(stderr);
    shown_ = true;
  }

  /// The end of an epoch: a plain line when not on a terminal.
  void epoch_done(int epoch, int epochs, double loss, double images_per_second, double accuracy = -1) {
    if (accuracy >= 0) {
      char b[48];
      std::snprintf(b, sizeof b, "  acc %.2f%%", accuracy);
      accuracy_ = b;
    }
    if (!enabled_ || terminal_) return;
    std::fprintf(stderr, "%sepoch %d/%d: loss %.4f, %.0f images/s%s\n", prefix_.c_str(), epoch, epochs, loss,
                 images_per_second, accuracy_.c_str());
    std::fflush(stderr);
  }

  /// Erases the line (before other output, and at the end).
  void clear() {
    if (terminal_ && shown_) std::fprintf(stderr, "\r%120s\r", "");
    shown_ = false;
  }

 private:
  bool enabled_, terminal_;
  std::string prefix_;
  std::string accuracy_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace train
}  // namespace headnet
