// headnet/core/init.hpp: parameter initialisation, as PyTorch's defaults.
//
// PyTorch's Conv2d and Linear draw weights with kaiming_uniform_(a = sqrt(5)) and biases from
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)). With a = sqrt(5) the kaiming bound
// gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)), is also exactly 1/sqrt(fan_in).
#pragma once

#include <cmath>
#include <cstdint>

#include "headnet/core/random.hpp"
#include "headnet/core/tensor.hpp"

namespace headnet {
namespace init {

template <typename T>
void uniform(Tensor<T>& t, double low, double high, Generator& gen) {
  for (T& v : t) v = static_cast<T>(gen.uniform(low, high));
}

template <typename T>
void kaiming_uniform(Tensor<T>& t, std::int64_t fan_in, double a, Generator& gen) {
  const double gain = std::sqrt(2.0 / (1.0 + a * a));
  const double bound = fan_in > 0 ? gain * std::sqrt(3.0 / double(fan_in)) : 0.0;
  uniform(t, -bound, bound, gen);
}

// The weight and bias initialisation of PyTorch's Conv2d and Linear.
template <typename T>
void pytorch_default(Tensor<T>& weight, Tensor<T>* bias, std::int64_t fan_in, Generator& gen) {
  kaiming_uniform(weight, fan_in, std::sqrt(5.0), gen);
  if (bias) {
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(double(fan_in)) : 0.0;
    uniform(*bias, -bound, bound, gen);
  }
}

}  // namespace init
}  // namespace headnet
