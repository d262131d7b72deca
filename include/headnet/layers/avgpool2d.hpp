// headnet/layers/avgpool2d.hpp: AvgPool2d and AdaptiveAvgPool2d, as PyTorch's.
//
// AvgPool2d(kernel_size, stride = kernel_size, padding = 0, ceil_mode = false,
//           count_include_pad = true): x (N, C, H, W) -> y (N, C, H_out, W_out), H_out as MaxPool2d's;
//   each output is its window's mean, dividing by the window's size including the padding it
//   covers (count_include_pad) or not.
// AdaptiveAvgPool2d(output_h, output_w = output_h): y (N, C, output_h, output_w) for any input size;
//   AdaptiveAvgPool2d(1) is global average pooling.
// Backward spreads each output gradient evenly over its window. Arithmetic: kernels/avgpool2d.hpp.
#pragma once

#include <string>

#include "headnet/kernels/avgpool2d.hpp"
#include "headnet/layers/layer.hpp"

namespace headnet {

/// Average pooling over square windows, as torch.nn.AvgPool2d (padding, ceil_mode, count_include_pad).
template <typename T>
class AvgPool2d : public Layer<T> {
 public:
  /// Windows of kernel_size, moved by stride (0: kernel_size), zero padding on each side.
  explicit AvgPool2d(int kernel_size, int stride = 0, int padding = 0, bool ceil_mode = false,
                     bool count_include_pad = true)
      : count_include_pad_(count_include_pad) {
    g_.kernel_size = kernel_size;
    g_.stride = stride ? stride : kernel_size;
    g_.padding = padding;
    g_.ceil_mode = ceil_mode;
    detail::require_at_least("AvgPool2d", "kernel_size", kernel_size, 1);
    detail::require_at_least("AvgPool2d", "stride", g_.stride, 1);
    detail::require_at_least("AvgPool2d", "padding", padding, 0);
    if (2 * padding > kernel_size) {
      throw ShapeError("AvgPool2d: padding must be at most half of kernel_size, got padding " + std::to_string(padding) +
                       " for kernel_size " + std::to_string(kernel_size));
    }
  }

  std::string type() const override { return "AvgPool2d"; }
  std::string describe() const override {
    return "AvgPool2d(kernel_size=" + std::to_string(g_.kernel_size) + ", stride=" + std::to_string(g_.stride) +
           (g_.padding ? ", padding=" + std::to_string(g_.padding) : "") + (g_.ceil_mode ? ", ceil_mode=true" : "") +
           (count_include_pad_ ? "" : ", count_include_pad=false") + ")";
  }

  Shape output_shape(const Shape& x) const override {
    if (x.rank() != 4) throw ShapeError("expects input (N, C, H, W), got " + x.str());
    if (x[2] + 2 * g_.padding < g_.kernel_size || x[3] + 2 * g_.padding < g_.kernel_size) {
      throw ShapeError("input " + std::to_string(x[2]) + "x" + std::to_string(x[3]) + " is smaller than the " +
                       std::to_string(g_.kernel_size) + "x" + std::to_string(g_.kernel_size) + " window");
    }
    const kernels::PoolGeometry g = geometry(x);
    return Shape{x[0], x[1], g.out_height(), g.out_width()};
  }

  /// y = the mean of each window
  Tensor<T> forward(const Tensor<T>& x) override {
    output_.resize(this->checked_output_shape(x.shape()));
    input_shape_ = x.shape();
    kernels::avgpool2d_forward(geometry(x.shape()), count_include_pad_, x.size(0) * x.size(1), x.data(), output_.data());
    return output_;
  }

  /// dx[window] += dy / divisor
  Tensor<T> backward(const Tensor<T>& dy) override {
    this->check_grad_output(output_.shape(), dy);
    if (!this->needs_input_grad_) return Tensor<T>();
    grad_input_.resize(input_shape_);
    kernels::avgpool2d_backward(geometry(input_shape_), count_include_pad_, input_shape_[0] * input_shape_[1], dy.data(),
                                grad_input_.data());
    return grad_input_;
  }

  /// The window's side.
  int kernel_size() const { return g_.kernel_size; }
  /// The step between windows.
  int stride() const { return g_.stride; }
  /// The zero padding on each side.
  int padding() const { return g_.padding; }
  /// Whether the output size rounds up.
  bool ceil_mode() const { return g_.ceil_mode; }
  /// Whether padded zeros count in the average's divisor.
  bool count_include_pad() const { return count_include_pad_; }

 private:
  kernels::PoolGeometry geometry(const Shape& x) const {
    kernels::PoolGeometry g = g_;
    g.height = int(x[2]);
    g.width = int(x[3]);
    return g;
  }
  kernels::PoolGeometry g_;
  bool count_include_pad_;
  Shape input_shape_;
  Tensor<T> output_, grad_input_;
};

/// Average pooling to a fixed output size, as torch.nn.AdaptiveAvgPool2d.
template <typename T>
class AdaptiveAvgPool2d : public Layer<T> {
 public:
  /// Pools each plane to output_height x output_width (0: output_height).
  explicit AdaptiveAvgPool2d(int output_height, int output_width = 0)
      : out_h_(output_height), out_w_(output_width ? output_width : output_height) {
    detail::require_at_least("AdaptiveAvgPool2d", "output_size", output_height, 1);
    detail::require_at_least("AdaptiveAvgPool2d", "output_size", out_w_, 1);
  }

  std::string type() const override { return "AdaptiveAvgPool2d"; }
  std::string describe() const override {
    return "AdaptiveAvgPool2d(output_size=(" + std::to_string(out_h_) + ", " + std::to_string(out_w_) + "))";
  }

  Shape output_shape(const Shape& x) const override {
    if (x.rank() != 4) throw ShapeError("expects input (N, C, H, W), got " + x.str());
    if (x[2] < 1 || x[3] < 1) throw ShapeError("expects a non-empty image, got " + x.str());
    return Shape{x[0], x[1], out_h_, out_w_};
  }

  Tensor<T> forward(const Tensor<T>& x) override {
    output_.resize(this->checked_output_shape(x.shape()));
    input_shape_ = x.shape();
    kernels::adaptive_avgpool2d_forward(x.size(0) * x.size(1), int(x.size(2)), int(x.size(3)), out_h_, out_w_, x.data(),
                                        output_.data());
    return output_;
  }

  Tensor<T> backward(const Tensor<T>& dy) override {
    this->check_grad_output(output_.shape(), dy);
    if (!this->needs_input_grad_) return Tensor<T>();
    grad_input_.resize(input_shape_);
    kernels::adaptive_avgpool2d_backward(input_shape_[0] * input_shape_[1], int(input_shape_[2]), int(input_shape_[3]),
                                         out_h_, out_w_, dy.data(), grad_input_.data());
    return grad_input_;
  }

  /// The output's height.
  int output_height() const { return out_h_; }
  /// The output's width.
  int output_width() const { return out_w_; }

 private:
  int out_h_, out_w_;
  Shape input_shape_;
  Tensor<T> output_, grad_input_;
};

}  // namespace headnet
