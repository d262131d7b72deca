// headnet/loss/reduction.hpp: what the losses share: PyTorch's reduction, and label checks.
//
// Reduction::mean (the default) divides the summed per-sample losses by their count, sum does
// not, none keeps them apart: forward() then returns their sum, losses() holds each one, and
// backward(grad_losses) weighs each sample's gradient (backward() weighs them all by 1).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "headnet/core/error.hpp"
#include "headnet/core/tensor.hpp"

namespace headnet {

/// How a loss combines per-sample losses: their mean, their sum, or none (one per sample).
enum class Reduction { mean, sum, none };

/// "mean", "sum" or "none".
inline const char* reduction_name(Reduction r) { return r == Reduction::mean ? "mean" : r == Reduction::sum ? "sum" : "none"; }

namespace detail {
// Throws ShapeError unless `what` ("logits") is (N, classes) and the N labels lie in [0, classes).
template <typename T>
void check_labels(const char* who, const char* what, const Tensor<T>& logits, const std::int32_t* labels,
                  std::int64_t count) {
  if (count != (logits.rank() >= 1 ? logits.size(0) : 0)) {
    throw ShapeError(std::string(who) + ": " + std::to_string(count) + " labels for " + what + " " + logits.shape().str());
  }
  if (logits.rank() != 2) {
    throw ShapeError(std::string(who) + ": expects " + what + " (N, classes), got " + logits.shape().str());
  }
  const std::int64_t classes = logits.size(1);
  for (std::int64_t n = 0; n < count; ++n) {
    if (labels[n] < 0 || labels[n] >= classes) {
      throw ShapeError(std::string(who) + ": label " + std::to_string(labels[n]) + " of sample " + std::to_string(n) +
                       " is outside [0, " + std::to_string(classes) + ")");
    }
  }
}
// Rows of `grad` (the gradient of the summed losses) scaled by each sample's upstream gradient.
template <typename T>
void weigh_rows(const char* who, const Tensor<T>& grad, const Tensor<T>& grad_losses, Tensor<T>& out) {
  const std::int64_t N = grad.rank() ? grad.size(0) : 0;
  if (grad_losses.numel() != N) {
    throw ShapeError(std::string(who) + ": backward expects one gradient per sample (" + std::to_string(N) + "), got " +
                     grad_losses.shape().str());
  }
  out.resize(grad.shape());
  const std::int64_t row = N ? grad.numel() / N : 0;
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t k = 0; k < row; ++k) out.data()[n * row + k] = grad.data()[n * row + k] * grad_losses.data()[n];
}
}  // namespace detail

}  // namespace headnet
