// headnet/layers/conv2d.hpp: Conv2d, a 2-D convolution with square kernels.
//
// x: (N, C_in, H, W) -> y: (N, C_out, H_out, W_out), H_out = (H + 2*padding - K) / stride + 1.
// weight: (C_out, C_in / groups, K, K), bias: (C_out), laid out as PyTorch's so that weights move
// between the two unchanged. Two ways to build one:
//   Conv2d<float>(3, 64, 3, /*stride=*/1, /*padding=*/1, /*bias=*/false)
//   Conv2d<float>(Conv2dOptions(64, 64, 3).padding("same").groups(64).bias(false))   // depthwise
// The arithmetic is in kernels/conv2d.hpp (im2col + GEMM), kernels/conv2d_direct.hpp (stride-1
// direct kernels) and kernels/conv2d_winograd.hpp (3x3 stride 1); set_algorithm forces one of them, set_isa the direct kernels' instruction set
// (default: simd::active_isa(), the widest the CPU has), and kernel_paths() says which ran for the
// last input. Grouped convolutions (groups > 1) run on the portable loops of
// kernels/conv2d_grouped.hpp.
// set_activation(relu) fuses a ReLU into the layer (Sequential does it for a ReLU that follows a
// Conv2d): the output is then max(conv(x) + b, 0) and backward takes the gradient of that.
// Sequential likewise hands the layer a MaxPool2d(2) that follows it or its fused ReLU (fuse_next):
// the output is then the pooled one, formed as the convolution writes (kernels::conv2d_maxpool_forward),
// so the full-size output is never stored; nor is the full-size gradient in backward
// (kernels::conv2d_maxpool_backward reads it from the pooled one and the winners).
#pragma once

#include <string>
#include <cstdint>
#include <vector>

#include "headnet/core/init.hpp"
#include "headnet/kernels/conv2d.hpp"
#include "headnet/kernels/conv2d_grouped.hpp"
#include "headnet/layers/layer.hpp"
#include "headnet/layers/maxpool2d.hpp"
#include "headnet/layers/relu.hpp"

namespace headnet {

template <typename T>
class Conv2d;

/// Conv2dOptions(in, out, kernel_size).stride(1).padding(0 or "same" or "valid").groups(1).bias(true)
struct Conv2dOptions {
  /// Options for in_channels -> out_channels with a kernel_size x kernel_size kernel.
  Conv2dOptions(int in_channels, int out_channels, int kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  /// The step between windows.
  Conv2dOptions& stride(int v) { stride_ = v; return *this; }
  /// Zero padding on each side.
  Conv2dOptions& padding(int v) { padding_ = v; same_ = false; return *this; }
  /// "same" (output as large as the input: odd kernels, stride 1) or "valid" (no padding).
  Conv2dOptions& padding(const std::string& mode) {
    if (mode != "same" && mode != "valid") {
      throw ShapeError("Conv2d: padding must be a number, \"same\" or \"valid\", got \"" + mode + "\"");
    }
    same_ = mode == "same";
    padding_ = 0;
    return *this;
  }
  /// "same" or "valid".
  Conv2dOptions& padding(const char* mode) { return padding(std::string(mode)); }
  /// Channel groups: each output channel sees in_channels / groups inputs.
  Conv2dOptions& groups(int v) { groups_ = v; return *this; }
  /// Whether the layer adds a bias.
  Conv2dOptions& bias(bool v) { bias_ = v; return *this; }

 private:
  template <typename T>
  friend class Conv2d;
  int in_channels_, out_channels_, kernel_size_, stride_ = 1, padding_ = 0, groups_ = 1;
  bool same_ = false, bias_ = true;
};

/// 2-D convolution over (N, C, H, W), as torch.nn.Conv2d with square kernels (im2col + GEMM or direct kernels).
template <typename T>
class Conv2d : public Layer<T> {
 public:
  /// Conv2d(in, out, kernel_size, stride, padding, bias), as PyTorch's positional arguments.
  Conv2d(int in_channels, int out_channels, int kernel_size, int stride = 1, int padding = 0, bool bias = true)
      : Conv2d(Conv2dOptions(in_channels, out_channels, kernel_size).stride(stride).padding(padding).bias(bias)) {}

  /// A convolution from Conv2dOptions (groups, "same" padding).
  explicit Conv2d(const Conv2dOptions& o)
      : in_channels_(o.in_channels_),
        out_channels_(o.out_channels_),
        kernel_size_(o.kernel_size_),
        stride_(o.stride_),
        padding_(o.same_ ? (o.kernel_size_ - 1) / 2 : o.padding_),
        groups_(o.groups_),
        has_bias_(o.bias_) {
    detail::require_at_least("Conv2d", "in_channels", in_channels_, 1);
    detail::require_at_least("Conv2d", "out_channels", out_channels_, 1);
    detail::require_at_least("Conv2d", "kernel_size", kernel_size_, 1);
    detail::require_at_least("Conv2d", "stride", stride_, 1);
    detail::require_at_least("Conv2d", "padding", o.padding_, 0);
    detail::require_at_least("Conv2d", "groups", groups_, 1);
    if (in_channels_ % groups_ || out_channels_ % groups_) {
      throw ShapeError("Conv2d: in_channels (" + std::to_string(in_channels_) + ") and out_channels (" +
                       std::to_string(out_channels_) + ") must both be divisible by groups (" + std::to_string(groups_) + ")");
    }
    if (o.same_ && kernel_size_ % 2 == 0) {
      throw ShapeError("Conv2d: padding \"same\" needs an odd kernel_size, got " + std::to_string(kernel_size_));
    }
    if (o.same_ && stride_ != 1) {
      throw ShapeError("Conv2d: padding \"same\" is not supported for strided convolutions (stride " +
                       std::to_string(stride_) + ")");
    }
    weight_ = Tensor<T>({out_channels_, in_channels_ / groups_, kernel_size_, kernel_size_});
    grad_weight_ = Tensor<T>(weight_.shape());
    if (has_bias_) {
      bias_ = Tensor<T>({out_channels_});
      grad_bias_ = Tensor<T>(bias_.shape());
    }
    reset_own_parameters(default_generator());
  }

  std::string type() const override { return "Conv2d"; }
  std::string describe() const override {
    return "Conv2d(" + std::to_string(in_channels_) + ", " + std::to_string(out_channels_) +
           ", kernel_size=" + std::to_string(kernel_size_) + ", stride=" + std::to_string(stride_) +
           ", padding=" + std::to_string(padding_) + (groups_ > 1 ? ", groups=" + std::to_string(groups_) : "") +
           (has_bias_ ? "" : ", bias=false") + ")";
  }

  Shape output_shape(const Shape& x) const override {
    if (x.rank() != 4) throw ShapeError("expects input (N, C, H, W), got " + x.str());
    if (x[1] != in_channels_) {
      throw ShapeError("expects " + std::to_string(in_channels_) + " input channels, got " + std::to_string(x[1]) +
                       " (input " + x.str() + ")");
    }
    if (x[2] + 2 * padding_ < kernel_size_ || x[3] + 2 * padding_ < kernel_size_) {
      throw ShapeError("input " + std::to_string(x[2]) + "x" + std::to_string(x[3]) + " with padding " +
                       std::to_string(padding_) + " is smaller than the " + std::to_string(kernel_size_) + "x" +
                       std::to_string(kernel_size_) + " kernel");
    }
    const kernels::ConvGeometry g = geometry(x);
    return Shape{x[0], out_channels_, g.out_height(), g.out_width()};
  }

  /// y = weight * x + bias (then the fused max-pool, if any)
  Tensor<T> forward(const Tensor<T>& x) override {
    const Shape full = this->checked_output_shape(x.shape());
    input_ = x;
    if (pooled_) {
      output_.resize(Shape{full[0], full[1], full[2] / 2, full[3] / 2});
      argmax_.resize(static_cast<std::size_t>(output_.numel()));
      kernels::conv2d_maxpool_forward(geometry(x.shape()), static_cast<int>(x.size(0)), out_channels_, x.data(),
                                      weight_.data(), has_bias_ ? bias_.data() : nullptr,
                                      kernels::PooledOutput<T>{output_.data(), argmax_.data()}, workspace_, algorithm_,
                                      activation_, isa());
      return output_;
    }
    output_.resize(full);
    if (groups_ > 1) {
      kernels::conv2d_grouped_forward(geometry(x.shape()), int(x.size(0)), out_channels_, groups_, x.data(), weight_.data(),
                                      has_bias_ ? bias_.data() : nullptr, output_.data());
      return output_;
    }
    kernels::conv2d_forward(geometry(x.shape()), static_cast<int>(x.size(0)), out_channels_, x.data(),
                            weight_.data(), has_bias_ ? bias_.data() : nullptr, output_.data(), workspace_, algorithm_,
                            activation_, isa());
    return output_;
  }

  /// dx = conv_transpose(dy, weight);  grad_weight += dy (x) columns(x);  grad_bias += sum(dy)
  /// (with a fused ReLU, dy is first masked by y > 0, inside the kernels; with a fused max-pool, dy
  /// is the pooled output's gradient, sent to the windows' winners (masked there by the pooled
  /// output > 0) inside the kernels as they read it)
  Tensor<T> backward(const Tensor<T>& dy) override {
    this->check_grad_output(output_.shape(), dy);
    T* dx = nullptr;
    if (this->needs_input_grad_) {
      grad_input_.resize(input_.shape());
      dx = grad_input_.data();
    }
    // A frozen parameter's gradient is not computed at all (the kernels skip a null gradient).
    T* grad_weight = this->requires_grad("weight") ? grad_weight_.data() : nullptr;
    T* grad_bias = has_bias_ && this->requires_grad("bias") ? grad_bias_.data() : nullptr;
    const bool relu = activation_ == kernels::ConvActivation::relu;
    if (groups_ > 1) {  // (never fused)
      kernels::conv2d_grouped_backward(geometry(input_.shape()), int(input_.size(0)), out_channels_, groups_, input_.data(),
                                       weight_.data(), dy.data(), dx, grad_weight, grad_bias);
    } else if (pooled_) {
      kernels::conv2d_maxpool_backward(geometry(input_.shape()), static_cast<int>(input_.size(0)), out_channels_,
                                       input_.data(), weight_.data(), dy.data(), argmax_.data(),
                                       relu ? output_.data() : nullptr, dx, grad_weight, grad_bias, workspace_,
                                       algorithm_, isa());
    } else {
      kernels::conv2d_backward(geometry(input_.shape()), static_cast<int>(input_.size(0)), out_channels_,
                               input_.data(), weight_.data(), dy.data(), dx, grad_weight, grad_bias, workspace_,
                               algorithm_, relu ? output_.data() : nullptr, isa());
    }
    return this->needs_input_grad_ ? grad_input_ : Tensor<T>();
  }

  std::vector<Parameter<T>> own_parameters() override {
    std::vector<Parameter<T>> p{{"weight", weight_, grad_weight_}};
    if (has_bias_) p.push_back({"bias", bias_, grad_bias_});
    return p;
  }

  void reset_own_parameters(Generator& gen) override {
    init::pytorch_default(weight_, has_bias_ ? &bias_ : nullptr,
                          std::int64_t(in_channels_ / groups_) * kernel_size_ * kernel_size_, gen);
  }

  /// The weight, (out, in / groups, K, K).
  Tensor<T>& weight() { return weight_; }
  /// The bias, (out) (empty without bias).
  Tensor<T>& bias() { return bias_; }
  /// The weight's gradient.
  Tensor<T>& grad_weight() { return grad_weight_; }
  /// The bias's gradient.
  Tensor<T>& grad_bias() { return grad_bias_; }
  /// Input channels.
  int in_channels() const { return in_channels_; }
  /// Output channels.
  int out_channels() const { return out_channels_; }
  /// The kernel's side.
  int kernel_size() const { return kernel_size_; }
  /// The step between windows.
  int stride() const { return stride_; }
  /// Zero padding on each side.
  int padding() const { return padding_; }
  /// Channel groups.
  int groups() const { return groups_; }
  /// Whether the layer adds a bias.
  bool has_bias() const { return has_bias_; }
  /// The forced algorithm (automatic by default).
  kernels::ConvAlgorithm algorithm() const { return algorithm_; }
  /// automatic (the default) picks per shape and pass; im2col_gemm, direct, winograd_4x4,
  /// winograd_3x3 or winograd_2x2 force one. direct falls back to im2col + GEMM where it cannot run (stride > 1,
  /// double, an image smaller than one pixel tile), Winograd to the automatic choice among the
  /// others (it runs 3x3 stride-1 layers with padding up to 2).
  void set_algorithm(kernels::ConvAlgorithm algorithm) { algorithm_ = algorithm; }
  /// The instruction set of the direct kernels: the one forced by set_isa, else simd::active_isa().
  simd::Isa isa() const { return forced_isa_ >= 0 ? static_cast<simd::Isa>(forced_isa_) : simd::active_isa(); }
  /// Forces the direct kernels' instruction set for this layer; throws std::runtime_error if it
  /// cannot run here (simd::available).
  void set_isa(simd::Isa isa) {
    simd::detail::require_available(isa, "Conv2d::set_isa");
    forced_isa_ = static_cast<int>(isa);
  }
  /// Back to simd::active_isa().
  void use_default_isa() { forced_isa_ = -1; }
  /// The code each pass runs for an input of shape `input`, e.g. "forward=direct/avx512
  /// input_gradient=direct/avx512 weight_gradient=im2col_gemm" (kernels::select_conv_path);
  /// grouped convolutions say "grouped".
  std::string kernel_paths(const Shape& input) const {
    if (groups_ > 1) return "grouped";
    const kernels::ConvGeometry g = geometry(input);
    std::string s;
    for (auto pass : {kernels::ConvPass::forward, kernels::ConvPass::input_gradient, kernels::ConvPass::weight_gradient})
      s += std::string(s.empty() ? "" : " ") + kernels::name(pass) + "=" +
           kernels::select_conv_path<T>(g, out_channels_, pass, algorithm_, isa(), int(input[0])).name();
    return s;
  }
  /// kernel_paths() for the last input the layer saw (empty before its first forward).
  std::string kernel_paths() const override { return input_.shape().rank() == 4 ? kernel_paths(input_.shape()) : ""; }
  /// The activation fused into the output (Sequential fuses a following ReLU).
  kernels::ConvActivation activation() const { return activation_; }
  /// Fuses `activation` into the output.
  void set_activation(kernels::ConvActivation activation) { activation_ = activation; }

  /// Whether a following MaxPool2d(2) is fused into the output (Sequential does it).
  bool pooled() const { return pooled_; }

  bool fuse_next(const Layer<T>& next) override {
    if (groups_ > 1 || pooled_) return false;
    if (dynamic_cast<const ReLU<T>*>(&next)) {
      if (activation_ != kernels::ConvActivation::none) return false;
      activation_ = kernels::ConvActivation::relu;
      return true;
    }
    // Only the plain 2x2 window (after the ReLU, if one is fused): its windows tile the output, so a
    // Winograd tile of even side holds whole ones.
    const auto* pool = dynamic_cast<const MaxPool2d<T>*>(&next);
    pooled_ = pool && pool->kernel_size() == 2 && pool->stride() == 2 && pool->padding() == 0 && !pool->ceil_mode();
    return pooled_;
  }
  void unfuse() override {
    activation_ = kernels::ConvActivation::none;
    pooled_ = false;
  }

 private:
  kernels::ConvGeometry geometry(const Shape& x) const {
    kernels::ConvGeometry g;
    g.channels = in_channels_;
    g.height = static_cast<int>(x[2]);
    g.width = static_cast<int>(x[3]);
    g.kernel_size = kernel_size_;
    g.stride = stride_;
    g.padding = padding_;
    return g;
  }

  int in_channels_, out_channels_, kernel_size_, stride_, padding_, groups_;
  bool has_bias_;
  kernels::ConvAlgorithm algorithm_ = kernels::ConvAlgorithm::automatic;
  kernels::ConvActivation activation_ = kernels::ConvActivation::none;
  bool pooled_ = false;  // a MaxPool2d(2) fused into the output
  int forced_isa_ = -1;  // a simd::Isa, or -1 for simd::active_isa()
  Tensor<T> weight_, bias_, grad_weight_, grad_bias_;
  Tensor<T> input_;  // handle to the forward input: backward unfolds it again instead of caching columns
  Tensor<T> output_, grad_input_;
  std::vector<std::int32_t> argmax_;  // the fused max-pool's winners (offsets in their unpooled planes)
  kernels::Conv2dWorkspace<T> workspace_;
};

/// Forces `algorithm` (Conv2d::set_algorithm) on every Conv2d in `model`, the model included;
/// returns how many there were. automatic gives the choice back to the kernels.
template <typename T>
int set_conv_algorithm(Layer<T>& model, kernels::ConvAlgorithm algorithm) {
  int count = 0;
  model.for_each_layer([&](Layer<T>& layer) {
    if (auto* conv = dynamic_cast<Conv2d<T>*>(&layer)) {
      conv->set_algorithm(algorithm);
      ++count;
    }
  });
  return count;
}

}  // namespace headnet
