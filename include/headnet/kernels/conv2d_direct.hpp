// headnet/kernels/conv2d_direct.hpp: stride-1 convolution without im2col, in AVX2 registers.
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
// Register tiles (12 ymm accumulators each): the forward keeps 6 output channels x 16 pixels and
// per tap loads 2 input vectors and broadcasts 6 weights; the weight gradient keeps 2 output
// channels x 6 taps x 8 pixels and per 8 pixels loads 2 dy and 6 input vectors; the scatter keeps
// 6 input channels x 16 pixels at one tap and per output channel loads 2 dy vectors and
// broadcasts 6 weights.
//
// Only for float on a CPU with AVX2 and FMA (compile with -march=native or -mavx2 -mfma), stride 1;
// direct_conv_supported says when, and kernels/conv2d.hpp falls back to im2col + GEMM otherwise.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HEADNET_HAVE_DIRECT_CONV 1
#else
#define HEADNET_HAVE_DIRECT_CONV 0
#endif

#include "headnet/kernels/im2col.hpp"

namespace headnet {
namespace kernels {
namespace direct {

constexpr int forward_channels = 6;  ///< output channels per forward register tile
constexpr int forward_pixels = 16;   ///< pixels per forward register tile (two 8-float vectors)
constexpr int grad_channels = 2;     ///< output channels per weight-gradient tile
constexpr int grad_taps = 6;         ///< kernel taps per weight-gradient tile
constexpr int slack = 8;             ///< zeros after a padded image: the last 8-float load may overrun

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

/// n rounded up to a multiple of m.
inline std::int64_t round_up(std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; }

/// Row length of dy_ext, the output gradient on the extended grid: a whole number of 16-pixel tiles.
inline std::int64_t grad_length(const PaddedGeometry& in, int K) {
  return round_up(extended_length(in, K), 16);
}

/// offsets[t] = c*Hp*Wp + kh*Wp + kw for tap t = (c*K + kh)*K + kw.
inline void tap_offsets(const PaddedGeometry& in, int K, std::int64_t* offsets) {
  std::int64_t t = 0;
  for (int c = 0; c < in.channels; ++c)
    for (int kh = 0; kh < K; ++kh)
      for (int kw = 0; kw < K; ++kw) offsets[t++] = c * in.plane() + std::int64_t(kh) * in.width + kw;
}

/// Copies x (C, H, W) into xp (C, H + 2 pad, W + 2 pad) with zeros around, then `slack` zeros.
template <typename T>
void pad_image(const T* x, int C, int H, int W, int pad, T* xp) {
  const int Hp = H + 2 * pad, Wp = W + 2 * pad;
  if (pad == 0) {
    std::memcpy(xp, x, sizeof(T) * std::size_t(C) * std::size_t(H) * std::size_t(W));
  } else {
    std::fill(xp, xp + std::int64_t(C) * Hp * Wp, T(0));
    for (int c = 0; c < C; ++c)
      for (int h = 0; h < H; ++h)
        std::memcpy(xp + (std::int64_t(c) * Hp + h + pad) * Wp + pad, x + (std::int64_t(c) * H + h) * W,
                    sizeof(T) * std::size_t(W));
  }
  std::fill(xp + std::int64_t(C) * Hp * Wp, xp + std::int64_t(C) * Hp * Wp + slack, T(0));
}

/// Forward weights in tile order: for each block of 6 output channels, for each tap, the 6 weights
/// (zeros past the last channel). weight is (C_out, R) row-major.
inline void pack_forward_weights(const float* weight, int C_out, std::int64_t R, float* packed) {
  for (int co0 = 0; co0 < C_out; co0 += forward_channels)
    for (std::int64_t t = 0; t < R; ++t)
      for (int j = 0; j < forward_channels; ++j)
        *packed++ = co0 + j < C_out ? weight[(co0 + j) * R + t] : 0.0f;
}

/// The same for the input gradient's kernel: output channel c, tap (co, kh, kw) holds
/// weight[co][c][K-1-kh][K-1-kw].
inline void pack_flipped_weights(const float* weight, int C_out, int C, int K, float* packed) {
  const std::int64_t KK = std::int64_t(K) * K;
  for (int c0 = 0; c0 < C; c0 += forward_channels)
    for (int co = 0; co < C_out; ++co)
      for (int kh = 0; kh < K; ++kh)
        for (int kw = 0; kw < K; ++kw)
          for (int j = 0; j < forward_channels; ++j)
            *packed++ = c0 + j < C ? weight[(std::int64_t(co) * C + c0 + j) * KK + (K - 1 - kh) * K + (K - 1 - kw)]
                                   : 0.0f;
}

#if HEADNET_HAVE_DIRECT_CONV

// Keeps a loaded vector in a register: without it g++ folds the load into each FMA that uses the
// vector, loading it again per FMA, and the unaligned loads (two cache lines half the time) then
// saturate the load ports before the FMA units.
#define HEADNET_IN_REGISTER(v) __asm__("" : "+x"(v))

// The accumulators are named variables, not an array: g++ 12 keeps an array of __m256 on the
// stack and stores it back on every iteration, which halved the speed.
#define HEADNET_FOR_CHANNELS(M) M(0) M(1) M(2) M(3) M(4) M(5)

// y_ext[j][p0, p0 + 16) for the CB output channels of one block; `w` is that block's packed weights.
template <int CB>
inline void forward_tile(const float* xp, const std::int64_t* offsets, std::int64_t R, const float* w,
                         std::int64_t p0, float* y_ext, std::int64_t ld) {
#define HEADNET_DECLARE(j) __m256 acc##j##0 = _mm256_setzero_ps(), acc##j##1 = _mm256_setzero_ps();
  HEADNET_FOR_CHANNELS(HEADNET_DECLARE)
#undef HEADNET_DECLARE
  for (std::int64_t t = 0; t < R; ++t, w += forward_channels) {
    const float* src = xp + offsets[t] + p0;
    __m256 x0 = _mm256_loadu_ps(src), x1 = _mm256_loadu_ps(src + 8);
    HEADNET_IN_REGISTER(x0);
    HEADNET_IN_REGISTER(x1);
#define HEADNET_FMA(j)                                  \
  if constexpr (CB > j) {                               \
    const __m256 wj = _mm256_broadcast_ss(w + j);       \
    acc##j##0 = _mm256_fmadd_ps(wj, x0, acc##j##0);     \
    acc##j##1 = _mm256_fmadd_ps(wj, x1, acc##j##1);     \
  }
    HEADNET_FOR_CHANNELS(HEADNET_FMA)
#undef HEADNET_FMA
  }
#define HEADNET_STORE(j)                                \
  if constexpr (CB > j) {                               \
    _mm256_storeu_ps(y_ext + j * ld + p0, acc##j##0);   \
    _mm256_storeu_ps(y_ext + j * ld + p0 + 8, acc##j##1); \
  }
  HEADNET_FOR_CHANNELS(HEADNET_STORE)
#undef HEADNET_STORE
}
#undef HEADNET_FOR_CHANNELS

// y (C_out, H_out, W_out) = conv(xp, packed weights) + bias, for one padded image, then max(y, 0)
// if relu (NaN stays NaN, as in kernels/relu.hpp). y_ext: scratch of forward_channels *
// extended_length floats.
inline void forward_image(const PaddedGeometry& in, int K, int C_out, const float* xp, const float* packed,
                          const std::int64_t* offsets, const float* bias, float* y, float* y_ext, bool relu = false) {
  const int H_out = in.height - K + 1, W_out = in.width - K + 1;
  const std::int64_t R = in.channels * std::int64_t(K) * K, L = extended_length(in, K);
  for (int co0 = 0; co0 < C_out; co0 += forward_channels, packed += R * forward_channels) {
    const int cb = std::min(forward_channels, C_out - co0);
    // The last tile is moved back to end at L: it recomputes a few pixels instead of overrunning.
    for (std::int64_t p = 0; p < L; p += forward_pixels) {
      const std::int64_t p0 = std::min(p, L - forward_pixels);
      switch (cb) {
        case 1: forward_tile<1>(xp, offsets, R, packed, p0, y_ext, L); break;
        case 2: forward_tile<2>(xp, offsets, R, packed, p0, y_ext, L); break;
        case 3: forward_tile<3>(xp, offsets, R, packed, p0, y_ext, L); break;
        case 4: forward_tile<4>(xp, offsets, R, packed, p0, y_ext, L); break;
        case 5: forward_tile<5>(xp, offsets, R, packed, p0, y_ext, L); break;
        default: forward_tile<6>(xp, offsets, R, packed, p0, y_ext, L); break;
      }
    }
    for (int j = 0; j < cb; ++j) {
      const float b = bias ? bias[co0 + j] : 0.0f;
      float* out = y + std::int64_t(co0 + j) * H_out * W_out;
      for (int oh = 0; oh < H_out; ++oh) {
        const float* src = y_ext + j * L + std::int64_t(oh) * in.width;
        float* dst = out + std::int64_t(oh) * W_out;
        if (relu) {
          for (int ow = 0; ow < W_out; ++ow) {
            const float v = src[ow] + b;
            dst[ow] = v < 0.0f ? 0.0f : v;
          }
        } else {
          for (int ow = 0; ow < W_out; ++ow) dst[ow] = src[ow] + b;
        }
      }
    }
  }
}

inline float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// grad[a][b] += sum_i sum_p dy_ext_i[a][p] * xp_i[offsets[b] + p], for A <= 2 channels, B <= 6
// taps and the `images` images i whose padded inputs are xp_stride apart and whose dy_ext are
// dy_stride apart: summing several images in registers before the horizontal sums matters for
// small layers, where a tile is only a few vectors long. grad points at the block's first channel
// and tap, rows R apart; Ln is a multiple of 8. Named accumulators again (see forward_tile).
template <int A, int B>
inline void weight_tile(const float* xp, std::int64_t xp_stride, const std::int64_t* offsets, const float* dy_ext,
                        std::int64_t dy_stride, std::int64_t Ln, int images, float* grad, std::int64_t R) {
  static_assert(A >= 1 && A <= 2 && B >= 1 && B <= 6, "tile size");
#define HEADNET_FOR_TAPS(M, a) M(a, 0) M(a, 1) M(a, 2) M(a, 3) M(a, 4) M(a, 5)
#define HEADNET_FOR_TILE(M) HEADNET_FOR_TAPS(M, 0) HEADNET_FOR_TAPS(M, 1)
#define HEADNET_DECLARE(a, b) __m256 acc##a##b = _mm256_setzero_ps();
  HEADNET_FOR_TILE(HEADNET_DECLARE)
#undef HEADNET_DECLARE
  for (int i = 0; i < images; ++i, xp += xp_stride, dy_ext += dy_stride) {
#define HEADNET_SOURCE(b) const float* src##b = xp + offsets[B > b ? b : 0];
    HEADNET_SOURCE(0) HEADNET_SOURCE(1) HEADNET_SOURCE(2) HEADNET_SOURCE(3) HEADNET_SOURCE(4) HEADNET_SOURCE(5)
#undef HEADNET_SOURCE
    const float* dy0 = dy_ext;
    const float* dy1 = dy_ext + (A > 1 ? Ln : 0);
    for (std::int64_t p = 0; p < Ln; p += 8) {
      const __m256 d0 = _mm256_load_ps(dy0 + p);
      const __m256 d1 = A > 1 ? _mm256_load_ps(dy1 + p) : d0;
#define HEADNET_FMA(a, b) \
  if constexpr (A > a) acc##a##b = _mm256_fmadd_ps(d##a, x##b, acc##a##b);
#define HEADNET_TAP(b)                                \
  if constexpr (B > b) {                              \
    __m256 x##b = _mm256_loadu_ps(src##b + p);        \
    HEADNET_IN_REGISTER(x##b);                        \
    HEADNET_FMA(0, b) HEADNET_FMA(1, b)               \
  }
      HEADNET_TAP(0) HEADNET_TAP(1) HEADNET_TAP(2) HEADNET_TAP(3) HEADNET_TAP(4) HEADNET_TAP(5)
#undef HEADNET_TAP
#undef HEADNET_FMA
    }
  }
#define HEADNET_REDUCE(a, b) \
  if constexpr (A > a && B > b) grad[a * R + b] += horizontal_sum(acc##a##b);
  HEADNET_FOR_TILE(HEADNET_REDUCE)
#undef HEADNET_REDUCE
#undef HEADNET_FOR_TILE
#undef HEADNET_FOR_TAPS
}

template <int A>
inline void weight_tiles_for_channels(const float* xp, std::int64_t xp_stride, const std::int64_t* offsets,
                                      std::int64_t R, const float* dy_ext, std::int64_t dy_stride, std::int64_t Ln,
                                      int images, float* grad) {
  std::int64_t t = 0;
  for (; t + grad_taps <= R; t += grad_taps)
    weight_tile<A, grad_taps>(xp, xp_stride, offsets + t, dy_ext, dy_stride, Ln, images, grad + t, R);
  switch (R - t) {
    case 1: weight_tile<A, 1>(xp, xp_stride, offsets + t, dy_ext, dy_stride, Ln, images, grad + t, R); break;
    case 2: weight_tile<A, 2>(xp, xp_stride, offsets + t, dy_ext, dy_stride, Ln, images, grad + t, R); break;
    case 3: weight_tile<A, 3>(xp, xp_stride, offsets + t, dy_ext, dy_stride, Ln, images, grad + t, R); break;
    case 4: weight_tile<A, 4>(xp, xp_stride, offsets + t, dy_ext, dy_stride, Ln, images, grad + t, R); break;
    case 5: weight_tile<A, 5>(xp, xp_stride, offsets + t, dy_ext, dy_stride, Ln, images, grad + t, R); break;
    default: break;
  }
}

// dy (C_out, H_out, W_out) -> dy_ext (C_out, Ln): each output row at its extended position, zeros
// in the K-1 columns past each row and up to Ln. With relu_output (a ReLU fused into the layer),
// dy is the gradient of relu(y) and becomes dy * [relu_output > 0] on the way. Adds rowsum of the
// result to grad_bias when given.
inline void extend_grad_output(const PaddedGeometry& in, int K, int C_out, const float* dy, float* dy_ext,
                               float* grad_bias, const float* relu_output = nullptr) {
  const int H_out = in.height - K + 1, W_out = in.width - K + 1;
  const std::int64_t Ln = grad_length(in, K);
  for (int co = 0; co < C_out; ++co) {
    float* row = dy_ext + co * Ln;
    std::fill(row, row + Ln, 0.0f);
    const std::int64_t first = std::int64_t(co) * H_out * W_out;
    for (int oh = 0; oh < H_out; ++oh) {
      const float* src = dy + first + std::int64_t(oh) * W_out;
      float* dst = row + std::int64_t(oh) * in.width;
      if (relu_output) {
        const float* mask = relu_output + first + std::int64_t(oh) * W_out;
        for (int ow = 0; ow < W_out; ++ow) dst[ow] = mask[ow] > 0.0f ? src[ow] : 0.0f;
      } else {
        std::memcpy(dst, src, sizeof(float) * W_out);
      }
    }
    if (grad_bias) {
      // A reduction the compiler may vectorise: one running sum is a chain of dependent adds,
      // which cost as much as the whole weight gradient of a 3-channel layer.
      float sum = 0;
#pragma omp simd reduction(+ : sum)
      for (std::int64_t i = 0; i < Ln; ++i) sum += row[i];
      grad_bias[co] += sum;
    }
  }
}

// grad_weight (C_out, R) += sum over `images` images of dy_ext (x) xp (see weight_tile for the
// strides). xp must have `slack` zeros after each image.
inline void weight_gradient(const PaddedGeometry& in, int K, int C_out, const float* xp, std::int64_t xp_stride,
                            const float* dy_ext, std::int64_t dy_stride, int images, const std::int64_t* offsets,
                            float* grad_weight) {
  const std::int64_t R = in.channels * std::int64_t(K) * K, Ln = grad_length(in, K);
  int co = 0;
  for (; co + grad_channels <= C_out; co += grad_channels)
    weight_tiles_for_channels<grad_channels>(xp, xp_stride, offsets, R, dy_ext + co * Ln, dy_stride, Ln, images,
                                             grad_weight + co * R);
  if (C_out - co == 1)
    weight_tiles_for_channels<1>(xp, xp_stride, offsets, R, dy_ext + co * Ln, dy_stride, Ln, images,
                                 grad_weight + co * R);
}


// The forward with output channels along the vector, for the same layers as the weight gradient by
// channel: each tile computes 6 real output pixels x 16 channels, so the extended rows' wasted
// columns (4 of every 14 on the networks' conv2) are never computed. Per tap: 2 aligned weight
// vectors, 6 broadcasts of the input (one per pixel, each at its own base) and 12 FMAs.
//
// Packed weights: for each block of 16 output channels (8 for a last block of 8), for each tap t,
// the block's weights weight[co][t].
inline void pack_forward_weights_by_channel(const float* weight, int C_out, std::int64_t R, float* packed) {
  for (int co0 = 0; co0 < C_out; co0 += 16) {
    const int width = std::min(16, C_out - co0);
    for (std::int64_t t = 0; t < R; ++t)
      for (int j = 0; j < width; ++j) *packed++ = weight[(co0 + j) * R + t];
  }
}

// acc[j][c] (+)= sum over `taps` taps of w[t][c] * xp[base[j] + offsets[t]], for c < 8 V, j < 6:
// one tile of pixels p0..p0+5 (base[j]: pixel p0 + j's position in the padded input) over one
// chunk of taps; `first` starts from zero, else from acc.
template <int V>
inline void forward_tile_by_channel(const float* xp, const std::int64_t* base, const std::int64_t* offsets,
                                    std::int64_t taps, const float* w, bool first, float* acc) {
#define HEADNET_FOR_PIXELS(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define HEADNET_DECLARE(j)                                                                       \
  __m256 acc##j##0 = first ? _mm256_setzero_ps() : _mm256_load_ps(acc + 16 * j);               \
  __m256 acc##j##1 = first || V == 1 ? _mm256_setzero_ps() : _mm256_load_ps(acc + 16 * j + 8);  \
  const float* src##j = xp + base[j];
  HEADNET_FOR_PIXELS(HEADNET_DECLARE)
#undef HEADNET_DECLARE
  for (std::int64_t t = 0; t < taps; ++t, w += 8 * V) {
    const std::int64_t off = offsets[t];
    __m256 w0 = _mm256_load_ps(w), w1 = V > 1 ? _mm256_load_ps(w + 8) : w0;
    HEADNET_IN_REGISTER(w0);
    HEADNET_IN_REGISTER(w1);
#define HEADNET_FMA(j)                                                   \
  {                                                                      \
    const __m256 xj = _mm256_broadcast_ss(src##j + off);                 \
    acc##j##0 = _mm256_fmadd_ps(xj, w0, acc##j##0);                      \
    if constexpr (V > 1) acc##j##1 = _mm256_fmadd_ps(xj, w1, acc##j##1); \
  }
    HEADNET_FOR_PIXELS(HEADNET_FMA)
#undef HEADNET_FMA
  }
#define HEADNET_STORE(j)                         \
  _mm256_store_ps(acc + 16 * j, acc##j##0);      \
  if constexpr (V > 1) _mm256_store_ps(acc + 16 * j + 8, acc##j##1);
  HEADNET_FOR_PIXELS(HEADNET_STORE)
#undef HEADNET_STORE
#undef HEADNET_FOR_PIXELS
}

// Taps per chunk of the by-channel forward: 256 taps of 16 weights are 16 KiB, so a chunk's
// weights and the input planes it reads stay in L1 while every pixel tile of the image passes.
constexpr std::int64_t forward_chunk_taps = 256;

inline std::int64_t forward_tiles_by_channel(std::int64_t P) { return (P + 5) / 6; }

// y (C_out, H_out, W_out) of one padded image, by channel. base: scratch of H_out*W_out entries;
// acc: 32-byte aligned scratch of 96 * forward_tiles_by_channel(P) floats.
inline void forward_image_by_channel(const PaddedGeometry& in, int K, int C_out, const float* xp,
                                     const float* packed, const std::int64_t* offsets, const float* bias, float* y,
                                     std::int64_t* base, float* acc, bool relu) {
  const int H_out = in.height - K + 1, W_out = in.width - K + 1;
  const std::int64_t R = in.channels * std::int64_t(K) * K, P = std::int64_t(H_out) * W_out;
  const std::int64_t tiles = forward_tiles_by_channel(P);
  for (int oh = 0; oh < H_out; ++oh)
    for (int ow = 0; ow < W_out; ++ow) base[oh * W_out + ow] = std::int64_t(oh) * in.width + ow;
  // The last tile is moved back to end at P: it recomputes a few pixels instead of overrunning.
  auto tile_start = [&](std::int64_t k) { return std::min(6 * k, P - 6); };
  for (int co0 = 0; co0 < C_out; co0 += 16) {
    const int width = std::min(16, C_out - co0);
    for (std::int64_t t0 = 0; t0 < R; t0 += forward_chunk_taps) {
      const std::int64_t taps = std::min(forward_chunk_taps, R - t0);
      for (std::int64_t k = 0; k < tiles; ++k) {
        if (width == 16)
          forward_tile_by_channel<2>(xp, base + tile_start(k), offsets + t0, taps, packed + t0 * 16, t0 == 0,
                                     acc + 96 * k);
        else
          forward_tile_by_channel<1>(xp, base + tile_start(k), offsets + t0, taps, packed + t0 * 8, t0 == 0,
                                     acc + 96 * k);
      }
    }
    // Transpose on the way out (tiles hold pixels x channels), adding the bias.
    for (std::int64_t k = 0; k < tiles; ++k) {
      const std::int64_t p0 = tile_start(k);
      for (int c = 0; c < width; ++c) {
        const float b = bias ? bias[co0 + c] : 0.0f;
        float* out = y + (co0 + c) * P + p0;
        for (int j = 0; j < 6; ++j) {
          const float v = acc[96 * k + 16 * j + c] + b;
          out[j] = relu && v < 0.0f ? 0.0f : v;
        }
      }
    }
    packed += R * width;
  }
}

// Whether the forward runs by channel: channels in 8s, at least one 6-pixel tile, and extended
// rows that waste a fifth or more.
inline bool forward_by_channel_applies(const PaddedGeometry& in, int K, int C_out) {
  const std::int64_t W_out = in.width - K + 1, H_out = in.height - K + 1;
  return C_out % 8 == 0 && H_out * W_out >= 6 && W_out * 5 <= std::int64_t(in.width) * 4;
}

// The weight gradient with output channels along the vector instead of pixels, for layers whose
// output channels come in 8s. It computes real pixels only (the extended rows of both networks'
// conv2 are 14 wide for 10 real pixels) and needs no horizontal sums:
//   gradT[t][co] += sum_i sum_(oh, ow) xp_i[offset(t) + oh*Wp + ow] * dyT_i[oh*W_out + ow][co]
// over real pixels only, with dyT the output gradient transposed to pixel-major (made by
// transpose_grad_output, in blocks of 16 channels). A tile is 6 taps x 16 channels (2 vectors): per
// pixel, 2 aligned loads of dyT, 6 broadcasts of the input and 12 FMAs.
template <int TB, int V>
inline void weight_tile_by_channel(const float* xp, std::int64_t xp_stride, const std::int64_t* offsets,
                                   const float* dyT, std::int64_t dyT_stride, int images, int H_out, int W_out,
                                   int Wp, int C_out, float* gradT) {
  static_assert(TB >= 1 && TB <= 6 && (V == 1 || V == 2), "tile size");
#define HEADNET_FOR_TAPS(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define HEADNET_DECLARE(j) __m256 acc##j##0 = _mm256_setzero_ps(), acc##j##1 = _mm256_setzero_ps();
  HEADNET_FOR_TAPS(HEADNET_DECLARE)
#undef HEADNET_DECLARE
  for (int i = 0; i < images; ++i, xp += xp_stride, dyT += dyT_stride) {
#define HEADNET_SOURCE(j) const float* src##j = xp + offsets[TB > j ? j : 0];
    HEADNET_FOR_TAPS(HEADNET_SOURCE)
#undef HEADNET_SOURCE
    const float* d = dyT;
    for (int oh = 0; oh < H_out; ++oh) {
      const std::int64_t row = std::int64_t(oh) * Wp;
      for (int ow = 0; ow < W_out; ++ow, d += 8 * V) {
        const std::int64_t p = row + ow;
        __m256 d0 = _mm256_load_ps(d), d1 = V > 1 ? _mm256_load_ps(d + 8) : d0;
        HEADNET_IN_REGISTER(d0);
        HEADNET_IN_REGISTER(d1);
#define HEADNET_FMA(j)                                              \
  if constexpr (TB > j) {                                           \
    const __m256 xj = _mm256_broadcast_ss(src##j + p);              \
    acc##j##0 = _mm256_fmadd_ps(xj, d0, acc##j##0);                 \
    if constexpr (V > 1) acc##j##1 = _mm256_fmadd_ps(xj, d1, acc##j##1); \
  }
        HEADNET_FOR_TAPS(HEADNET_FMA)
#undef HEADNET_FMA
      }
    }
  }
#define HEADNET_STORE(j)                                                                          \
  if constexpr (TB > j) {                                                                         \
    float* g = gradT + j * C_out;                                                                 \
    _mm256_storeu_ps(g, _mm256_add_ps(_mm256_loadu_ps(g), acc##j##0));                            \
    if constexpr (V > 1) _mm256_storeu_ps(g + 8, _mm256_add_ps(_mm256_loadu_ps(g + 8), acc##j##1)); \
  }
  HEADNET_FOR_TAPS(HEADNET_STORE)
#undef HEADNET_STORE
#undef HEADNET_FOR_TAPS
}

template <int V>
inline void weight_tiles_by_channel(const float* xp, std::int64_t xp_stride, const std::int64_t* offsets,
                                    std::int64_t R, const float* dyT, std::int64_t dyT_stride, int images, int H_out,
                                    int W_out, int Wp, int C_out, float* gradT) {
  std::int64_t t = 0;
  for (; t + grad_taps <= R; t += grad_taps)
    weight_tile_by_channel<grad_taps, V>(xp, xp_stride, offsets + t, dyT, dyT_stride, images, H_out, W_out, Wp, C_out,
                                         gradT + t * C_out);
#define HEADNET_REST(n)                                                                                         \
  case n:                                                                                                       \
    weight_tile_by_channel<n, V>(xp, xp_stride, offsets + t, dyT, dyT_stride, images, H_out, W_out, Wp, C_out, \
                                 gradT + t * C_out);                                                            \
    break;
  switch (R - t) {
    HEADNET_REST(1) HEADNET_REST(2) HEADNET_REST(3) HEADNET_REST(4) HEADNET_REST(5)
    default: break;
  }
#undef HEADNET_REST
}

// gradT (R, C_out) += the weight gradient of `images` images (see weight_tile_by_channel). C_out
// must be a multiple of 8; dyT rows 32-byte aligned.
inline void weight_gradient_by_channel(const PaddedGeometry& in, int K, int C_out, const float* xp,
                                       std::int64_t xp_stride, const float* dyT, std::int64_t dyT_stride, int images,
                                       const std::int64_t* offsets, float* gradT) {
  const std::int64_t R = in.channels * std::int64_t(K) * K;
  const int H_out = in.height - K + 1, W_out = in.width - K + 1;
  const std::int64_t P = std::int64_t(H_out) * W_out;
  int co = 0;
  for (; co + 16 <= C_out; co += 16)
    weight_tiles_by_channel<2>(xp, xp_stride, offsets, R, dyT + co * P, dyT_stride, images, H_out, W_out, in.width,
                               C_out, gradT + co);
  if (co < C_out)
    weight_tiles_by_channel<1>(xp, xp_stride, offsets, R, dyT + co * P, dyT_stride, images, H_out, W_out, in.width,
                               C_out, gradT + co);
}

// dy (C_out, P) -> dyT (P, C_out) in blocks of 16 channels, masked by relu_output > 0 when given; adds the sums over P to
// grad_bias when given. In 8 x 8 blocks through registers: a scalar transpose of the wide conv1's
// 128 x 784 dy per image cost more than the by-channel tile saved.
inline void transpose_grad_output(int C_out, std::int64_t P, const float* dy, const float* relu_output, float* dyT,
                                  float* grad_bias) {
  // Blocks of 16 channels (8 for a last block of 8): block b holds (P, 16) from dyT + 16 b P, so
  // that a tile reads its channels as one contiguous stream.
  auto width = [&](int co) { return std::min(16, C_out - co / 16 * 16); };
  auto at = [&](std::int64_t p, int co) { return dyT + std::int64_t(co / 16 * 16) * P + p * width(co) + co % 16; };
  int co0 = 0;
  for (; co0 + 8 <= C_out; co0 += 8) {
    __m256 sums[8];
    for (auto& v : sums) v = _mm256_setzero_ps();
    std::int64_t p0 = 0;
    for (; p0 + 8 <= P; p0 += 8) {
      __m256 r[8];
      for (int c = 0; c < 8; ++c) {
        r[c] = _mm256_loadu_ps(dy + (co0 + c) * P + p0);
        if (relu_output) {
          const __m256 keep = _mm256_cmp_ps(_mm256_loadu_ps(relu_output + (co0 + c) * P + p0), _mm256_setzero_ps(),
                                            _CMP_GT_OQ);
          r[c] = _mm256_and_ps(r[c], keep);
        }
        sums[c] = _mm256_add_ps(sums[c], r[c]);
      }
      // 8 x 8 transpose: rows are channels, columns pixels.
      const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
      const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
      const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
      const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* out = at(p0, co0);
      const std::int64_t ld = width(co0);
      _mm256_store_ps(out + 0 * ld, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_store_ps(out + 1 * ld, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_store_ps(out + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_store_ps(out + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_store_ps(out + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_store_ps(out + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_store_ps(out + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_store_ps(out + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
    for (int c = 0; c < 8; ++c) {
      float sum = horizontal_sum(sums[c]);
      const float* src = dy + (co0 + c) * P;
      const float* mask = relu_output ? relu_output + (co0 + c) * P : nullptr;
      for (std::int64_t p = p0; p < P; ++p) {
        const float v = mask && !(mask[p] > 0.0f) ? 0.0f : src[p];
        *at(p, co0 + c) = v;
        sum += v;
      }
      if (grad_bias) grad_bias[co0 + c] += sum;
    }
  }
  for (int co = co0; co < C_out; ++co) {  // channels past the last 8 (not used by the by-channel tiles)
    const float* src = dy + co * P;
    const float* mask = relu_output ? relu_output + co * P : nullptr;
    float sum = 0;
    for (std::int64_t p = 0; p < P; ++p) {
      const float v = mask && !(mask[p] > 0.0f) ? 0.0f : src[p];
      *at(p, co) = v;
      sum += v;
    }
    if (grad_bias) grad_bias[co] += sum;
  }
}

// Whether the weight gradient runs by channel (above) rather than by pixel (weight_gradient): when
// the output channels fill whole vectors. Measured at batch 32, 2 threads (docs/benchmarks.md): by
// channel 111-135 GFLOP/s on the wide conv1 and conv2, the tutorial's conv2 and the 3x3 layers,
// where by pixel gave 69-114 and im2col + GEMM 65-70 on the 128 and 256 ones.
inline bool weight_gradient_by_channel_applies(const PaddedGeometry& /*in*/, int /*K*/, int C_out) {
  return C_out % 8 == 0;
}

// The input gradient by scattering, for layers whose input gradient as a "full" convolution would
// mostly multiply padding: wide conv2 (14x14 -> 10x10, 5x5) gathers over dy padded to 18x18, twice
// the products of the definition. Here each unfolded input row r = (c, kh, kw) receives
//   dxp[offset(r) + p] += sum_co weight[co][r] * dy_ext[co][p]
// i.e. GEMM (weight^T x dy_ext) and col2im fused, the GEMM's tile folded into dxp from registers.
// A tile is 6 input channels at one tap x 16 pixels: its 6 destinations lie in different channel
// planes, so its read-modify-writes never overlap each other (a load that partly overlaps a
// store still in flight would stall).
//
// Packed weights: for each block of 6 input channels, for each tap, for each output channel, the
// 6 weights weight[co][c0 + j][tap] (zeros past the last channel).
inline void pack_scatter_weights(const float* weight, int C_out, int C, int K, float* packed) {
  const std::int64_t KK = std::int64_t(K) * K;
  for (int c0 = 0; c0 < C; c0 += forward_channels)
    for (std::int64_t tap = 0; tap < KK; ++tap)
      for (int co = 0; co < C_out; ++co)
        for (int j = 0; j < forward_channels; ++j)
          *packed++ = c0 + j < C ? weight[(std::int64_t(co) * C + c0 + j) * KK + tap] : 0.0f;
}

#define HEADNET_FOR_CHANNELS(M) M(0) M(1) M(2) M(3) M(4) M(5)

// dxp[j * plane + p0 + q] += sum_co w[co][j] * dy_ext[co][p0 + q] for j < CB, q < 16; dxp points at
// the tile's first channel, shifted by its tap.
template <int CB>
inline void scatter_tile(const float* dy_ext, std::int64_t ld, int C_out, const float* w, std::int64_t p0,
                         float* dxp, std::int64_t plane) {
#define HEADNET_DECLARE(j) __m256 acc##j##0 = _mm256_setzero_ps(), acc##j##1 = _mm256_setzero_ps();
  HEADNET_FOR_CHANNELS(HEADNET_DECLARE)
#undef HEADNET_DECLARE
  const float* d = dy_ext + p0;
  for (int co = 0; co < C_out; ++co, w += forward_channels, d += ld) {
    __m256 d0 = _mm256_load_ps(d), d1 = _mm256_load_ps(d + 8);
    HEADNET_IN_REGISTER(d0);
    HEADNET_IN_REGISTER(d1);
#define HEADNET_FMA(j)                                  \
  if constexpr (CB > j) {                               \
    const __m256 wj = _mm256_broadcast_ss(w + j);       \
    acc##j##0 = _mm256_fmadd_ps(wj, d0, acc##j##0);     \
    acc##j##1 = _mm256_fmadd_ps(wj, d1, acc##j##1);     \
  }
    HEADNET_FOR_CHANNELS(HEADNET_FMA)
#undef HEADNET_FMA
  }
#define HEADNET_ADD(j)                                                          \
  if constexpr (CB > j) {                                                       \
    float* dst = dxp + j * plane + p0;                                          \
    _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), acc##j##0));      \
    _mm256_storeu_ps(dst + 8, _mm256_add_ps(_mm256_loadu_ps(dst + 8), acc##j##1)); \
  }
  HEADNET_FOR_CHANNELS(HEADNET_ADD)
#undef HEADNET_ADD
}
#undef HEADNET_FOR_CHANNELS

// dx (C, H, W) of one image from its dy_ext (C_out, grad_length) by scattering. dxp: scratch of
// in.size() + scatter_slack floats. `packed` from pack_scatter_weights.
constexpr int scatter_slack = 16;  // the last tile of a row of dy_ext may reach 15 floats past the image

inline void input_gradient_scatter(const PaddedGeometry& in, int K, int C_out, int pad, const float* dy_ext,
                                   const float* packed, float* dxp, float* dx) {
  const std::int64_t Ln = grad_length(in, K), plane = in.plane();
  std::fill(dxp, dxp + in.size() + scatter_slack, 0.0f);
  for (int c0 = 0; c0 < in.channels; c0 += forward_channels) {
    const int cb = std::min(forward_channels, in.channels - c0);
    for (int kh = 0; kh < K; ++kh)
      for (int kw = 0; kw < K; ++kw, packed += std::int64_t(C_out) * forward_channels) {
        float* base = dxp + c0 * plane + std::int64_t(kh) * in.width + kw;
        for (std::int64_t p0 = 0; p0 < Ln; p0 += forward_pixels) {
          switch (cb) {
            case 1: scatter_tile<1>(dy_ext, Ln, C_out, packed, p0, base, plane); break;
            case 2: scatter_tile<2>(dy_ext, Ln, C_out, packed, p0, base, plane); break;
            case 3: scatter_tile<3>(dy_ext, Ln, C_out, packed, p0, base, plane); break;
            case 4: scatter_tile<4>(dy_ext, Ln, C_out, packed, p0, base, plane); break;
            case 5: scatter_tile<5>(dy_ext, Ln, C_out, packed, p0, base, plane); break;
            default: scatter_tile<6>(dy_ext, Ln, C_out, packed, p0, base, plane); break;
          }
        }
      }
  }
  // Crop the padding away.
  const int H = in.height - 2 * pad, W = in.width - 2 * pad;
  for (int c = 0; c < in.channels; ++c)
    for (int h = 0; h < H; ++h)
      std::memcpy(dx + (std::int64_t(c) * H + h) * W, dxp + c * plane + std::int64_t(h + pad) * in.width + pad,
                  sizeof(float) * std::size_t(W));
}

// Whether the input gradient scatters (above) rather than gathers (the "full" convolution): the
// scatter visits C*K*K rows x grad_length pixels x C_out, the gather C x the extended length of dy
// padded by K-1-pad x C_out*K*K. Equal for 3x3 padding-1 layers, where the gather's plain loads
// win; the scatter does about half the work on small images with no padding.
inline bool prefer_scatter(const PaddedGeometry& in, const PaddedGeometry& grad, int K) {
  const std::int64_t scatter = grad_length(in, K), gather = round_up(extended_length(grad, K), forward_pixels);
  return scatter * 5 < gather * 4;
}

// prefer_scatter for a layer: the input as padded for the forward, dy padded by K-1-padding.
inline bool input_gradient_scatters(const ConvGeometry& g, int C_out) {
  const int K = g.kernel_size, q = K - 1 - g.padding;
  return prefer_scatter({g.channels, g.height + 2 * g.padding, g.width + 2 * g.padding},
                        {C_out, g.out_height() + 2 * q, g.out_width() + 2 * q}, K);
}

#endif  // HEADNET_HAVE_DIRECT_CONV

}  // namespace direct

/// Whether the direct kernels can run this convolution (else im2col + GEMM is used).
template <typename T>
bool direct_conv_supported(const ConvGeometry& g, int C_out) {
  if (!HEADNET_HAVE_DIRECT_CONV || !std::is_same<T, float>::value) return false;
  if (g.stride != 1 || g.padding > g.kernel_size - 1 || C_out < 1) return false;
  // Both the forward (input width W + 2 padding) and the input gradient (output H x W from dy
  // padded to width W + K - 1) need at least one 16-pixel tile.
  const direct::PaddedGeometry in{g.channels, g.height + 2 * g.padding, g.width + 2 * g.padding};
  const direct::PaddedGeometry grad{C_out, g.height + g.kernel_size - 1, g.width + g.kernel_size - 1};
  return direct::extended_length(in, g.kernel_size) >= direct::forward_pixels &&
         direct::extended_length(grad, g.kernel_size) >= direct::forward_pixels;
}

}  // namespace kernels
}  // namespace headnet
