// headnet/kernels/relu.hpp: y = max(x, 0) and its gradient dx = dy * [y > 0].
//
// A NaN input stays NaN (as in PyTorch) so that a diverging run is caught by the loss check rather
// than silently turned into zeros.
#pragma once

#include <cstdint>

#include "headnet/kernels/activations.hpp"

namespace headnet {
namespace kernels {

/// Below this many elements a parallel region costs more than it saves.
constexpr std::int64_t relu_parallel_threshold = std::int64_t(1) << 17;

/// ReLU as an element-wise op (value and derivative, as the ops of kernels/activations.hpp), for
/// layers that apply it inside their own loops (BatchNorm fused with a ReLU).
struct ReLUOp {
  /// max(x, 0); NaN stays NaN.
  template <typename T>
  T value(T x) const {
    return x < T(0) ? T(0) : x;
  }
  /// 1 where x > 0, else 0 (the mask relu_backward reads from y > 0).
  template <typename T>
  T derivative(T x, T) const {
    return x > T(0) ? T(1) : T(0);
  }
  /// The same in float, selected on the bit patterns (detail::select_float): as a conditional
  /// between 1 and 0 it stayed a branch in the SSE2 copy of BatchNorm's fused loops.
  float derivative(float x, float) const { return detail::select_float(x > 0.0f ? -1 : 0, 1.0f, 0.0f); }
};

/// y = max(x, 0) over n elements.
template <typename T>
void relu_forward(std::int64_t n, const T* x, T* y) {
#pragma omp parallel for simd schedule(static) if (n > relu_parallel_threshold)
  for (std::int64_t i = 0; i < n; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];
}

/// dx is overwritten; y is the forward output.
template <typename T>
void relu_backward(std::int64_t n, const T* y, const T* dy, T* dx) {
  // dy read unconditionally: as `y > 0 ? dy[i] : 0` the read was conditional, which SSE2 cannot
  // vectorise (no masked load), so a build without -march ran this loop one element at a time,
  // mispredicting on every sign change.
#pragma omp parallel for simd schedule(static) if (n > relu_parallel_threshold)
  for (std::int64_t i = 0; i < n; ++i) {
    const T d = dy[i];
    dx[i] = y[i] > T(0) ? d : T(0);
  }
}

}  // namespace kernels
}  // namespace headnet
