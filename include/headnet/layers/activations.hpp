// headnet/layers/activations.hpp: GELU, LeakyReLU, SiLU, Sigmoid and Tanh, elementwise, any shape.
//
// Each is an Activation<T, Op> over an Op of kernels/activations.hpp (the formulas are there):
// forward y = f(x), backward dx = dy f'(x), caching handles to x and y, not copies. ReLU has its own
// header because Conv2d fuses it.
#pragma once

#include <cstdio>
#include <string>

#include "headnet/kernels/activations.hpp"
#include "headnet/layers/layer.hpp"

namespace headnet {

/// An element-wise activation layer y = Op(x); GELU, LeakyReLU, SiLU, Sigmoid and Tanh are its instances.
template <typename T, typename Op>
class Activation : public Layer<T> {
 public:
  /// The input's shape: activations work element by element.
  Shape output_shape(const Shape& x) const override { return x; }

  /// y = f(x)
  Tensor<T> forward(const Tensor<T>& x) override {
    output_.resize(x.shape());
    input_ = x;
    kernels::activation_forward(op_, x.numel(), x.data(), output_.data());
    return output_;
  }

  /// dx = dy f'(x)
  Tensor<T> backward(const Tensor<T>& dy) override {
    this->check_grad_output(output_.shape(), dy);
    if (!this->needs_input_grad_) return Tensor<T>();
    grad_input_.resize(dy.shape());
    kernels::activation_backward(op_, dy.numel(), input_.data(), output_.data(), dy.data(), grad_input_.data());
    return grad_input_;
  }

 protected:
  /// An activation computing `op`.
  explicit Activation(Op op = Op()) : op_(op) {}
  Op op_;  ///< the element-wise function and its derivative

 private:
  Tensor<T> input_, output_, grad_input_;
};

/// GELU(approximate = "none"), or "tanh" for the tanh approximation.
template <typename T>
class GELU : public Activation<T, kernels::GeluOp> {
 public:
  /// GELU, exact (`"none"`) or with the tanh approximation (`"tanh"`), as PyTorch.
  explicit GELU(const std::string& approximate = "none")
      : Activation<T, kernels::GeluOp>(kernels::GeluOp{approximate == "tanh"}) {
    if (approximate != "none" && approximate != "tanh") {
      throw ShapeError("GELU: approximate must be \"none\" or \"tanh\", got \"" + approximate + "\"");
    }
  }
  std::string type() const override { return "GELU"; }
  std::string describe() const override { return this->op_.tanh_approximation ? "GELU(approximate=\"tanh\")" : "GELU()"; }
  /// "none" or "tanh".
  std::string approximate() const { return this->op_.tanh_approximation ? "tanh" : "none"; }
};

/// LeakyReLU(negative_slope): x for x > 0, negative_slope * x otherwise.
template <typename T>
class LeakyReLU : public Activation<T, kernels::LeakyReLUOp> {
 public:
  /// LeakyReLU with PyTorch's default slope 0.01.
  explicit LeakyReLU(double negative_slope = 0.01) : Activation<T, kernels::LeakyReLUOp>(kernels::LeakyReLUOp{negative_slope}) {}
  std::string type() const override { return "LeakyReLU"; }
  std::string describe() const override {
    char b[64];
    std::snprintf(b, sizeof b, "LeakyReLU(negative_slope=%g)", this->op_.negative_slope);
    return b;
  }
  /// The slope for negative inputs.
  double negative_slope() const { return this->op_.negative_slope; }
};

/// SiLU (swish): x * sigmoid(x).
template <typename T>
class SiLU : public Activation<T, kernels::SiLUOp> {
 public:
  SiLU() = default;
  std::string type() const override { return "SiLU"; }
};

/// The logistic sigmoid, element-wise.
template <typename T>
class Sigmoid : public Activation<T, kernels::SigmoidOp> {
 public:
  Sigmoid() = default;
  std::string type() const override { return "Sigmoid"; }
};

/// The hyperbolic tangent, element-wise.
template <typename T>
class Tanh : public Activation<T, kernels::TanhOp> {
 public:
  Tanh() = default;
  std::string type() const override { return "Tanh"; }
};

}  // namespace headnet
