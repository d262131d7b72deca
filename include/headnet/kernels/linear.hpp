// headnet/kernels/linear.hpp: the fully connected layer's arithmetic.
//
// Shapes (row-major): x, dx: (N, in)   weight, grad_weight: (out, in)   bias: (out)   y, dy: (N, out)
//   forward   y  = x weight^T + bias
//   backward  dx = dy weight,  grad_weight += dy^T x,  grad_bias += colsum(dy)
#pragma once

#include <cstdint>

#include "headnet/kernels/gemm.hpp"

namespace headnet {
namespace kernels {

/// bias may be null.
template <typename T>
void linear_forward(std::int64_t N, std::int64_t in, std::int64_t out, const T* x, const T* weight, const T* bias,
                    T* y, GemmWorkspace<T>& ws) {
  gemm<false, true>(N, out, in, x, in, weight, in, y, out, false, ws);
  if (bias)
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t o = 0; o < out; ++o) y[n * out + o] += bias[o];
}

/// Pass null for what is not wanted. dx is overwritten; grad_weight and grad_bias accumulate.
template <typename T>
void linear_backward(std::int64_t N, std::int64_t in, std::int64_t out, const T* x, const T* weight, const T* dy,
                     T* dx, T* grad_weight, T* grad_bias, GemmWorkspace<T>& ws) {
  if (dx) gemm<false, false>(N, in, out, dy, out, weight, in, dx, in, false, ws);
  if (grad_weight) gemm<true, false>(out, in, N, dy, out, x, in, grad_weight, in, true, ws);
  if (grad_bias)
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t o = 0; o < out; ++o) grad_bias[o] += dy[n * out + o];
}

}  // namespace kernels
}  // namespace headnet
