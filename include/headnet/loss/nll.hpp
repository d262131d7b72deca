// headnet/loss/nll.hpp: NLLLoss, the negative log-likelihood of log-probabilities (a LogSoftmax's
// output), as PyTorch's.
//
// forward(log_probs: (N, classes), labels) -> reduced sum_n -log_probs[n][labels[n]];
// backward() -> -1 / divisor at each label, 0 elsewhere (divisor N for the mean, 1 otherwise).
#pragma once

#include <cstdint>
#include <vector>

#include "headnet/loss/reduction.hpp"

namespace headnet {

/// Negative log-likelihood on log-probabilities (LogSoftmax output), as torch.nn.NLLLoss.
template <typename T>
class NLLLoss {
 public:
  /// A loss with `reduction`.
  explicit NLLLoss(Reduction reduction = Reduction::mean) : reduction_(reduction) {}

  /// The loss for log-probabilities (N, classes) and N labels.
  T forward(const Tensor<T>& log_probs, const std::vector<std::int32_t>& labels) {
    detail::check_labels("NLLLoss", "input", log_probs, labels.data(), std::int64_t(labels.size()));
    const std::int64_t N = log_probs.size(0), classes = log_probs.size(1);
    const double divisor = reduction_ == Reduction::mean ? double(N) : 1.0;
    grad_.resize(log_probs.shape());
    grad_.zero();
    losses_.resize({N});
    double total = 0;
    for (std::int64_t n = 0; n < N; ++n) {
      const std::int64_t at = n * classes + labels[std::size_t(n)];
      losses_.data()[n] = -log_probs.data()[at];
      total += -double(log_probs.data()[at]);
      grad_.data()[at] = T(-1.0 / divisor);
    }
    loss_ = T(N ? total / divisor : 0.0);
    return loss_;
  }

  /// d loss / d log_probs, computed during forward.
  Tensor<T> backward() const {
    if (grad_.rank() == 0) throw ShapeError("NLLLoss: backward called before forward");
    return grad_;
  }
  /// With reduction none: the gradient of sum_n grad_losses[n] loss_n.
  Tensor<T> backward(const Tensor<T>& grad_losses) {
    detail::weigh_rows("NLLLoss", backward(), grad_losses, weighted_);
    return weighted_;
  }
  /// The per-sample losses of the last forward.
  const Tensor<T>& losses() const { return losses_; }

 private:
  Reduction reduction_;
  Tensor<T> grad_, losses_, weighted_;
  T loss_ = T(0);
};

}  // namespace headnet
