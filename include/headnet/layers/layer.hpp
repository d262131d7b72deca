// headnet/layers/layer.hpp: what every layer is.
//
// Contract of a Layer<T>
// - forward(x) checks x's shape, computes y, caches what backward needs (usually a handle to x or
//   y, not a copy) and returns y. The returned tensor is the layer's own buffer: it stays valid
//   until the next forward, which overwrites it (and reuses its memory).
// - backward(dy) must follow the forward it belongs to. It *accumulates* (+=) parameter gradients
//   into the gradient buffers returned by parameters(), so that zero_grad() is explicit, and returns
//   dx, also a buffer of the layer's. When set_needs_input_grad(false) was called it skips dx and
//   returns an empty tensor (the first layer of a network never needs it).
// - output_shape(shape) says what forward would return, or throws ShapeError with a message that
//   names what was expected and what was given (without the layer's name: callers add context).
// - parameters() lists (name, value, gradient) handles that share the layer's storage, so an
//   optimiser that holds them updates the layer in place.
//
// To add a layer: copy relu.hpp (no parameters) or linear.hpp (with parameters), put its arithmetic
// in kernels/, and add one line to the gradient-check table in tests/test_gradients.cpp.
#pragma once

#include <string>
#include <vector>

#include "headnet/core/error.hpp"
#include "headnet/core/random.hpp"
#include "headnet/core/shape.hpp"
#include "headnet/core/tensor.hpp"

namespace headnet {

template <typename T>
struct Parameter {
  std::string name;  // "weight", or "conv1.weight" once a Sequential has prefixed it
  Tensor<T> value;
  Tensor<T> grad;
};

template <typename T>
class Layer {
 public:
  virtual ~Layer() = default;

  // "Conv2d", "Linear", ...: what error messages and summaries call the layer.
  virtual std::string type() const = 0;
  // "Conv2d(3, 6, kernel_size=5, stride=1, padding=0)": the type with its configuration.
  virtual std::string describe() const { return type(); }

  virtual Shape output_shape(const Shape& input) const = 0;
  virtual Tensor<T> forward(const Tensor<T>& input) = 0;
  virtual Tensor<T> backward(const Tensor<T>& grad_output) = 0;

  virtual std::vector<Parameter<T>> parameters() { return {}; }
  // Draws fresh initial values from `gen`, as the constructor did from default_generator().
  virtual void reset_parameters(Generator& /*gen*/) {}

  // Training or evaluation mode; layers such as BatchNorm and Dropout behave differently in each.
  virtual void train(bool mode = true) { training_ = mode; }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  virtual void set_needs_input_grad(bool needed) { needs_input_grad_ = needed; }
  bool needs_input_grad() const { return needs_input_grad_; }

  // Fusion, used by Sequential: fuse_next(next) makes this layer compute `next` as part of its own
  // output (Conv2d takes a following ReLU: y = max(conv(x) + b, 0), one pass over the activations
  // instead of three) and says whether it did; Sequential then skips `next`. unfuse() undoes it.
  // Only an idempotent `next` may be fused (relu(relu(y)) = relu(y)), so that code walking the
  // layers one by one (the trainer's NaN diagnosis) still computes the same values.
  virtual bool fuse_next(const Layer<T>& /*next*/) { return false; }
  virtual void unfuse() {}

 protected:
  // output_shape() with the layer's type in front of any error, for a layer used on its own.
  Shape checked_output_shape(const Shape& input) const {
    try {
      return output_shape(input);
    } catch (const ShapeError& e) {
      throw ShapeError(type() + ": " + e.what());
    }
  }

  // Throws unless backward is called after a forward whose output had the shape of grad_output.
  void check_grad_output(const Shape& expected, const Tensor<T>& grad_output) const {
    if (grad_output.shape() != expected) {
      throw ShapeError(type() + ": backward expects a gradient of shape " + expected.str() + ", got " +
                       grad_output.shape().str() + (expected.rank() == 0 ? " (was forward called?)" : ""));
    }
  }

  bool training_ = true;
  bool needs_input_grad_ = true;
};

}  // namespace headnet
