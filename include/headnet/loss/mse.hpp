// headnet/loss/mse.hpp: MSELoss, the mean squared error, as PyTorch's.
//
// forward(input, target), both of one shape -> reduced sum_i (input_i - target_i)^2 (divided by
// the element count for the mean); backward() -> 2 (input - target) / divisor, input's shape.
// With reduction none, losses() holds each element's square and backward(grad_losses) weighs them.
#pragma once

#include "headnet/loss/reduction.hpp"

namespace headnet {

/// Mean squared error between an input and a target of the same shape, as torch.nn.MSELoss.
template <typename T>
class MSELoss {
 public:
  /// A loss with `reduction`.
  explicit MSELoss(Reduction reduction = Reduction::mean) : reduction_(reduction) {}

  /// The loss of `input` against `target`.
  T forward(const Tensor<T>& input, const Tensor<T>& target) {
    if (input.shape() != target.shape()) {
      throw ShapeError("MSELoss: input " + input.shape().str() + " and target " + target.shape().str() + " differ in shape");
    }
    const std::int64_t n = input.numel();
    const double divisor = reduction_ == Reduction::mean ? double(n) : 1.0;
    grad_.resize(input.shape());
    losses_.resize(input.shape());
    double total = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const T d = input.data()[i] - target.data()[i];
      losses_.data()[i] = d * d;
      total += double(d) * double(d);
      grad_.data()[i] = T(2.0 * double(d) / divisor);
    }
    loss_ = T(n ? total / divisor : 0.0);
    return loss_;
  }

  /// d loss / d input, computed during forward.
  Tensor<T> backward() const {
    if (grad_.rank() == 0) throw ShapeError("MSELoss: backward called before forward");
    return grad_;
  }
  /// With reduction none: the gradient of sum_i grad_losses[i] loss_i.
  Tensor<T> backward(const Tensor<T>& grad_losses) {
    if (grad_losses.shape() != grad_.shape()) {
      throw ShapeError("MSELoss: backward expects a gradient of shape " + grad_.shape().str() + ", got " +
                       grad_losses.shape().str());
    }
    weighted_.resize(grad_.shape());
    for (std::int64_t i = 0; i < grad_.numel(); ++i) weighted_.data()[i] = grad_.data()[i] * grad_losses.data()[i];
    return weighted_;
  }
  /// The per-element losses of the last forward.
  const Tensor<T>& losses() const { return losses_; }

 private:
  Reduction reduction_;
  Tensor<T> grad_, losses_, weighted_;
  T loss_ = T(0);
};

}  // namespace headnet
