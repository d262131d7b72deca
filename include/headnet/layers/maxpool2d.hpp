// headnet/layers/maxpool2d.hpp: MaxPool2d, the maximum over K x K windows of each channel.
//
// MaxPool2d(kernel_size, stride = kernel_size, padding = 0, ceil_mode = false), as PyTorch's.
// x: (N, C, H, W) -> y: (N, C, H_out, W_out), H_out = floor((H + 2 padding - K) / stride) + 1
// (ceil in ceil mode, less a window that would start in the right padding). Padding never wins.
// Forward records the winning position of every window; backward sends each gradient there.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "headnet/kernels/maxpool2d.hpp"
#include "headnet/layers/layer.hpp"

namespace headnet {

/// Max pooling over square windows, as torch.nn.MaxPool2d (padding, ceil_mode).
template <typename T>
class MaxPool2d : public Layer<T> {
 public:
  /// stride = 0 means stride = kernel_size, PyTorch's default.
  explicit MaxPool2d(int kernel_size, int stride = 0, int padding = 0, bool ceil_mode = false)
      : kernel_size_(kernel_size), stride_(stride ? stride : kernel_size), padding_(padding), ceil_mode_(ceil_mode) {
    detail::require_at_least("MaxPool2d", "kernel_size", kernel_size, 1);
    detail::require_at_least("MaxPool2d", "stride", stride_, 1);
    detail::require_at_least("MaxPool2d", "padding", padding, 0);
    if (2 * padding > kernel_size) {
      throw ShapeError("MaxPool2d: padding must be at most half of kernel_size, got padding " + std::to_string(padding) +
                       " for kernel_size " + std::to_string(kernel_size));
    }
  }

  std::string type() const override { return "MaxPool2d"; }
  std::string describe() const override {
    return "MaxPool2d(kernel_size=" + std::to_string(kernel_size_) + ", stride=" + std::to_string(stride_) +
           (padding_ ? ", padding=" + std::to_string(padding_) : "") + (ceil_mode_ ? ", ceil_mode=true" : "") + ")";
  }

  Shape output_shape(const Shape& x) const override {
    if (x.rank() != 4) throw ShapeError("expects input (N, C, H, W), got " + x.str());
    if (x[2] + 2 * padding_ < kernel_size_ || x[3] + 2 * padding_ < kernel_size_) {
      throw ShapeError("input " + std::to_string(x[2]) + "x" + std::to_string(x[3]) +
                       (padding_ ? " with padding " + std::to_string(padding_) : std::string()) + " is smaller than the " +
                       std::to_string(kernel_size_) + "x" + std::to_string(kernel_size_) + " window");
    }
    const kernels::PoolGeometry g = geometry(x);
    return Shape{x[0], x[1], g.out_height(), g.out_width()};
  }

  /// y[n, c, i, j] = max over the window at (i*stride, j*stride)
  Tensor<T> forward(const Tensor<T>& x) override {
    output_.resize(this->checked_output_shape(x.shape()));
    input_shape_ = x.shape();
    argmax_.resize(static_cast<std::size_t>(output_.numel()));
    kernels::maxpool2d_forward(geometry(x.shape()), x.size(0) * x.size(1), x.data(), output_.data(), argmax_.data());
    return output_;
  }

  /// dx[argmax of each window] += dy[window]; zero elsewhere
  Tensor<T> backward(const Tensor<T>& dy) override {
    this->check_grad_output(output_.shape(), dy);
    if (!this->needs_input_grad_) return Tensor<T>();
    grad_input_.resize(input_shape_);
    kernels::maxpool2d_backward(geometry(input_shape_), input_shape_[0] * input_shape_[1], dy.data(), argmax_.data(),
                                grad_input_.data());
    return grad_input_;
  }

  /// The window's side.
  int kernel_size() const { return kernel_size_; }
  /// The step between windows.
  int stride() const { return stride_; }
  /// Padding on each side (never chosen by the max).
  int padding() const { return padding_; }
  /// Whether the output size rounds up.
  bool ceil_mode() const { return ceil_mode_; }

 private:
  kernels::PoolGeometry geometry(const Shape& x) const {
    kernels::PoolGeometry g;
    g.height = static_cast<int>(x[2]);
    g.width = static_cast<int>(x[3]);
    g.kernel_size = kernel_size_;
    g.stride = stride_;
    g.padding = padding_;
    g.ceil_mode = ceil_mode_;
    return g;
  }

  int kernel_size_, stride_, padding_;
  bool ceil_mode_;
  Shape input_shape_;
  std::vector<std::int32_t> argmax_;  // offset of each window's maximum inside its (H, W) plane
  Tensor<T> output_, grad_input_;
};

}  // namespace headnet
