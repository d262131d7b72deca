// headnet/kernels/linear.hpp: the fully connected layer's arithmetic.
//
// Shapes (row-major): x, dx: (N, in)   weight, grad_weight: (out, in)   bias: (out)   y, dy: (N, out)
//   forward   y  = x weight^T + bias
//   backward  dx = dy weight,  grad_weight += dy^T x,  grad_bias += colsum(dy)
#pragma once

#include <cstdint>

#include <Eigen/Core>

namespace headnet {
namespace kernels {

namespace detail_linear {
template <typename T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
}  // namespace detail_linear

// bias may be null.
template <typename T>
void linear_forward(std::int64_t N, std::int64_t in, std::int64_t out, const T* x, const T* weight, const T* bias,
                    T* y) {
  using M = detail_linear::Matrix<T>;
  Eigen::Map<M> Y(y, N, out);
  Y.noalias() = Eigen::Map<const M>(x, N, in) * Eigen::Map<const M>(weight, out, in).transpose();
  if (bias) Y.rowwise() += Eigen::Map<const detail_linear::Vector<T>>(bias, out).transpose();
}

// Pass null for what is not wanted. dx is overwritten; grad_weight and grad_bias accumulate.
template <typename T>
void linear_backward(std::int64_t N, std::int64_t in, std::int64_t out, const T* x, const T* weight, const T* dy,
                     T* dx, T* grad_weight, T* grad_bias) {
  using M = detail_linear::Matrix<T>;
  Eigen::Map<const M> dY(dy, N, out);
  if (dx) Eigen::Map<M>(dx, N, in).noalias() = dY * Eigen::Map<const M>(weight, out, in);
  if (grad_weight) Eigen::Map<M>(grad_weight, out, in).noalias() += dY.transpose() * Eigen::Map<const M>(x, N, in);
  if (grad_bias) Eigen::Map<detail_linear::Vector<T>>(grad_bias, out) += dY.colwise().sum().transpose();
}

}  // namespace kernels
}  // namespace headnet
