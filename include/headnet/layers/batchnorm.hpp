// headnet/layers/batchnorm.hpp: BatchNorm1d and BatchNorm2d, with PyTorch's arguments and buffers.
//
// BatchNorm2d: x (N, C, H, W); BatchNorm1d: x (N, C) or (N, C, L). Per channel c:
//   y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c
// Training mode (and any mode without running statistics) uses the batch's mean and biased
// variance, and updates the buffers as PyTorch does:
//   running_mean = (1 - momentum) running_mean + momentum mean
//   running_var  = (1 - momentum) running_var  + momentum var * M / (M - 1)   (unbiased, M = N*H*W)
//   num_batches_tracked += 1
// Eval mode uses running_mean and running_var. weight: ones, bias: zeros (affine = true); either
// can be frozen on its own (set_requires_grad("bias", false)), and its gradient is then skipped.
// Fusion: Sequential hands a GELU or ReLU that follows to the layer (fuse_next), which then writes
// z = f(y) without storing y, and in backward forms dz f'(y) from x in the sweep that takes the
// parameter gradients' sums (kernels/batchnorm.hpp); same results as the two layers apart
// (tests/test_fusion.cpp).
// The arithmetic is in kernels/batchnorm.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "headnet/kernels/batchnorm.hpp"
#include "headnet/kernels/relu.hpp"
#include "headnet/layers/activations.hpp"
#include "headnet/layers/layer.hpp"
#include "headnet/layers/relu.hpp"

namespace headnet {

/// Batch normalisation, as torch.nn.BatchNorm1d/2d: batch statistics in training, running ones in eval.
template <typename T>
class BatchNorm : public Layer<T> {
 public:
  std::string describe() const override {
    return this->type() + "(" + std::to_string(num_features_) + ", eps=" + format(eps_) + ", momentum=" + format(momentum_) +
           ", affine=" + (affine_ ? "true" : "false") +
           ", track_running_stats=" + (track_running_stats_ ? "true" : "false") + ")";
  }

  Shape output_shape(const Shape& x) const override {
    if (x.rank() < min_rank_ || x.rank() > max_rank_) {
      throw ShapeError("expects input " + std::string(max_rank_ == 4 ? "(N, C, H, W)" : "(N, C) or (N, C, L)") +
                       ", got " + x.str());
    }
    if (x[1] != num_features_) {
      throw ShapeError("expects " + std::to_string(num_features_) + " channels, got " + std::to_string(x[1]) +
                       " (input " + x.str() + ")");
    }
    return x;
  }

  Tensor<T> forward(const Tensor<T>& x) override {
    output_.resize(this->checked_output_shape(x.shape()));
    input_ = x;
    const std::int64_t N = x.size(0), C = num_features_, S = x.numel() / (N ? N * C : 1);
    batch_statistics_ = this->training_ || !track_running_stats_;
    if (batch_statistics_) {
      if (this->training_ && N * S <= 1) {
        throw ShapeError(this->type() + ": expected more than 1 value per channel when training, got input " + x.shape().str());
      }
      double count = double(N * S);
      if (reduce_ && this->training_) {
        // SyncBatchNorm: the statistics of every process's batch together.
        sync_.resize(std::size_t(2 * C + 1));
        kernels::batchnorm_sums(N, C, S, x.data(), sync_.data(), sync_.data() + C);
        sync_[std::size_t(2 * C)] = count;
        reduce_(sync_.data(), sync_.size());
        count = sync_[std::size_t(2 * C)];
        for (std::int64_t c = 0; c < C; ++c) {
          const double mean = sync_[std::size_t(c)] / count;
          mean_.data()[c] = T(mean);
          var_.data()[c] = T(std::max(0.0, sync_[std::size_t(C + c)] / count - mean * mean));
        }
        synced_count_ = count;
      } else {
        kernels::batchnorm_statistics(N, C, S, x.data(), mean_.data(), var_.data());
        synced_count_ = 0;
      }
      for (std::int64_t c = 0; c < C; ++c) invstd_.data()[c] = T(1) / std::sqrt(var_.data()[c] + T(eps_));
      if (this->training_ && track_running_stats_) {
        const T m = T(momentum_), unbias = T(count / (count - 1));
        for (std::int64_t c = 0; c < C; ++c) {
          running_mean_.data()[c] = (T(1) - m) * running_mean_.data()[c] + m * mean_.data()[c];
          running_var_.data()[c] = (T(1) - m) * running_var_.data()[c] + m * var_.data()[c] * unbias;
        }
        num_batches_tracked_.data()[0] += T(1);
      }
    } else {
      for (std::int64_t c = 0; c < C; ++c) {
        mean_.data()[c] = running_mean_.data()[c];
        invstd_.data()[c] = T(1) / std::sqrt(running_var_.data()[c] + T(eps_));
      }
    }
    const T* gamma = affine_ ? weight_.data() : nullptr;
    const T* beta = affine_ ? bias_.data() : nullptr;
    if (activation_ == Fused::none) {
      kernels::batchnorm_normalize(N, C, S, x.data(), mean_.data(), invstd_.data(), gamma, beta, output_.data());
    } else if (S >= kernels::batchnorm_fused_min_plane) {
      with_activation([&](const auto& op) {
        kernels::batchnorm_normalize(op, N, C, S, x.data(), mean_.data(), invstd_.data(), gamma, beta, output_.data());
      });
    } else {  // small planes: y kept, the activation over the whole tensor (kernels/batchnorm.hpp)
      normalized_.resize(x.shape());
      kernels::batchnorm_normalize(N, C, S, x.data(), mean_.data(), invstd_.data(), gamma, beta, normalized_.data());
      with_activation([&](const auto& op) { kernels::activation_forward(op, x.numel(), normalized_.data(), output_.data()); });
    }
    return output_;
  }

  /// xhat = (x - mean) invstd;  grad_weight += sum dy xhat;  grad_bias += sum dy;
  /// dx = weight invstd (dy - mean(dy) - xhat mean(dy xhat)) with batch statistics, weight invstd dy without
  /// (with a fused activation f, dy = dz f'(y) is formed here first)
  Tensor<T> backward(const Tensor<T>& dz) override {
    this->check_grad_output(output_.shape(), dz);
    const std::int64_t N = input_.size(0), C = num_features_, S = input_.numel() / (N ? N * C : 1);
    const T* gamma = affine_ ? weight_.data() : nullptr;
    const T* beta = affine_ ? bias_.data() : nullptr;
    T* grad_gamma = affine_ && this->requires_grad("weight") ? grad_weight_.data() : nullptr;
    T* grad_beta = affine_ && this->requires_grad("bias") ? grad_bias_.data() : nullptr;
    const bool synced = synced_count_ > 0 && batch_statistics_;
    // A fused activation's gradient dz f'(y) lives in grad_input_, and dx is written over it.
    if (this->needs_input_grad_ || activation_ != Fused::none) grad_input_.resize(input_.shape());
    T* dx = this->needs_input_grad_ ? grad_input_.data() : nullptr;
    const T* dy = dz.data();
    if (activation_ != Fused::none) {
      T* g = grad_input_.data();
      const bool whole = S >= kernels::batchnorm_fused_min_plane;  // else y was kept (forward)
      if (whole && !synced) {
        with_activation([&](const auto& op) {
          kernels::batchnorm_backward(op, N, C, S, input_.data(), dz.data(), mean_.data(), invstd_.data(), gamma, beta,
                                      batch_statistics_, g, dx, grad_gamma, grad_beta);
        });
        return this->needs_input_grad_ ? grad_input_ : Tensor<T>();
      }
      with_activation([&](const auto& op) {
        if (whole)
          kernels::batchnorm_activation_gradient(op, N, C, S, input_.data(), dz.data(), mean_.data(), invstd_.data(),
                                                 gamma, beta, g);
        else
          kernels::activation_backward(op, dz.numel(), normalized_.data(), output_.data(), dz.data(), g);
      });
      dy = g;
    }
    if (synced) {
      // SyncBatchNorm: the parameter gradients from this process's sums (the data-parallel wrapper
      // averages them), dx from everyone's.
      sync_.resize(std::size_t(2 * C));
      kernels::batchnorm_backward_sums(N, C, S, input_.data(), dy, mean_.data(), invstd_.data(), sync_.data(),
                                       sync_.data() + C);
      for (std::int64_t c = 0; c < C; ++c) {
        if (grad_gamma) grad_gamma[c] += T(sync_[std::size_t(C + c)]);
        if (grad_beta) grad_beta[c] += T(sync_[std::size_t(c)]);
      }
      reduce_(sync_.data(), sync_.size());
      if (dx)
        kernels::batchnorm_backward_input(N, C, S, input_.data(), dy, mean_.data(), invstd_.data(), gamma,
                                          synced_count_, sync_.data(), sync_.data() + C, dx);
      return this->needs_input_grad_ ? grad_input_ : Tensor<T>();
    }
    kernels::batchnorm_backward(N, C, S, input_.data(), dy, mean_.data(), invstd_.data(), gamma, batch_statistics_, dx,
                                grad_gamma, grad_beta);
    return this->needs_input_grad_ ? grad_input_ : Tensor<T>();
  }

  /// Takes a following GELU (either form) or ReLU into the output (see the top of the file).
  bool fuse_next(const Layer<T>& next) override {
    if (activation_ != Fused::none) return false;
    if (dynamic_cast<const ReLU<T>*>(&next)) {
      activation_ = Fused::relu;
    } else if (const auto* gelu = dynamic_cast<const GELU<T>*>(&next)) {
      activation_ = gelu->approximate() == "tanh" ? Fused::gelu_tanh : Fused::gelu;
    }
    return activation_ != Fused::none;
  }
  void unfuse() override { activation_ = Fused::none; }

  std::vector<Parameter<T>> own_parameters() override {
    if (!affine_) return {};
    return {{"weight", weight_, grad_weight_}, {"bias", bias_, grad_bias_}};
  }
  std::vector<Buffer<T>> own_buffers() override {
    if (!track_running_stats_) return {};
    return {{"running_mean", running_mean_}, {"running_var", running_var_}, {"num_batches_tracked", num_batches_tracked_, true}};
  }
  /// PyTorch's reset_parameters: weight 1, bias 0, and the running statistics reset.
  void reset_own_parameters(Generator&) override {
    if (affine_) {
      weight_.fill(T(1));
      bias_.zero();
    }
    if (track_running_stats_) {
      running_mean_.zero();
      running_var_.fill(T(1));
      num_batches_tracked_.zero();
    }
  }

  /// Batch statistics over several processes (SyncBatchNorm; dist/data_parallel.hpp sets it):
  /// `reduce` replaces its `count` doubles by their sums over the processes, and is called by every
  /// process at the same point of forward (training) and backward. Empty: this process's batch.
  void set_statistics_reducer(std::function<void(double* values, std::size_t count)> reduce) { reduce_ = std::move(reduce); }
  /// gamma, the per-feature scale.
  Tensor<T>& weight() { return weight_; }
  /// beta, the per-feature shift.
  Tensor<T>& bias() { return bias_; }
  /// The running mean (a buffer).
  Tensor<T>& running_mean() { return running_mean_; }
  /// The running unbiased variance (a buffer).
  Tensor<T>& running_var() { return running_var_; }
  /// The number of training batches seen (an integer buffer).
  Tensor<T>& num_batches_tracked() { return num_batches_tracked_; }
  /// The number of features (channels).
  int num_features() const { return num_features_; }
  /// The epsilon added to the variance.
  double eps() const { return eps_; }
  /// The running statistics' momentum (PyTorch's convention: new = (1 - m) old + m batch).
  double momentum() const { return momentum_; }
  /// Whether the layer has gamma and beta.
  bool affine() const { return affine_; }
  /// Whether the layer keeps running statistics.
  bool track_running_stats() const { return track_running_stats_; }

 protected:
  /// The shared implementation; `type` names the layer, the input's rank must lie in [min_rank, max_rank].
  BatchNorm(const char* type, int min_rank, int max_rank, int num_features, double eps, double momentum, bool affine,
            bool track_running_stats)
      : num_features_(num_features),
        eps_(eps),
        momentum_(momentum),
        affine_(affine),
        track_running_stats_(track_running_stats),
        min_rank_(min_rank),
        max_rank_(max_rank) {
    detail::require_at_least(type, "num_features", num_features, 1);
    if (!(eps > 0)) throw ShapeError(std::string(type) + ": eps must be > 0, got " + format(eps));
    if (!(momentum >= 0 && momentum <= 1)) {
      throw ShapeError(std::string(type) + ": momentum must be in [0, 1], got " + format(momentum));
    }
    if (affine_) {
      weight_ = Tensor<T>({num_features});
      bias_ = Tensor<T>({num_features});
      grad_weight_ = Tensor<T>({num_features});
      grad_bias_ = Tensor<T>({num_features});
    }
    if (track_running_stats_) {
      running_mean_ = Tensor<T>({num_features});
      running_var_ = Tensor<T>({num_features});
      num_batches_tracked_ = Tensor<T>(Shape{});
    }
    mean_ = Tensor<T>({num_features});
    var_ = Tensor<T>({num_features});
    invstd_ = Tensor<T>({num_features});
    Generator unused;
    reset_own_parameters(unused);
  }

 private:
  // The activation fused into the output: GELU's two forms are separate ops so that each loop is
  // branch-free and vectorises.
  enum class Fused { none, relu, gelu, gelu_tanh };
  template <typename F>
  void with_activation(F f) const {
    switch (activation_) {
      case Fused::relu: f(kernels::ReLUOp()); break;
      case Fused::gelu: f(kernels::GeluErf()); break;
      case Fused::gelu_tanh: f(kernels::GeluTanh()); break;
      case Fused::none: break;
    }
  }

  static std::string format(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", v);
    return b;
  }

  int num_features_;
  double eps_, momentum_;
  std::function<void(double*, std::size_t)> reduce_;  // SyncBatchNorm's sum over processes, or empty
  std::vector<double> sync_;                           // the sums it adds up
  double synced_count_ = 0;                            // values behind the last synced statistics; 0: local
  bool affine_, track_running_stats_;
  int min_rank_, max_rank_;
  bool batch_statistics_ = true;  // whether the last forward normalised with the batch's statistics
  Fused activation_ = Fused::none;
  Tensor<T> weight_, bias_, grad_weight_, grad_bias_;
  Tensor<T> running_mean_, running_var_, num_batches_tracked_;
  Tensor<T> mean_, var_, invstd_;  // of the last forward, per channel
  Tensor<T> input_;                // handle to the forward input
  Tensor<T> output_, grad_input_;
  Tensor<T> normalized_;  // y, kept only when a fused activation is applied apart (small planes)
};

/// BatchNorm over the channels of (N, C, H, W) inputs.
template <typename T>
class BatchNorm2d : public BatchNorm<T> {
 public:
  /// BatchNorm2d with PyTorch's defaults.
  explicit BatchNorm2d(int num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
      : BatchNorm<T>("BatchNorm2d", 4, 4, num_features, eps, momentum, affine, track_running_stats) {}
  std::string type() const override { return "BatchNorm2d"; }
};

/// BatchNorm over the features of (N, C) or (N, C, L) inputs.
template <typename T>
class BatchNorm1d : public BatchNorm<T> {
 public:
  /// BatchNorm1d with PyTorch's defaults.
  explicit BatchNorm1d(int num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
      : BatchNorm<T>("BatchNorm1d", 2, 3, num_features, eps, momentum, affine, track_running_stats) {}
  std::string type() const override { return "BatchNorm1d"; }
};

}  // namespace headnet
