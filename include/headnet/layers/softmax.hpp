// headnet/layers/softmax.hpp: Softmax and LogSoftmax over dim 1 (classes, or channels), for
// inference outputs.
//
// x: (N, C) or (N, C, ...): for each sample and position, over the C values along dim 1,
//   Softmax     y_c = exp(x_c - m) / sum_k exp(x_k - m)          (m = max_k x_k: no overflow)
//   LogSoftmax  y_c = x_c - m - log sum_k exp(x_k - m)
// backward:     Softmax dx = y (dy - sum_k dy_k y_k);  LogSoftmax dx = dy - exp(y) sum_k dy_k
// For training a classifier use CrossEntropyLoss on the logits, which fuses the log-softmax.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>

#include "headnet/layers/layer.hpp"

namespace headnet {

/// The shared implementation of Softmax and LogSoftmax over dimension 1.
template <typename T, bool logarithm>
class SoftmaxOverDim1 : public Layer<T> {
 public:
  std::string type() const override { return logarithm ? "LogSoftmax" : "Softmax"; }
  std::string describe() const override { return type() + "(dim=1)"; }

  Shape output_shape(const Shape& x) const override {
    if (x.rank() < 2) throw ShapeError("expects input (N, C, ...), got " + x.str());
    return x;
  }

  Tensor<T> forward(const Tensor<T>& x) override {
    output_.resize(this->checked_output_shape(x.shape()));
    const std::int64_t N = x.size(0), C = x.size(1), S = x.numel() / std::max<std::int64_t>(1, N * C);
    const T* in = x.data();
    T* out = output_.data();
#pragma omp parallel for schedule(static) if (x.numel() > (1 << 15))
    for (std::int64_t ns = 0; ns < N * S; ++ns) {
      const std::int64_t base = (ns / S) * C * S + ns % S;
      T m = in[base];
      for (std::int64_t c = 1; c < C; ++c) m = std::max(m, in[base + c * S]);
      T sum = T(0);
      for (std::int64_t c = 0; c < C; ++c) sum += std::exp(in[base + c * S] - m);
      const T log_sum = std::log(sum);
      for (std::int64_t c = 0; c < C; ++c)
        out[base + c * S] = logarithm ? in[base + c * S] - m - log_sum : std::exp(in[base + c * S] - m) / sum;
    }
    return output_;
  }

  Tensor<T> backward(const Tensor<T>& dy) override {
    this->check_grad_output(output_.shape(), dy);
    if (!this->needs_input_grad_) return Tensor<T>();
    grad_input_.resize(dy.shape());
    const std::int64_t N = dy.size(0), C = dy.size(1), S = dy.numel() / std::max<std::int64_t>(1, N * C);
    const T* y = output_.data();
    const T* g = dy.data();
    T* dx = grad_input_.data();
#pragma omp parallel for schedule(static) if (dy.numel() > (1 << 15))
    for (std::int64_t ns = 0; ns < N * S; ++ns) {
      const std::int64_t base = (ns / S) * C * S + ns % S;
      T sum = T(0);
      for (std::int64_t c = 0; c < C; ++c) sum += logarithm ? g[base + c * S] : g[base + c * S] * y[base + c * S];
      for (std::int64_t c = 0; c < C; ++c) {
        const std::int64_t i = base + c * S;
        dx[i] = logarithm ? g[i] - std::exp(y[i]) * sum : y[i] * (g[i] - sum);
      }
    }
    return grad_input_;
  }

 private:
  Tensor<T> output_, grad_input_;
};

/// Softmax over dimension 1, as torch.nn.Softmax(dim=1).
template <typename T>
using Softmax = SoftmaxOverDim1<T, false>;
/// LogSoftmax over dimension 1, as torch.nn.LogSoftmax(dim=1).
template <typename T>
using LogSoftmax = SoftmaxOverDim1<T, true>;

}  // namespace headnet
