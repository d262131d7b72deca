// headnet/kernels/maxpool2d.hpp: max pooling over K x K windows, forward and backward.
//
// Shapes: x, dx: (planes, H, W) with planes = N*C; y, dy, argmax: (planes, H_out, W_out) with
// PyTorch's output size: H_out = floor((H + 2P - K) / S) + 1, or ceil(...) + 1 in ceil mode less a
// last window that would start in the right padding. Windows are clipped to the input (padding
// never wins).
// argmax records, for every output, the offset inside its input plane of the element that won;
// backward routes each output gradient there (+=, so overlapping windows add up). Ties go to the
// first element in row-major order and a NaN wins, as in PyTorch.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "headnet/simd/isa.hpp"
#include "headnet/simd/vec.hpp"  // immintrin.h where there is one

namespace headnet {
namespace kernels {

/// The shape arithmetic of a pooling window over one plane.
struct PoolGeometry {
  int height = 0;  ///< input rows
  int width = 0;  ///< input columns
  int kernel_size = 0;  ///< the window's side
  int stride = 0;  ///< the step between windows
  int padding = 0;  ///< padding on each side
  bool ceil_mode = false;  ///< round the output size up, as PyTorch's ceil_mode
  /// Output rows.
  int out_height() const { return out_size(height); }
  /// Output columns.
  int out_width() const { return out_size(width); }
  /// The plain 2x2 / stride 2 window (fast paths): no padding, and no extra ceil-mode window.
  bool is_2x2_stride_2() const {
    return kernel_size == 2 && stride == 2 && padding == 0 && out_height() == height / 2 && out_width() == width / 2;
  }
  /// The output size along a side of `in` samples.
  int out_size(int in) const {
    const int span = in + 2 * padding - kernel_size;
    int out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    if (ceil_mode && (out - 1) * stride >= in + padding) --out;
    return out;
  }
};

/// The 2x2, stride-2 window (floor mode) over planes of height x width.
inline PoolGeometry pool_2x2(int height, int width) {
  PoolGeometry g;
  g.height = height;
  g.width = width;
  g.kernel_size = 2;
  g.stride = 2;
  return g;
}

/// Where a convolution that max-pools its output as it writes it puts the result: pool_2x2 of each
/// output plane, and argmax as maxpool2d_forward's (each winner's offset in the unpooled plane),
/// for MaxPool2d's backward (conv2d_maxpool_forward in conv2d.hpp). Null y: no pooling.
template <typename T>
struct PooledOutput {
  T* y = nullptr;  ///< (N, C_out, H_out / 2, W_out / 2); null: the output is not pooled
  std::int32_t* argmax = nullptr;  ///< the winners' offsets in their unpooled planes, same shape
};

namespace detail {

// The common 2x2, stride-2 window, written out so that the compiler keeps it branch-free.
// `a > b || a != a` is "a wins": larger, or NaN (a NaN never compares greater).
template <typename T>
void maxpool2x2_plane(const PoolGeometry& g, const T* in, T* out, std::int32_t* arg) {
  const int H_out = g.out_height(), W_out = g.out_width(), W = g.width;
  for (int oh = 0; oh < H_out; ++oh) {
    const T* row0 = in + std::int64_t(2 * oh) * W;
    const T* row1 = row0 + W;
    for (int ow = 0; ow < W_out; ++ow) {
      const int i0 = (2 * oh) * W + 2 * ow;
      T best = row0[2 * ow];
      int index = i0;
      const T b = row0[2 * ow + 1], c = row1[2 * ow], d = row1[2 * ow + 1];
      if (b > best || (b != b && best == best)) best = b, index = i0 + 1;
      if (c > best || (c != c && best == best)) best = c, index = i0 + W;
      if (d > best || (d != d && best == best)) best = d, index = i0 + W + 1;
      out[oh * W_out + ow] = best;
      arg[oh * W_out + ow] = index;
    }
  }
}

// A 2x2 window over `lanes` columns at once, for a convolution that pools as it writes
// (conv2d_winograd.hpp): c0..c3 hold the four candidates of each window in row-major order, before
// the bias `add` and the ReLU (`relu`: max(., 0), 0 for a NaN, as the convolutions' ReLU); best gets
// the winner and which its number (0-3), by maxpool2x2_plane's rule. max_of_four_avx2 below is the
// same, eight columns at a time.
template <typename T>
void max_of_four_portable(const T* c0, const T* c1, const T* c2, const T* c3, T add, bool relu, int begin, int lanes,
                          T* best, T* which) {
  for (int lane = begin; lane < lanes; ++lane) {
    auto value = [&](const T* c) {
      const T v = c[lane] + add;
      return relu ? (v > T(0) ? v : T(0)) : v;
    };
    T b = value(c0), k = T(0);
    const T candidates[3] = {value(c1), value(c2), value(c3)};
    for (int q = 0; q < 3; ++q) {
      const T v = candidates[q];
      if (v > b || (v != v && b == b)) b = v, k = T(q + 1);
    }
    best[lane] = b;
    which[lane] = k;
  }
}

}  // namespace detail

#if HEADNET_SIMD_AVX2
#if !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
namespace detail {

// The same in AVX2 for float, 8 windows at a time (compiled for AVX2 whatever the flags, used unless
// the kernels are forced to portable code: simd/isa.hpp): the scalar loop ran at 7 GB/s, a third of the
// wide network's conv1 forward. Each pair of input rows is split into even and odd columns, and the
// four candidates are compared in the scalar loop's order with the same rule, so results and
// argmax are identical (tests/test_maxpool.cpp holds them to the double, scalar, path).
inline __m256 even_columns(__m256 lo, __m256 hi) {
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8));
}
inline __m256 odd_columns(__m256 lo, __m256 hi) {
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xDD)), 0xD8));
}
// a wins over best: larger, or NaN over a number.
inline __m256 wins(__m256 a, __m256 best) {
  return _mm256_or_ps(_mm256_cmp_ps(a, best, _CMP_GT_OQ),
                      _mm256_and_ps(_mm256_cmp_ps(a, a, _CMP_UNORD_Q), _mm256_cmp_ps(best, best, _CMP_ORD_Q)));
}

inline void maxpool2x2_plane_avx2(const PoolGeometry& g, const float* in, float* out, std::int32_t* arg) {
  const int H_out = g.out_height(), W_out = g.out_width(), W = g.width;
  const __m256i lane = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  for (int oh = 0; oh < H_out; ++oh) {
    const float* row0 = in + std::int64_t(2 * oh) * W;
    const float* row1 = row0 + W;
    // The last vector is moved back to end at W_out (recomputing a few windows) rather than
    // leaving up to 7 windows to the scalar loop: wide conv1's rows have 14.
    int ow = 0;
    for (; W_out >= 8 && ow < W_out; ow += 8) {
      ow = std::min(ow, W_out - 8);
      const __m256 r0a = _mm256_loadu_ps(row0 + 2 * ow), r0b = _mm256_loadu_ps(row0 + 2 * ow + 8);
      const __m256 r1a = _mm256_loadu_ps(row1 + 2 * ow), r1b = _mm256_loadu_ps(row1 + 2 * ow + 8);
      const __m256i i0 = _mm256_add_epi32(_mm256_set1_epi32(2 * oh * W + 2 * ow), lane);
      __m256 best = even_columns(r0a, r0b);
      __m256 index = _mm256_castsi256_ps(i0);
      auto challenge = [&](__m256 v, int offset) {
        const __m256 m = wins(v, best);
        best = _mm256_blendv_ps(best, v, m);
        index = _mm256_blendv_ps(index, _mm256_castsi256_ps(_mm256_add_epi32(i0, _mm256_set1_epi32(offset))), m);
      };
      challenge(odd_columns(r0a, r0b), 1);
      challenge(even_columns(r1a, r1b), W);
      challenge(odd_columns(r1a, r1b), W + 1);
      _mm256_storeu_ps(out + oh * W_out + ow, best);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(arg + oh * W_out + ow), _mm256_castps_si256(index));
    }
    for (; ow < W_out; ++ow) {
      const int i0 = (2 * oh) * W + 2 * ow;
      float best = row0[2 * ow];
      int index = i0;
      const float b = row0[2 * ow + 1], c = row1[2 * ow], d = row1[2 * ow + 1];
      if (b > best || (b != b && best == best)) best = b, index = i0 + 1;
      if (c > best || (c != c && best == best)) best = c, index = i0 + W;
      if (d > best || (d != d && best == best)) best = d, index = i0 + W + 1;
      out[oh * W_out + ow] = best;
      arg[oh * W_out + ow] = index;
    }
  }
}

// max_of_four_portable eight columns at a time: selects, not branches (a branch per comparison
// mispredicts on half of them, which made the fused pool slower than a separate pass).
inline void max_of_four_avx2(const float* c0, const float* c1, const float* c2, const float* c3, float add, bool relu,
                             int lanes, float* best, float* which) {
  const __m256 bias = _mm256_set1_ps(add), zero = _mm256_setzero_ps();
  int lane = 0;
  for (; lane + 8 <= lanes; lane += 8) {
    auto value = [&](const float* c) {
      const __m256 v = _mm256_add_ps(_mm256_loadu_ps(c + lane), bias);
      return relu ? _mm256_blendv_ps(zero, v, _mm256_cmp_ps(v, zero, _CMP_GT_OQ)) : v;
    };
    __m256 b = value(c0), k = zero;
    auto challenge = [&](__m256 v, float q) {
      const __m256 m = wins(v, b);
      b = _mm256_blendv_ps(b, v, m);
      k = _mm256_blendv_ps(k, _mm256_set1_ps(q), m);
    };
    challenge(value(c1), 1.0f);
    challenge(value(c2), 2.0f);
    challenge(value(c3), 3.0f);
    _mm256_storeu_ps(best + lane, b);
    _mm256_storeu_ps(which + lane, k);
  }
  max_of_four_portable(c0, c1, c2, c3, add, relu, lane, lanes, best, which);
}

}  // namespace detail
#if !defined(__clang__)
#pragma GCC pop_options
#endif
#endif  // HEADNET_SIMD_AVX2

namespace detail {

// max_of_four over `lanes` columns, vectorised where the CPU can (as maxpool2d_forward).
template <typename T>
void max_of_four(const T* c0, const T* c1, const T* c2, const T* c3, T add, bool relu, int lanes, T* best, T* which) {
#if HEADNET_SIMD_AVX2
  if constexpr (std::is_same<T, float>::value) {
    if (simd::active_isa() != simd::Isa::portable) return max_of_four_avx2(c0, c1, c2, c3, add, relu, lanes, best, which);
  }
#endif
  max_of_four_portable(c0, c1, c2, c3, add, relu, 0, lanes, best, which);
}

// One plane of maxpool2d_forward; `vector`: the AVX2 path for the 2x2 window in float. Also called
// by the convolutions that pool their output as they write it (conv2d_maxpool_forward).
template <typename T>
void maxpool2d_forward_plane(const PoolGeometry& g, const T* in, T* out, std::int32_t* arg, bool vector) {
  const int H_out = g.out_height(), W_out = g.out_width(), K = g.kernel_size, S = g.stride;
  if (g.is_2x2_stride_2()) {
#if HEADNET_SIMD_AVX2
    if constexpr (std::is_same<T, float>::value) {
      if (vector) return maxpool2x2_plane_avx2(g, in, out, arg);
    }
#endif
    (void)vector;
    return maxpool2x2_plane<T>(g, in, out, arg);
  }
  const int P = g.padding;
  for (int oh = 0; oh < H_out; ++oh) {
    const int h0 = std::max(oh * S - P, 0), h1 = std::min(oh * S - P + K, g.height);
    for (int ow = 0; ow < W_out; ++ow) {
      const int w0 = std::max(ow * S - P, 0), w1 = std::min(ow * S - P + K, g.width);
      std::int32_t best_index = h0 * g.width + w0;
      T best = in[best_index];
      for (int h = h0; h < h1; ++h) {
        for (int w = w0; w < w1; ++w) {
          const std::int32_t index = h * g.width + w;
          const T v = in[index];
          if (v > best || (std::isnan(v) && !std::isnan(best))) {
            best = v;
            best_index = index;
          }
        }
      }
      out[oh * W_out + ow] = best;
      arg[oh * W_out + ow] = best_index;
    }
  }
}

}  // namespace detail

/// Max pooling of `planes` planes; records each maximum's index in `argmax` for backward.
template <typename T>
void maxpool2d_forward(const PoolGeometry& g, std::int64_t planes, const T* x, T* y, std::int32_t* argmax) {
  const std::int64_t in_plane = std::int64_t(g.height) * g.width;
  const std::int64_t out_plane = std::int64_t(g.out_height()) * g.out_width();
  const bool vector = simd::active_isa() != simd::Isa::portable;  // the 256-bit path runs on AVX2 and AVX-512
#pragma omp parallel for schedule(static) if (planes * in_plane > (1 << 16))
  for (std::int64_t p = 0; p < planes; ++p)
    detail::maxpool2d_forward_plane(g, x + p * in_plane, y + p * out_plane, argmax + p * out_plane, vector);
}

namespace detail {

// One plane of maxpool2d_backward: zeros, then each window's gradient at its winner (assigned
// where windows cannot overlap, added where they can). Also called by the direct convolution
// kernels that take the pooled gradient (conv2d_maxpool_backward), one image at a time. Zeroing
// the plane and then storing one value per window measured faster than writing every element once
// with vector selects (AMD EPYC, 2 threads: 0.30 against 1.0 ms for 256 images x 256 planes of
// 7x7, 2.9 against 3.9 ms for 256 x 128 of 28x28; memset is that fast), so there is no vector path.
template <typename T>
void maxpool2d_backward_plane(const PoolGeometry& g, const T* grad_out, const std::int32_t* arg, T* grad_in,
                              const T* relu_output) {
  const std::int64_t in_plane = std::int64_t(g.height) * g.width;
  const std::int64_t out_plane = std::int64_t(g.out_height()) * g.out_width();
  std::fill(grad_in, grad_in + in_plane, T(0));
  if (g.is_2x2_stride_2()) {
    for (std::int64_t o = 0; o < out_plane; ++o)
      grad_in[arg[o]] = !relu_output || relu_output[o] > T(0) ? grad_out[o] : T(0);
    return;
  }
  for (std::int64_t o = 0; o < out_plane; ++o)
    grad_in[arg[o]] += !relu_output || relu_output[o] > T(0) ? grad_out[o] : T(0);
}

}  // namespace detail

/// dx (overwritten): each output's gradient sent to its window's winner (argmax), zero elsewhere.
/// relu_output: for a pool whose input came through a ReLU fused before it (Conv2d), the pool's
/// output; a gradient then goes only where it is > 0 (the ReLU's mask at the winners).
template <typename T>
void maxpool2d_backward(const PoolGeometry& g, std::int64_t planes, const T* dy, const std::int32_t* argmax,
                        T* dx, const T* relu_output = nullptr) {
  const std::int64_t in_plane = std::int64_t(g.height) * g.width;
  const std::int64_t out_plane = std::int64_t(g.out_height()) * g.out_width();
#pragma omp parallel for schedule(static) if (planes * in_plane > (1 << 16))
  for (std::int64_t p = 0; p < planes; ++p)
    detail::maxpool2d_backward_plane(g, dy + p * out_plane, argmax + p * out_plane, dx + p * in_plane,
                                     relu_output ? relu_output + p * out_plane : nullptr);
}

/// The gradient of a convolution's full output when a 2x2 max-pool was fused into it (Conv2d with a
/// MaxPool2d(2) after it): the pooled output's gradient dy, the winners (argmax, as PooledOutput's)
/// and, for a ReLU fused before the pool, the pooled output (its mask). It stands for the full-size
/// gradient maxpool2d_backward would write (conv2d_maxpool_backward in conv2d.hpp): unpool() writes
/// some of its planes, value() is what reaches one winner.
template <typename T>
struct PooledGradient {
  const T* dy = nullptr;  ///< (N, C, height / 2, width / 2); null: no pooled gradient
  const std::int32_t* argmax = nullptr;  ///< the winners' offsets in their full planes, same shape
  const T* relu_output = nullptr;  ///< the pooled output when a ReLU came before the pool, else null
  int height = 0;  ///< rows of the full planes (the convolution's output)
  int width = 0;  ///< columns of the full planes

  /// The pool's window over the full planes.
  PoolGeometry geometry() const { return pool_2x2(height, width); }
  /// Values per pooled plane.
  std::int64_t pooled_plane() const { return std::int64_t(height / 2) * (width / 2); }
  /// The gradient that reaches pooled output o (the plane's cells in a row): 0 where the ReLU's mask is off.
  T value(std::int64_t o) const { return !relu_output || relu_output[o] > T(0) ? dy[o] : T(0); }
  /// The full-size gradient of `planes` planes from `first` (one image's channels), into out.
  void unpool(std::int64_t first, std::int64_t planes, T* out) const {
    const PoolGeometry g = geometry();
    const std::int64_t in_plane = std::int64_t(height) * width;
    for (std::int64_t p = 0; p < planes; ++p) {
      const std::int64_t o = (first + p) * pooled_plane();
      detail::maxpool2d_backward_plane(g, dy + o, argmax + o, out + p * in_plane, relu_output ? relu_output + o : nullptr);
    }
  }
};

}  // namespace kernels
}  // namespace headnet
