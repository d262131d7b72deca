// headnet/layers/dropout.hpp: Dropout(p), inverted: training zeroes each element with probability
// p and scales the others by 1 / (1 - p); eval mode is the identity.
//
// The mask comes from the layer's own generator (the dropout stream of a seed drawn from
// default_generator() when the layer is built, so manual_seed fixes it). The generator is one of
// the layer's own_generators(), so a Trainer checkpoint saves it and a resumed run drops exactly the
// same elements.
#pragma once

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "headnet/layers/layer.hpp"

namespace headnet {

/// Dropout(p): zeroes each element with probability p in training and scales the rest by 1 / (1 - p).
template <typename T>
class Dropout : public Layer<T> {
 public:
  /// Dropout with rate p, its mask drawn from its own generator (saved in checkpoints).
  explicit Dropout(double p = 0.5) : p_(p), generator_(default_generator().next(), Generator::dropout) {
    if (!(p >= 0 && p <= 1)) {
      char b[96];
      std::snprintf(b, sizeof b, "Dropout: p must be in [0, 1], got %g", p);
      throw ShapeError(b);
    }
  }

  std::string type() const override { return "Dropout"; }
  std::string describe() const override {
    char b[48];
    std::snprintf(b, sizeof b, "Dropout(p=%g)", p_);
    return b;
  }
  Shape output_shape(const Shape& x) const override { return x; }

  /// training: y = x * mask, mask = 0 with probability p, else 1 / (1 - p);  eval: y = x
  Tensor<T> forward(const Tensor<T>& x) override {
    active_ = this->training_ && p_ > 0;
    if (!active_) return x;
    output_.resize(x.shape());
    mask_.resize(x.shape());
    const T keep_scale = p_ < 1 ? T(1.0 / (1.0 - p_)) : T(0);
    const T* in = x.data();
    T* out = output_.data();
    T* m = mask_.data();
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      m[i] = generator_.uniform() < p_ ? T(0) : keep_scale;
      out[i] = in[i] * m[i];
    }
    return output_;
  }

  /// dx = dy * mask (dy itself in eval mode)
  Tensor<T> backward(const Tensor<T>& dy) override {
    if (!this->needs_input_grad_) return Tensor<T>();
    if (!active_) return dy;
    this->check_grad_output(output_.shape(), dy);
    grad_input_.resize(dy.shape());
    for (std::int64_t i = 0; i < dy.numel(); ++i) grad_input_.data()[i] = dy.data()[i] * mask_.data()[i];
    return grad_input_;
  }

  std::vector<std::pair<std::string, Generator*>> own_generators() override { return {{"generator", &generator_}}; }
  /// The generator that draws the masks.
  Generator& generator() { return generator_; }
  /// The drop probability.
  double p() const { return p_; }

 private:
  double p_;
  Generator generator_;
  bool active_ = false;
  Tensor<T> output_, mask_, grad_input_;
};

}  // namespace headnet
