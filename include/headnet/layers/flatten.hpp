// headnet/layers/flatten.hpp: Flatten, (N, C, H, W) -> (N, C*H*W), as torch.flatten(x, 1).
//
// A view in both directions: no element is copied.
#pragma once

#include <string>

#include "headnet/layers/layer.hpp"

namespace headnet {

template <typename T>
class Flatten : public Layer<T> {
 public:
  std::string type() const override { return "Flatten"; }

  Shape output_shape(const Shape& x) const override {
    if (x.rank() < 1) throw ShapeError("expects input with a batch dimension, got " + x.str());
    return Shape{x[0], x[0] ? x.numel() / x[0] : 0};
  }

  Tensor<T> forward(const Tensor<T>& x) override {
    input_shape_ = x.shape();
    output_shape_ = this->checked_output_shape(x.shape());
    return x.reshape(output_shape_);
  }

  Tensor<T> backward(const Tensor<T>& dy) override {
    this->check_grad_output(output_shape_, dy);
    if (!this->needs_input_grad_) return Tensor<T>();
    return dy.reshape(input_shape_);
  }

 private:
  Shape input_shape_, output_shape_;
};

}  // namespace headnet
