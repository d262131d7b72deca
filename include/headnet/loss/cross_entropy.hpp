// headnet/loss/cross_entropy.hpp: CrossEntropyLoss, softmax cross-entropy with PyTorch's reduction
// and label smoothing.
//
// CrossEntropyLoss(reduction = mean, label_smoothing = 0): forward(logits: (N, classes), labels: N
// integers in [0, classes)) -> the reduced loss (loss/reduction.hpp; per sample, kernels/
// cross_entropy.hpp has the formula); backward() -> d loss / d logits, (N, classes). The
// log-softmax is fused into the loss so that it stays finite for logits of any magnitude.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "headnet/core/error.hpp"
#include "headnet/core/tensor.hpp"
#include "headnet/kernels/cross_entropy.hpp"
#include "headnet/loss/reduction.hpp"

namespace headnet {

/// Softmax cross-entropy on logits and integer labels, as torch.nn.CrossEntropyLoss (reduction, label smoothing).
template <typename T>
class CrossEntropyLoss {
 public:
  /// A loss with `reduction` and label smoothing in [0, 1].
  explicit CrossEntropyLoss(Reduction reduction = Reduction::mean, double label_smoothing = 0.0)
      : reduction_(reduction), label_smoothing_(label_smoothing) {
    if (!(label_smoothing >= 0 && label_smoothing <= 1)) {
      char b[96];
      std::snprintf(b, sizeof b, "CrossEntropyLoss: label_smoothing must be in [0, 1], got %g", label_smoothing);
      throw ShapeError(b);
    }
  }

  /// labels points at logits.size(0) labels. Throws ShapeError on a label outside [0, classes).
  T forward(const Tensor<T>& logits, const std::int32_t* labels) {
    detail::check_labels("CrossEntropyLoss", "logits", logits, labels, logits.rank() >= 1 ? logits.size(0) : 0);
    const std::int64_t N = logits.size(0), classes = logits.size(1);
    grad_logits_.resize(logits.shape());
    losses_.resize({N});
    const double divisor = reduction_ == Reduction::mean ? double(N) : 1.0;
    loss_ = static_cast<T>(kernels::softmax_cross_entropy(N, classes, logits.data(), labels, grad_logits_.data(), divisor,
                                                          label_smoothing_, losses_.data()));
    return loss_;
  }
  /// The loss for a batch of logits (N, classes) and N labels.
  T forward(const Tensor<T>& logits, const std::vector<std::int32_t>& labels) {
    detail::check_labels("CrossEntropyLoss", "logits", logits, labels.data(), std::int64_t(labels.size()));
    return forward(logits, labels.data());
  }

  /// d loss / d logits = (softmax(logits) - (1 - e) onehot(labels) - e / classes) / N (mean), computed
  /// during forward.
  Tensor<T> backward() const {
    if (grad_logits_.rank() == 0) throw ShapeError("CrossEntropyLoss: backward called before forward");
    return grad_logits_;
  }
  /// With reduction none: the gradient of sum_n grad_losses[n] loss_n.
  Tensor<T> backward(const Tensor<T>& grad_losses) {
    detail::weigh_rows("CrossEntropyLoss", backward(), grad_losses, weighted_);
    return weighted_;
  }

  /// The last loss forward() computed.
  T loss() const { return loss_; }
  /// Each sample's loss, (N), whatever the reduction.
  const Tensor<T>& losses() const { return losses_; }
  /// How per-sample losses are combined.
  Reduction reduction() const { return reduction_; }
  /// The label smoothing.
  double label_smoothing() const { return label_smoothing_; }

 private:
  Reduction reduction_;
  double label_smoothing_;
  Tensor<T> grad_logits_, losses_, weighted_;
  T loss_ = T(0);
};

}  // namespace headnet
