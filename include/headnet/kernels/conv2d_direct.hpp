// headnet/kernels/conv2d_direct.hpp: stride-1 convolution without im2col, in vector registers of
// every width the CPU has.
//
// im2col + GEMM is a poor fit for layers with few channels: the tutorial's conv1 (3 -> 6, 5x5)
// unfolds each 12 KB image into 235 KB of columns, twice per step, and then hands the GEMM a matrix
// only 6 rows tall, which its 24x4 register tile cannot fill. Here the input is read in place.
//
// The trick that makes it a plain loop: index the output on the input's (padded) row width Wp,
// p = oh*Wp + ow, instead of on W_out. Then the input value under kernel tap t = (c, kh, kw) for
// output p is at xp[offset(t) + p] with offset(t) = c*Hp*Wp + kh*Wp + kw, for every p, so
//   forward          y_ext[co][p]  = sum_t  weight[co][t] * xp[offset(t) + p]
//   weight gradient  dW[co][t]    += sum_p  dy_ext[co][p] * xp[offset(t) + p]
// over p in [0, L), L = (H_out - 1)*Wp + W_out. The K-1 positions at the end of each row (ow >=
// W_out) are not output pixels: the forward computes and drops them, the weight gradient sets their
// dy to 0. The input gradient is either the forward applied to dy zero-padded by K-1-padding with
// the kernel flipped and its channel axes swapped (the "full" convolution: "gather"), or the
// transpose of the weight gradient's formula, dxp[offset(t) + p] += sum_co weight[co][t] *
// dy_ext[co][p] ("scatter"), whichever does less work (prefer_scatter).
//
// Register tiles (conv2d_direct_impl.hpp, written once against simd/vec.hpp and compiled here once per
// instruction set): with W floats per register and R rows per tile (AVX2: W = 8, R = 6; AVX-512:
// W = 16, R = 12), the forward keeps R output channels x 2W pixels and per tap loads 2 input vectors
// and broadcasts R weights; the weight gradient keeps 2 output channels x R taps x W pixels; the
// scatter keeps R input channels x 2W pixels at one tap. Layers whose output channels fill whole
// registers run the forward and weight gradient "by channel", with channels along the vector; a
// scattered input gradient whose input channels fill registers runs by channel too (real pixels
// only; input_gradient_by_channel).
//
// Only for float and stride 1; supported(isa, ...) says when, and kernels/conv2d.hpp falls back to
// im2col + GEMM otherwise. Which instruction set runs is chosen at run time (simd/isa.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "headnet/core/parallel.hpp"
#include "headnet/kernels/conv2d_workspace.hpp"
#include "headnet/kernels/im2col.hpp"
#include "headnet/kernels/maxpool2d.hpp"
#include "headnet/simd/isa.hpp"
#include "headnet/simd/vec.hpp"

namespace headnet {
namespace kernels {
namespace direct {

/// An image (channels, height, width) zero-padded by `pad` on each side.
struct PaddedGeometry {
  int channels;  ///< channels
  int height;  ///< rows, padding included
  int width;  ///< columns, padding included
  /// Elements in one channel plane.
  std::int64_t plane() const { return std::int64_t(height) * width; }
  /// Elements in the padded image.
  std::int64_t size() const { return channels * plane(); }
};

/// Length of the extended output (see the top of the file) of a K x K stride-1 convolution.
inline std::int64_t extended_length(const PaddedGeometry& in, int K) {
  const int H_out = in.height - K + 1, W_out = in.width - K + 1;
  return std::int64_t(H_out - 1) * in.width + W_out;
}

/// How one instruction set's direct kernels compute a layer: their tile sizes and the variant each
/// pass takes (plan(isa, g, C_out)); for tests and benchmarks.
struct DirectPlan {
  int vector_width;                 ///< floats per register
  int tile_rows;                    ///< rows of a register tile
  std::int64_t forward_chunk_taps;  ///< taps per chunk of the by-channel forward
  int forward_tile_pixels;          ///< pixels per by-channel forward tile for this image size
  bool forward_by_channel;          ///< the forward keeps channels along the vector
  bool weight_gradient_by_channel;  ///< the weight gradient keeps channels along the vector
  bool input_gradient_scatters;     ///< the input gradient scatters rather than gathers
  bool input_gradient_by_channel;   ///< ... and scatters with input channels along the vector
};

/// n rounded up to a multiple of m.
inline std::int64_t round_up(std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; }

/// offsets[t] = c*Hp*Wp + kh*Wp + kw for tap t = (c*K + kh)*K + kw.
inline void tap_offsets(const PaddedGeometry& in, int K, std::int64_t* offsets) {
  std::int64_t t = 0;
  for (int c = 0; c < in.channels; ++c)
    for (int kh = 0; kh < K; ++kh)
      for (int kw = 0; kw < K; ++kw) offsets[t++] = c * in.plane() + std::int64_t(kh) * in.width + kw;
}

}  // namespace direct
}  // namespace kernels
}  // namespace headnet

// The kernels, once per instruction set: namespace direct::portable, direct::avx2, direct::avx512.
#define HEADNET_ISA_NAMESPACE direct
#define HEADNET_ISA_IMPL "headnet/kernels/conv2d_direct_impl.hpp"
#include "headnet/simd/for_each_isa.hpp"

namespace headnet {
namespace kernels {
namespace direct {

// Calls the instruction set's own `function` with the arguments that follow.
#if HEADNET_SIMD_AVX512
#define HEADNET_DIRECT_AVX512_CASE(function, ...) \
  case simd::Isa::avx512: return avx512::function(__VA_ARGS__);
#else
#define HEADNET_DIRECT_AVX512_CASE(function, ...)
#endif
#if HEADNET_SIMD_AVX2
#define HEADNET_DIRECT_AVX2_CASE(function, ...) \
  case simd::Isa::avx2: return avx2::function(__VA_ARGS__);
#else
#define HEADNET_DIRECT_AVX2_CASE(function, ...)
#endif
#define HEADNET_DIRECT_DISPATCH(isa, function, ...)        \
  switch (isa) {                                          \
    HEADNET_DIRECT_AVX512_CASE(function, __VA_ARGS__)     \
    HEADNET_DIRECT_AVX2_CASE(function, __VA_ARGS__)       \
    default: return portable::function(__VA_ARGS__);      \
  }

/// Whether the direct kernels of `isa` can run this convolution (float, stride 1, at least one
/// pixel tile; see supported() in conv2d_direct_impl.hpp).
inline bool supported(simd::Isa isa, const ConvGeometry& g, int C_out) {
  HEADNET_DIRECT_DISPATCH(isa, supported, g, C_out)
}

/// How `isa`'s direct kernels would compute this layer.
inline DirectPlan plan(simd::Isa isa, const ConvGeometry& g, int C_out) { HEADNET_DIRECT_DISPATCH(isa, plan, g, C_out) }

/// Whether the input gradient of `isa`'s kernels scatters (rather than gathers) for this layer.
inline bool input_gradient_scatters(simd::Isa isa, const ConvGeometry& g, int C_out) {
  HEADNET_DIRECT_DISPATCH(isa, input_gradient_scatters, g, C_out)
}

/// The forward of N images with `isa`'s kernels: y = conv(x) + bias, then ReLU if relu. With
/// pool.y, each image's output is max-pooled 2x2 into pool while it is in cache, and y is unused.
inline void conv2d_forward(simd::Isa isa, const ConvGeometry& g, int N, int C_out, const float* x,
                           const float* weight, const float* bias, float* y, Conv2dWorkspace<float>& ws, bool relu,
                           PooledOutput<float> pool = {}) {
  HEADNET_DIRECT_DISPATCH(isa, conv2d_forward, g, N, C_out, x, weight, bias, y, ws, relu, pool)
}

/// The backward of N images with `isa`'s kernels (see conv2d_backward in conv2d_direct_impl.hpp).
/// With pooled, dy is null and each image's gradient is unpooled from it while in cache.
inline void conv2d_backward(simd::Isa isa, const ConvGeometry& g, int N, int C_out, const float* x,
                            const float* weight, const float* dy, float* dx, float* grad_weight, float* grad_bias,
                            Conv2dWorkspace<float>& ws, const float* relu_output = nullptr,
                            const PooledGradient<float>* pooled = nullptr) {
  HEADNET_DIRECT_DISPATCH(isa, conv2d_backward, g, N, C_out, x, weight, dy, dx, grad_weight, grad_bias, ws,
                          relu_output, pooled)
}

#undef HEADNET_DIRECT_DISPATCH
#undef HEADNET_DIRECT_AVX2_CASE
#undef HEADNET_DIRECT_AVX512_CASE

}  // namespace direct

/// Whether the direct kernels can run this convolution with `isa` (else im2col + GEMM is used).
template <typename T>
bool direct_conv_supported(const ConvGeometry& g, int C_out, simd::Isa isa = simd::active_isa()) {
  return std::is_same<T, float>::value && direct::supported(isa, g, C_out);
}

}  // namespace kernels
}  // namespace headnet
