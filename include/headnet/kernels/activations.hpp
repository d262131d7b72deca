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

namespace detail {

// erf, exp, tanh and the sigmoid in float without a call into libm, so that loops over them
// vectorise (libm's erff and expf, one scalar call per element, were a sixth of the fast recipe's
// training step; std::tanh made the tanh form of GELU 40x slower than the erf form).

// a where mask is all ones, b where it is 0. Chosen on the bit patterns because GCC 12 keeps a
// conditional between two floats that are not both constants (x > 0 ? x : s * x, even
// x > 0 ? 1 : s) as a branch under -ftrapping-math, and no loop over it vectorises; a select
// between integers does, its mask from the float comparison (x > 0 ? -1 : 0) included.
inline float select_float(std::int32_t mask, float a, float b) {
  return __builtin_bit_cast(float, (__builtin_bit_cast(std::int32_t, a) & mask) | (__builtin_bit_cast(std::int32_t, b) & ~mask));
}

// a with its magnitude clamped to limit (NaN kept, sign kept). In float on the bit patterns (for
// floats of one sign a larger magnitude is a larger integer): written with std::min and std::max
// on floats, GCC 12 compiled the clamp to branches and no loop over it vectorised.
inline float clamp_magnitude(float a, float limit) {
  const std::int32_t bits = __builtin_bit_cast(std::int32_t, a);
  const std::int32_t magnitude = bits & 0x7FFFFFFF;
  const std::int32_t clamped = magnitude > 0x7F800000 ? magnitude  // NaN
                                                      : std::min(magnitude, __builtin_bit_cast(std::int32_t, limit));
  return __builtin_bit_cast(float, clamped | (bits & INT32_MIN));
}
inline double clamp_magnitude(double a, double limit) { return std::isnan(a) ? a : std::min(std::max(a, -limit), limit); }

// erf(x) as the rational function of Eigen's generic_fast_erf_float (odd degree 13 over even degree
// 8, from TensorFlow): within a few ulp of erff; |x| >= 4 gives +-1 in float. NaN stays NaN.
inline float erf_float(float a) {
  const float x = clamp_magnitude(a, 4.0f);
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
// 2^n from the exponent bits): within 2 ulp; below -87, where e^x leaves the normal floats, 0 rather
// than a denormal (x e^x stays 0 for the largest x). Written so that GCC 12 vectorises loops over it: a float
// max, std::floor or a float-to-int conversion here each kept it scalar (it would not if-convert
// them under -ftrapping-math), so the clamp compares bit patterns (for negative floats a larger
// magnitude is a larger integer) and the rounding reads the bits of x log2(e) + 1.5 2^23. It
// computes e^-|x|, so +0 gives 1 as -0 does.
inline float exp_nonpositive_float(float x) {
  const std::int32_t limit = __builtin_bit_cast(std::int32_t, 87.0f);
  const std::int32_t magnitude = __builtin_bit_cast(std::int32_t, x) & 0x7FFFFFFF;
  x = -__builtin_bit_cast(float, std::min(magnitude, limit));
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
  return select_float(magnitude > limit ? 0 : -1, e * scale, 0.0f);  // past -87 (NaN too): 0
}

// tanh(x) in float: for |x| < 0.625 the rational function of Eigen 3.4's generic_fast_tanh_float
// (odd degree 13 over even degree 6; x itself below 0.0004, where the rational is 1 ulp low), above
// 1 - 2 e / (1 + e) with e = e^-2|x| (exp_nonpositive_float), the sign restored: within a few ulp
// of tanhf. Eigen's rational alone saturates to 1 from |x| = 7.9, where tanh is still 3e-7 short of
// it; then 1 - t^2 (Tanh's and GELU's derivatives) was 0 where it should be 5e-7, and the tanh form
// of GELU's derivative, which multiplies it by about x^3 / 10, was 4e-6 off near x = -4.8. With e,
// tanh is 1 exactly only past |x| = 9, as in tanhf. NaN stays NaN.
inline float tanh_float(float a) {
  const float x = clamp_magnitude(a, 0.625f);  // the rational's range (no overflow for large |a|)
  const float x2 = x * x;
  float p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
  p = x2 * p + -8.60467152213735e-11f;
  p = x2 * p + 5.12229709037114e-08f;
  p = x2 * p + 1.48572235717979e-05f;
  p = x2 * p + 6.37261928875436e-04f;
  p = x2 * p + 4.89352455891786e-03f;
  float q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
  q = x2 * q + 2.26843463243900e-03f;
  q = x2 * q + 4.89352518554385e-03f;
  const std::int32_t bits = __builtin_bit_cast(std::int32_t, a), magnitude = bits & 0x7FFFFFFF;
  const float small = select_float(magnitude < __builtin_bit_cast(std::int32_t, 0.0004f) ? -1 : 0, a, x * p / q);
  const float e = exp_nonpositive_float(2.0f * a);  // e^-2|a|; 0 past |a| = 43.5
  const float large = 1.0f - 2.0f * e / (1.0f + e);
  const float signed_large = __builtin_bit_cast(float, __builtin_bit_cast(std::int32_t, large) | (bits & INT32_MIN));
  // The mask from a subtraction's sign, not a comparison: from `magnitude < 0.625 ? -1 : 0` GCC 12
  // rebuilt a branch between the two formulas (both share the comparison with the clamp above), and
  // the loop stayed scalar.
  const std::int32_t below = (magnitude - __builtin_bit_cast(std::int32_t, 0.625f)) >> 31;
  const float y = select_float(below, small, signed_large);
  return select_float(magnitude > 0x7F800000 ? -1 : 0, a, y);
}

// The logistic sigmoid from e = e^-|x| (exp_nonpositive_float): 1 / (1 + e) for x >= 0 and
// e / (1 + e) below, so neither side overflows; within a few ulp; 0 and 1 exactly where |x| > 87.
// NaN stays NaN.
inline float sigmoid_float(float x) {
  const std::int32_t bits = __builtin_bit_cast(std::int32_t, x);
  const float e = exp_nonpositive_float(x);
  const float s = 1.0f / (1.0f + e);  // sigmoid(|x|)
  const float y = select_float(bits < 0 ? -1 : 0, e * s, s);
  return select_float((bits & 0x7FFFFFFF) > 0x7F800000 ? -1 : 0, x, y);
}

}  // namespace detail

/// The logistic sigmoid, without overflow for large |x|: in float detail::sigmoid_float
/// (vectorisable), in double from std::exp.
inline float sigmoid(float x) { return detail::sigmoid_float(x); }
/// The logistic sigmoid in double.
inline double sigmoid(double x) {
  return x >= 0.0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));  // no overflow either side
}

/// The hyperbolic tangent: in float detail::tanh_float (vectorisable), in double std::tanh.
inline float tanh(float x) { return detail::tanh_float(x); }
/// The hyperbolic tangent in double.
inline double tanh(double x) { return std::tanh(x); }

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

/// GELU, tanh approximation (PyTorch's approximate="tanh"); in float, tanh from detail::tanh_float.
struct GeluTanh {
  /// The activation of x.
  template <typename T>
  T value(T x) const {
    return T(0.5) * x * (T(1) + kernels::tanh(T(0.79788456080286535588) * (x + T(0.044715) * x * x * x)));
  }
  /// The derivative at x.
  template <typename T>
  T derivative(T x, T) const {
    const T t = kernels::tanh(T(0.79788456080286535588) * (x + T(0.044715) * x * x * x));
    // Past |x| = 10, 1 - t^2 is 0 in float and double alike, and x^2 would overflow to inf (0 inf = NaN).
    const T xc = detail::clamp_magnitude(x, T(10));
    return T(0.5) * (T(1) + t) + T(0.5) * xc * (T(1) - t * t) * T(0.79788456080286535588) * (T(1) + T(3 * 0.044715) * xc * xc);
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
  /// The activation in float, selected on the bit patterns (detail::select_float) so that loops
  /// over it vectorise.
  float value(float x) const { return detail::select_float(x > 0.0f ? -1 : 0, x, float(negative_slope) * x); }
  /// The derivative in float, likewise.
  float derivative(float x, float) const { return detail::select_float(x > 0.0f ? -1 : 0, 1.0f, float(negative_slope)); }
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
    return kernels::tanh(x);
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
