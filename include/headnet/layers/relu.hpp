// headnet/layers/relu.hpp: ReLU, y = max(x, 0) elementwise, any shape.
#pragma once

#include <string>

#include "headnet/kernels/relu.hpp"
#include "headnet/layers/layer.hpp"

namespace headnet {

/// y = max(x, 0), as torch.nn.ReLU.
template <typename T>
class ReLU : public Layer<T> {
 public:
  std::string type() const override { return "ReLU"; }

  Shape output_shape(const Shape& x) const override { return x; }

  /// y = max(x, 0)
  Tensor<T> forward(const Tensor<T>& x) override {
    output_.resize(x.shape());
    kernels::relu_forward(x.numel(), x.data(), output_.data());
    return output_;
  }

  /// dx = dy where y > 0, else 0 (the output is cached: it carries the same mask as the input)
  Tensor<T> backward(const Tensor<T>& dy) override {
    this->check_grad_output(output_.shape(), dy);
    if (!this->needs_input_grad_) return Tensor<T>();
    grad_input_.resize(dy.shape());
    kernels::relu_backward(dy.numel(), output_.data(), dy.data(), grad_input_.data());
    return grad_input_;
  }

 private:
  Tensor<T> output_, grad_input_;
};

}  // namespace headnet
