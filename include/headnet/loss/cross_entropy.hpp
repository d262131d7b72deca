// headnet/loss/cross_entropy.hpp: CrossEntropyLoss, softmax cross-entropy averaged over the batch.
//
// forward(logits: (N, classes), labels: N integers in [0, classes)) -> mean loss, as PyTorch's
// nn.CrossEntropyLoss(); backward() -> d loss / d logits, (N, classes). The log-softmax is fused
// into the loss (kernels/cross_entropy.hpp) so that it stays finite for logits of any magnitude.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "headnet/core/error.hpp"
#include "headnet/core/tensor.hpp"
#include "headnet/kernels/cross_entropy.hpp"

namespace headnet {

template <typename T>
class CrossEntropyLoss {
 public:
  // labels points at logits.size(0) labels. Throws ShapeError on a label outside [0, classes).
  T forward(const Tensor<T>& logits, const std::int32_t* labels) {
    if (logits.rank() != 2) {
      throw ShapeError("CrossEntropyLoss: expects logits (N, classes), got " + logits.shape().str());
    }
    const std::int64_t N = logits.size(0), classes = logits.size(1);
    for (std::int64_t n = 0; n < N; ++n) {
      if (labels[n] < 0 || labels[n] >= classes) {
        throw ShapeError("CrossEntropyLoss: label " + std::to_string(labels[n]) + " of sample " + std::to_string(n) +
                         " is outside [0, " + std::to_string(classes) + ")");
      }
    }
    grad_logits_.resize(logits.shape());
    loss_ = static_cast<T>(kernels::softmax_cross_entropy(N, classes, logits.data(), labels, grad_logits_.data()));
    return loss_;
  }
  T forward(const Tensor<T>& logits, const std::vector<std::int32_t>& labels) {
    if (static_cast<std::int64_t>(labels.size()) != (logits.rank() >= 1 ? logits.size(0) : 0)) {
      throw ShapeError("CrossEntropyLoss: " + std::to_string(labels.size()) + " labels for logits " +
                       logits.shape().str());
    }
    return forward(logits, labels.data());
  }

  // d loss / d logits = (softmax(logits) - onehot(labels)) / N, computed during forward.
  Tensor<T> backward() const {
    if (grad_logits_.rank() == 0) throw ShapeError("CrossEntropyLoss: backward called before forward");
    return grad_logits_;
  }

  T loss() const { return loss_; }

 private:
  Tensor<T> grad_logits_;
  T loss_ = T(0);
};

}  // namespace headnet
