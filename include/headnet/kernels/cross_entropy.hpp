// headnet/kernels/cross_entropy.hpp: fused log-softmax and negative log-likelihood.
//
// Shapes: logits, grad_logits: (N, classes); labels: (N).
//   loss = 1/N sum_n [ logsumexp(logits[n]) - logits[n][labels[n]] ]
//   grad_logits[n] = (softmax(logits[n]) - onehot(labels[n])) / N
// logsumexp subtracts the row maximum first, so logits of magnitude 1000 neither overflow nor lose
// the loss to exp() underflow. Accumulation is in double whatever T is.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace headnet {
namespace kernels {

// Returns the mean loss; writes grad_logits when it is not null. Labels must be in range.
template <typename T>
double softmax_cross_entropy(std::int64_t N, std::int64_t classes, const T* logits, const std::int32_t* labels,
                             T* grad_logits) {
  double total = 0.0;
  for (std::int64_t n = 0; n < N; ++n) {
    const T* row = logits + n * classes;
    const T max = *std::max_element(row, row + classes);
    double sum = 0.0;
    for (std::int64_t k = 0; k < classes; ++k) sum += std::exp(double(row[k]) - double(max));
    const double log_sum_exp = double(max) + std::log(sum);
    total += log_sum_exp - double(row[labels[n]]);
    if (grad_logits) {
      T* grad = grad_logits + n * classes;
      for (std::int64_t k = 0; k < classes; ++k)
        grad[k] = static_cast<T>(std::exp(double(row[k]) - log_sum_exp) / double(N));
      grad[labels[n]] -= static_cast<T>(1.0 / double(N));
    }
  }
  return N > 0 ? total / double(N) : 0.0;
}

}  // namespace kernels
}  // namespace headnet
