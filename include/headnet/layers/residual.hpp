// headnet/layers/residual.hpp: Residual, y = body(x) + shortcut(x), or relu(body(x) + shortcut(x)).
//
// body: any layer, usually a Sequential (conv, BatchNorm, ReLU, conv, BatchNorm); shortcut: the
// identity when none is given, or any layer whose output has the body's shape (a strided 1x1 conv
// and a BatchNorm where the body changes the channels or the resolution). Backward sends dy down
// both branches and adds their input gradients. `.with_relu()` applies a ReLU to the sum in the same
// pass (the ResNet block's last step, without a layer or a name of its own).
//
// Names: the body is transparent, so its layers are named directly under the block ("conv1",
// "bn1", as in torchvision's BasicBlock); the shortcut is named `shortcut_name` ("shortcut" by
// default; "downsample" gives torchvision's keys). This is also how a user writes a block: hold the
// children, list them in children(), write forward and backward.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "headnet/kernels/relu.hpp"
#include "headnet/layers/layer.hpp"

namespace headnet {

/// A residual block y = body(x) + shortcut(x), the shortcut the identity unless given, optionally followed by ReLU.
template <typename T>
class Residual : public Layer<T> {
 public:
  /// y = body(x) + x.
  template <typename Body, typename = std::enable_if_t<std::is_base_of<Layer<T>, std::decay_t<Body>>::value>>
  explicit Residual(Body&& body) : body_(std::make_unique<std::decay_t<Body>>(std::forward<Body>(body))) {}

  template <typename Body, typename Shortcut,
            typename = std::enable_if_t<std::is_base_of<Layer<T>, std::decay_t<Body>>::value &&
                                        std::is_base_of<Layer<T>, std::decay_t<Shortcut>>::value>>
  /// y = body(x) + shortcut(x); the shortcut's entries are named `shortcut_name`.
  Residual(Body&& body, Shortcut&& shortcut, std::string shortcut_name = "shortcut")
      : body_(std::make_unique<std::decay_t<Body>>(std::forward<Body>(body))),
        shortcut_(std::make_unique<std::decay_t<Shortcut>>(std::forward<Shortcut>(shortcut))),
        shortcut_name_(std::move(shortcut_name)) {
    if (shortcut_name_.empty() || shortcut_name_.find('.') != std::string::npos)
      throw ShapeError("Residual: shortcut_name must be a non-empty name without '.', got '" + shortcut_name_ + "'");
    for (const auto& child : body_->children())
      if (child.name == shortcut_name_)
        throw ShapeError("Residual: the body already has a layer named '" + shortcut_name_ + "': choose another shortcut_name");
  }

  /// Residual<float>(body, shortcut).with_relu(): y = max(body(x) + shortcut(x), 0).
  Residual&& with_relu() && {
    relu_ = true;
    return std::move(*this);
  }
  /// Adds a ReLU after the sum.
  Residual& with_relu() & {
    relu_ = true;
    return *this;
  }
  /// Whether a ReLU follows the sum.
  bool relu() const { return relu_; }

  std::string type() const override { return "Residual"; }
  std::string describe() const override {
    return "Residual(" + body_->describe() + (shortcut_ ? ", " + shortcut_name_ + "=" + shortcut_->describe() : "") +
           (relu_ ? ", relu" : "") + ")";
  }

  Shape output_shape(const Shape& x) const override {
    const Shape body_shape = body_->output_shape(x);
    const Shape shortcut_shape = shortcut_ ? shortcut_->output_shape(x) : x;
    if (body_shape != shortcut_shape) {
      throw ShapeError("the body's output " + body_shape.str() + " and the " +
                       (shortcut_ ? shortcut_name_ + "'s output " : std::string("identity shortcut's ")) +
                       shortcut_shape.str() + " differ" + (shortcut_ ? "" : ": give a shortcut that maps the input to " + body_shape.str()));
    }
    return body_shape;
  }

  /// y = body(x) + shortcut(x)  (then max(y, 0) with_relu)
  Tensor<T> forward(const Tensor<T>& x) override {
    if (x.shape() != checked_input_shape_) {  // both branches checked once per input shape, not every step
      checked_output_shape_ = this->checked_output_shape(x.shape());
      checked_input_shape_ = x.shape();
    }
    output_.resize(checked_output_shape_);
    const Tensor<T> a = body_->forward(x);
    const Tensor<T> b = shortcut_ ? shortcut_->forward(x) : x;
    add(a, b, output_, relu_);
    return output_;
  }

  /// g = dy (masked by y > 0 with_relu);  dx = body'(g) + shortcut'(g)  (the identity passes g itself)
  Tensor<T> backward(const Tensor<T>& dy) override {
    this->check_grad_output(output_.shape(), dy);
    Tensor<T> g = dy;
    if (relu_) {
      masked_grad_.resize(dy.shape());
      kernels::relu_backward(dy.numel(), output_.data(), dy.data(), masked_grad_.data());
      g = masked_grad_;
    }
    const Tensor<T> dx_body = body_->backward(g);
    const Tensor<T> dx_shortcut = shortcut_ ? shortcut_->backward(g) : g;
    if (!this->needs_input_grad_) return Tensor<T>();
    grad_input_.resize(dx_body.shape());
    add(dx_body, dx_shortcut, grad_input_, false);
    return grad_input_;
  }

  std::vector<Child<T>> children() override {
    std::vector<Child<T>> kids{{"", body_.get()}};
    if (shortcut_) kids.push_back({shortcut_name_, shortcut_.get()});
    return kids;
  }
  /// Both branches see the block's input, so each needs dx exactly when the block does.
  bool child_needs_input_grad(std::size_t, bool needed) const override { return needed; }

  /// The body.
  Layer<T>& body() { return *body_; }
  /// The shortcut, or nullptr for the identity.
  Layer<T>* shortcut() { return shortcut_.get(); }

 private:
  static void add(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& out, bool relu) {
    const T* pa = a.data();
    const T* pb = b.data();
    T* po = out.data();
    const std::int64_t n = out.numel();
    if (relu) {
#pragma omp parallel for simd schedule(static) if (n > (std::int64_t(1) << 17))
      for (std::int64_t i = 0; i < n; ++i) {
        const T sum = pa[i] + pb[i];
        po[i] = sum < T(0) ? T(0) : sum;  // a NaN stays NaN, as ReLU's
      }
      return;
    }
#pragma omp parallel for simd schedule(static) if (n > (std::int64_t(1) << 17))
    for (std::int64_t i = 0; i < n; ++i) po[i] = pa[i] + pb[i];
  }

  std::unique_ptr<Layer<T>> body_;
  std::unique_ptr<Layer<T>> shortcut_;
  std::string shortcut_name_ = "shortcut";
  bool relu_ = false;
  Shape checked_input_shape_, checked_output_shape_;
  Tensor<T> output_, grad_input_, masked_grad_;
};

}  // namespace headnet
