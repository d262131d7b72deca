// headnet/kernels/activations.hpp: elementwise activations, each a value and its derivative.
//
// An activation is a small struct with y = value(x) and dy/dx = derivative(x, y) (given both, so
// that each uses whichever is cheaper), written as PyTorch defines them:
//   GELU      x Phi(x), Phi the standard normal CDF (erf); or the tanh approximation
//             0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
//   LeakyReLU x if x > 0 else negative_slope x       SiLU  x sigmoid(x)
//   Sigmoid   1 / (1 + exp(-x))                     Tanh  tanh(x)
// activation_forward / activation_backward apply one over n elements, in parallel when large.
#pragma once

#include <cmath>
#include <cstdint>

namespace headnet {
namespace kernels {

constexpr std::int64_t activation_parallel_threshold = std::int64_t(1) << 15;  ///< Below this many elements a parallel region costs more than it saves.

/// The logistic sigmoid, without overflow for large |x|.
template <typename T>
T sigmoid(T x) {
  return x >= T(0) ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));  // no overflow either side
}

/// GELU, exact form: x Phi(x) with the normal CDF via erf (PyTorch's approximate="none").
struct GeluErf {
  /// The activation of x.
  template <typename T>
  T value(T x) const {
    return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
  }
  template <typename T>
  T derivative(T x, T) const {  ///< Phi(x) + x phi(x)
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
    const T pdf = T(0.39894228040143267794) * std::exp(T(-0.5) * x * x);
    return cdf + x * pdf;
  }
};

/// GELU, tanh approximation (PyTorch's approximate="tanh").
struct GeluTanh {
  /// The activation of x.
  template <typename T>
  T value(T x) const {
    return T(0.5) * x * (T(1) + std::tanh(T(0.79788456080286535588) * (x + T(0.044715) * x * x * x)));
  }
  /// The derivative at x.
  template <typename T>
  T derivative(T x, T) const {
    const T t = std::tanh(T(0.79788456080286535588) * (x + T(0.044715) * x * x * x));
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * T(0.79788456080286535588) * (T(1) + T(3 * 0.044715) * x * x);
  }
};

/// GELU, exact or with the tanh approximation (one well-predicted branch per element).
struct GeluOp {
  bool tanh_approximation = false;  ///< use the tanh approximation
  /// The activation of x.
  template <typename T>
  T value(T x) const {
    return tanh_approximation ? GeluTanh().value(x) : GeluErf().value(x);
  }
  /// The derivative at x, given y, the activation.
  template <typename T>
  T derivative(T x, T y) const {
    return tanh_approximation ? GeluTanh().derivative(x, y) : GeluErf().derivative(x, y);
  }
};

/// LeakyReLU: x for x > 0, negative_slope * x otherwise.
struct LeakyReLUOp {
  double negative_slope = 0.01;  ///< the slope for negative inputs
  /// The activation of x.
  template <typename T>
  T value(T x) const {
    return x > T(0) ? x : T(negative_slope) * x;
  }
  /// The derivative at x.
  template <typename T>
  T derivative(T x, T) const {
    return x > T(0) ? T(1) : T(negative_slope);
  }
};

/// SiLU (swish): x * sigmoid(x).
struct SiLUOp {
  /// The activation of x.
  template <typename T>
  T value(T x) const {
    return x * sigmoid(x);
  }
  /// The derivative at x.
  template <typename T>
  T derivative(T x, T) const {
    const T s = sigmoid(x);
    return s * (T(1) + x * (T(1) - s));
  }
};

/// The logistic sigmoid 1 / (1 + e^-x).
struct SigmoidOp {
  /// The activation of x.
  template <typename T>
  T value(T x) const {
    return sigmoid(x);
  }
  /// The derivative, from the activation y: y (1 - y).
  template <typename T>
  T derivative(T, T y) const {
    return y * (T(1) - y);
  }
};

/// The hyperbolic tangent.
struct TanhOp {
  /// The activation of x.
  template <typename T>
  T value(T x) const {
    return std::tanh(x);
  }
  /// The derivative, from the activation y: 1 - y^2.
  template <typename T>
  T derivative(T, T y) const {
    return T(1) - y * y;
  }
};

/// y = op(x) over n elements, in parallel when n is large.
template <typename T, typename Op>
void activation_forward(const Op& op, std::int64_t n, const T* x, T* y) {
#pragma omp parallel for schedule(static) if (n > activation_parallel_threshold)
  for (std::int64_t i = 0; i < n; ++i) y[i] = op.value(x[i]);
}

/// dx = dy * f'(x); dx is overwritten.
template <typename T, typename Op>
void activation_backward(const Op& op, std::int64_t n, const T* x, const T* y, const T* dy, T* dx) {
#pragma omp parallel for schedule(static) if (n > activation_parallel_threshold)
  for (std::int64_t i = 0; i < n; ++i) dx[i] = dy[i] * op.derivative(x[i], y[i]);
}

}  // namespace kernels
}  // namespace headnet
