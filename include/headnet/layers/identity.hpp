// headnet/layers/identity.hpp: Identity (y = x) and Mul (y = c x, a constant: the fast CIFAR-10
// recipe scales its logits by 1/9), as PyTorch's nn.Identity and a multiplication by a number.
#pragma once

#include <cstdio>
#include <string>

#include "headnet/layers/layer.hpp"

namespace headnet {

/// y = x, as torch.nn.Identity (also what Dropout becomes in an ONNX file).
template <typename T>
class Identity : public Layer<T> {
 public:
  std::string type() const override { return "Identity"; }
  Shape output_shape(const Shape& x) const override { return x; }
  Tensor<T> forward(const Tensor<T>& x) override { return x; }  ///< the input itself: no copy
  Tensor<T> backward(const Tensor<T>& dy) override { return this->needs_input_grad_ ? dy : Tensor<T>(); }
};

/// Multiplication by a constant, y = scale * x.
template <typename T>
class Mul : public Layer<T> {
 public:
  /// y = scale * x.
  explicit Mul(double scale) : scale_(scale) {}
  std::string type() const override { return "Mul"; }
  std::string describe() const override {
    char b[48];
    std::snprintf(b, sizeof b, "Mul(%g)", scale_);
    return b;
  }
  Shape output_shape(const Shape& x) const override { return x; }

  /// y = scale x
  Tensor<T> forward(const Tensor<T>& x) override {
    output_.resize(x.shape());
    scaled(x, output_);
    return output_;
  }
  /// dx = scale dy
  Tensor<T> backward(const Tensor<T>& dy) override {
    this->check_grad_output(output_.shape(), dy);
    if (!this->needs_input_grad_) return Tensor<T>();
    grad_input_.resize(dy.shape());
    scaled(dy, grad_input_);
    return grad_input_;
  }
  /// The constant.
  double scale() const { return scale_; }

 private:
  void scaled(const Tensor<T>& in, Tensor<T>& out) const {
    const T s = T(scale_);
    const T* a = in.data();
    T* b = out.data();
    for (std::int64_t i = 0; i < in.numel(); ++i) b[i] = s * a[i];
  }
  double scale_;
  Tensor<T> output_, grad_input_;
};

}  // namespace headnet
