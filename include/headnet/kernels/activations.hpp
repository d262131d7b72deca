// headnet/kernels/activations.hpp: elementwise activations, each a value and its derivative.
//
// An activation is a small struct with y = value(x) and dy/dx = derivative(x, y) (given both, so
// that each uses whichever is cheaper), written as PyTorch defines them:
//   GELU      x Phi(x), Phi the standard normal CDF (erf); or the tanh approximation
//             0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
//   LeakyReLU x if x > 0 else negative_slope x       SiLU  x sigmoid(x)
//   Sigmoid   1 / (1 + exp(-x))                     Tanh  tanh(x)
// activation_forward / activation_backward apply one over n elements, in parallel when large; their
// loops, compiled once per instruction set, are in kernels/activations_impl.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "headnet/simd/isa.hpp"

namespace headnet {
namespace kernels {

constexpr std::int64_t activation_parallel_threshold = std::int64_t(1) << 15;  ///< Below this many elements a parallel region costs more than it saves.

/// The logistic sigmoid, without overflow for large |x|.
template <typename T>
T sigmoid(T x) {
  return x >= T(0) ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));  // no overflow either side
}

namespace detail {

// erf and exp in float without a call into libm, so that loops over them vectorise (libm's erff and
// expf, one scalar call per element, were a sixth of the fast recipe's training step).

// erf(x) as the rational function of Eigen's generic_fast_erf_float (odd degree 13 over even degree
// 8, from TensorFlow): within a few ulp of erff; |x| >= 4 gives +-1 in float. NaN stays NaN. The
// clamp to [-4, 4] works on the bit patterns, as in exp_nonpositive_float below: written with
// std::min and std::max on floats, GCC 12 compiled it to branches and no loop over it vectorised.
inline float erf_float(float a) {
  const std::int32_t bits = __builtin_bit_cast(std::int32_t, a);
  const std::int32_t magnitude = bits & 0x7FFFFFFF;
  const std::int32_t clamped = magnitude > 0x7F800000 ? magnitude  // NaN
                                                      : std::min(magnitude, __builtin_bit_cast(std::int32_t, 4.0f));
  const float x = __builtin_bit_cast(float, clamped | (bits & INT32_MIN));
  const float x2 = x * x;
  float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
  p = x2 * p + -2.10102402082508e-06f;
  p = x2 * p + -5.69250639462346e-05f;
  p = x2 * p + -7.34990630326855e-04f;
  p = x2 * p + -2.95459980854025e-03f;
  p = x2 * p + -1.60960333262415e-02f;
  float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
  q = x2 * q + -1.68282697438203e-03f;
  q = x2 * q + -7.37332916720468e-03f;
  q = x2 * q + -1.42647390514189e-02f;
  return x * p / q;
}

// e^x for x <= 0 (Cephes' expf: x = n ln2 + r, |r| <= ln2 / 2, a degree-5 polynomial for e^r, then
// 2^n from the exponent bits): within 2 ulp; below -87, where e^x leaves the normal floats, e^-87
// (1.6e-38) rather than a denormal or 0. Written so that GCC 12 vectorises loops over it: a float
// max, std::floor or a float-to-int conversion here each kept it scalar (it would not if-convert
// them under -ftrapping-math), so the clamp compares bit patterns (for negative floats a larger
// magnitude is a larger integer) and the rounding reads the bits of x log2(e) + 1.5 2^23. It
// computes e^-|x|, so +0 gives 1 as -0 does.
inline float exp_nonpositive_float(float x) {
  const std::int32_t magnitude = std::min(__builtin_bit_cast(std::int32_t, x) & 0x7FFFFFFF,
                                          __builtin_bit_cast(std::int32_t, 87.0f));
  x = -__builtin_bit_cast(float, magnitude);
  // k = x log2(e) rounded to the nearest integer.
  const std::int32_t k = __builtin_bit_cast(std::int32_t, x * 1.44269504088896341f + 12582912.0f) - 0x4B400000;
  const float n = static_cast<float>(k);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const std::int32_t bits = (k + 127) << 23;
  const float scale = __builtin_bit_cast(float, bits);  // (memcpy here stopped GCC 12 vectorising the loop)
  return e * scale;
}

}  // namespace detail

/// GELU, exact form: x Phi(x) with the normal CDF via erf (PyTorch's approximate="none"). In float
/// erf and exp are computed inline (detail::erf_float, detail::exp_nonpositive_float), in double
/// by the standard library.
struct GeluErf {
  /// The activation of x.
  template <typename T>
  T value(T x) const {
    return T(0.5) * x * (T(1) + erf(x * T(0.70710678118654752440)));
  }
  template <typename T>
  T derivative(T x, T) const {  ///< Phi(x) + x phi(x)
    const T cdf = T(0.5) * (T(1) + erf(x * T(0.70710678118654752440)));
    const T pdf = T(0.39894228040143267794) * exp_nonpositive(T(-0.5) * x * x);
    return cdf + x * pdf;
  }

 private:
  static float erf(float x) { return detail::erf_float(x); }
  static double erf(double x) { return std::erf(x); }
  static float exp_nonpositive(float x) { return detail::exp_nonpositive_float(x); }
  static double exp_nonpositive(double x) { return std::exp(x); }
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

}  // namespace kernels
}  // namespace headnet

#define HEADNET_ISA_NAMESPACE activations
#define HEADNET_ISA_IMPL "headnet/kernels/activations_impl.hpp"
#include "headnet/simd/for_each_isa.hpp"

namespace headnet {
namespace kernels {
namespace detail {
// Calls run(loops) with the copy of activations_impl.hpp's Loops for T: in float the one
// simd::loops_copy picks for the kernels' instruction set, in double the portable one.
template <typename T, typename Run>
void with_activation_loops(Run&& run) {
  if constexpr (std::is_same<T, float>::value) switch (simd::loops_copy(simd::active_isa())) {
#if HEADNET_SIMD_AVX512
      case simd::Isa::avx512: return run(activations::avx512::Loops());
#endif
#if HEADNET_SIMD_AVX2
      case simd::Isa::avx2: return run(activations::avx2::Loops());
#endif
      default: break;
    }
  run(activations::portable::Loops());
}
}  // namespace detail

/// y = op(x) over n elements, in parallel when n is large.
template <typename T, typename Op>
void activation_forward(const Op& op, std::int64_t n, const T* x, T* y) {
  detail::with_activation_loops<T>([&](auto loops) { loops.activation_forward(op, n, x, y); });
}

/// dx = dy * f'(x); dx is overwritten.
template <typename T, typename Op>
void activation_backward(const Op& op, std::int64_t n, const T* x, const T* y, const T* dy, T* dx) {
  detail::with_activation_loops<T>([&](auto loops) { loops.activation_backward(op, n, x, y, dy, dx); });
}

/// GELU: the exact or the tanh form for the whole loop, so that each loop has no branch and
/// vectorises.
template <typename T>
void activation_forward(const GeluOp& op, std::int64_t n, const T* x, T* y) {
  if (op.tanh_approximation)
    activation_forward(GeluTanh(), n, x, y);
  else
    activation_forward(GeluErf(), n, x, y);
}

/// GELU's backward, the form chosen once for the loop.
template <typename T>
void activation_backward(const GeluOp& op, std::int64_t n, const T* x, const T* y, const T* dy, T* dx) {
  if (op.tanh_approximation)
    activation_backward(GeluTanh(), n, x, y, dy, dx);
  else
    activation_backward(GeluErf(), n, x, y, dy, dx);
}

}  // namespace kernels
}  // namespace headnet
