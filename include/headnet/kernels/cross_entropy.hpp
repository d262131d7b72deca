// headnet/kernels/cross_entropy.hpp: fused log-softmax and negative log-likelihood, with label
// smoothing.
//
// Shapes: logits, grad_logits: (N, classes); labels: (N). With lse_n = logsumexp(logits[n]) and
// smoothing e (0 <= e <= 1), each sample's loss is PyTorch's
//   loss_n = (1 - e) (lse_n - logits[n][label]) + e / classes sum_k (lse_n - logits[n][k])
// and its gradient  (softmax(logits[n]) - (1 - e) onehot(label) - e / classes) / divisor,
// with divisor N for the mean, 1 for the sum. logsumexp subtracts the row maximum first, so logits
// of magnitude 1000 neither overflow nor lose the loss to exp() underflow. Accumulation is in double
// whatever T is.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace headnet {
namespace kernels {

/// Returns sum_n loss_n / divisor; writes grad_logits and per_sample (loss_n) when they are not
/// null. Labels must be in range.
template <typename T>
double softmax_cross_entropy(std::int64_t N, std::int64_t classes, const T* logits, const std::int32_t* labels,
                             T* grad_logits, double divisor, double smoothing = 0.0, T* per_sample = nullptr) {
  double total = 0.0;
  const double uniform = smoothing / double(classes);
  for (std::int64_t n = 0; n < N; ++n) {
    const T* row = logits + n * classes;
    const T max = *std::max_element(row, row + classes);
    double sum = 0.0, sum_logits = 0.0;
    for (std::int64_t k = 0; k < classes; ++k) sum += std::exp(double(row[k]) - double(max));
    if (smoothing != 0.0)
      for (std::int64_t k = 0; k < classes; ++k) sum_logits += double(row[k]);
    const double log_sum_exp = double(max) + std::log(sum);
    double loss = log_sum_exp - double(row[labels[n]]);
    if (smoothing != 0.0) loss = (1.0 - smoothing) * loss + uniform * (double(classes) * log_sum_exp - sum_logits);
    total += loss;
    if (per_sample) per_sample[n] = T(loss);
    if (grad_logits) {
      T* grad = grad_logits + n * classes;
      for (std::int64_t k = 0; k < classes; ++k) {
        grad[k] = static_cast<T>(std::exp(double(row[k]) - log_sum_exp) / divisor);
        if (smoothing != 0.0) grad[k] -= static_cast<T>(uniform / divisor);
      }
      grad[labels[n]] -= static_cast<T>((1.0 - smoothing) / divisor);
    }
  }
  return N > 0 ? total / divisor : 0.0;
}

}  // namespace kernels
}  // namespace headnet
