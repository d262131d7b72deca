// headnet/layers/linear.hpp: Linear, a fully connected layer.
//
// x: (N, in_features) -> y: (N, out_features);  weight: (out_features, in_features), bias:
// (out_features), laid out as PyTorch's. The arithmetic is in kernels/linear.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "headnet/core/init.hpp"
#include "headnet/kernels/linear.hpp"
#include "headnet/layers/layer.hpp"

namespace headnet {

/// A fully connected layer y = x W^T + b, as torch.nn.Linear.
template <typename T>
class Linear : public Layer<T> {
 public:
  /// Linear(in_features, out_features, bias), with PyTorch's initialisation.
  Linear(int in_features, int out_features, bool bias = true)
      : in_features_(in_features), out_features_(out_features), has_bias_(bias) {
    detail::require_at_least("Linear", "in_features", in_features, 1);
    detail::require_at_least("Linear", "out_features", out_features, 1);
    weight_ = Tensor<T>({out_features, in_features});
    grad_weight_ = Tensor<T>(weight_.shape());
    if (has_bias_) {
      bias_ = Tensor<T>({out_features});
      grad_bias_ = Tensor<T>(bias_.shape());
    }
    reset_own_parameters(default_generator());
  }

  std::string type() const override { return "Linear"; }
  std::string describe() const override {
    return "Linear(" + std::to_string(in_features_) + ", " + std::to_string(out_features_) +
           (has_bias_ ? "" : ", bias=false") + ")";
  }

  Shape output_shape(const Shape& x) const override {
    if (x.rank() == 2 && x[1] == in_features_) return Shape{x[0], out_features_};
    std::int64_t features = x.rank() >= 2 ? x.numel() / (x[0] ? x[0] : 1) : (x.rank() == 1 ? x[0] : 1);
    std::string message = "expects " + std::to_string(in_features_) + " input features, got " +
                          std::to_string(x.rank() == 2 ? x[1] : features) + " (input " + x.str() + ")";
    if (x.rank() != 2) message += "; it takes (N, features): put a Flatten before it";
    throw ShapeError(message);
  }

  /// y = x weight^T + bias
  Tensor<T> forward(const Tensor<T>& x) override {
    output_.resize(this->checked_output_shape(x.shape()));
    input_ = x;
    kernels::linear_forward<T>(x.size(0), in_features_, out_features_, x.data(), weight_.data(),
                               has_bias_ ? bias_.data() : nullptr, output_.data(), gemm_workspace_);
    return output_;
  }

  /// dx = dy weight;  grad_weight += dy^T x;  grad_bias += sum_n dy
  Tensor<T> backward(const Tensor<T>& dy) override {
    this->check_grad_output(output_.shape(), dy);
    T* dx = nullptr;
    if (this->needs_input_grad_) {
      grad_input_.resize(input_.shape());
      dx = grad_input_.data();
    }
    kernels::linear_backward<T>(input_.size(0), in_features_, out_features_, input_.data(), weight_.data(), dy.data(),
                                dx, this->requires_grad("weight") ? grad_weight_.data() : nullptr,
                                has_bias_ && this->requires_grad("bias") ? grad_bias_.data() : nullptr, gemm_workspace_);
    return this->needs_input_grad_ ? grad_input_ : Tensor<T>();
  }

  std::vector<Parameter<T>> own_parameters() override {
    std::vector<Parameter<T>> p{{"weight", weight_, grad_weight_}};
    if (has_bias_) p.push_back({"bias", bias_, grad_bias_});
    return p;
  }

  void reset_own_parameters(Generator& gen) override {
    init::pytorch_default(weight_, has_bias_ ? &bias_ : nullptr, in_features_, gen);
  }

  /// The weight, (out_features, in_features).
  Tensor<T>& weight() { return weight_; }
  /// The bias, (out_features) (empty without bias).
  Tensor<T>& bias() { return bias_; }
  /// The weight's gradient.
  Tensor<T>& grad_weight() { return grad_weight_; }
  /// The bias's gradient.
  Tensor<T>& grad_bias() { return grad_bias_; }
  /// Input features.
  int in_features() const { return in_features_; }
  /// Output features.
  int out_features() const { return out_features_; }
  /// Whether the layer adds a bias.
  bool has_bias() const { return has_bias_; }

 private:
  int in_features_, out_features_;
  bool has_bias_;
  Tensor<T> weight_, bias_, grad_weight_, grad_bias_;
  Tensor<T> input_;  // handle to the forward input, for grad_weight
  Tensor<T> output_, grad_input_;
  kernels::GemmWorkspace<T> gemm_workspace_;
};

}  // namespace headnet
