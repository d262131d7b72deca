// headnet/kernels/im2col.hpp: unfold image patches into matrix columns, and fold them back.
//
// A convolution *is* im2col followed by a matrix product. For an image x: (C, H, W), im2col writes
// the (C*K*K, H_out*W_out) matrix whose column p = oh*W_out + ow holds the K*K patch of every channel
// that output pixel p sees, row r = (c*K + kh)*K + kw; positions in the zero padding read 0. Then
//   y: (C_out, H_out*W_out) = weight: (C_out, C*K*K) x columns.
// col2im is its adjoint: it *adds* each column entry back to the input pixel it was read from, which
// is exactly what the gradient with respect to x needs.
//
// `ld` is the leading dimension (row length) of the column matrix, so that several images can be
// unfolded side by side (columns of image b start at b*H_out*W_out) and share one GEMM.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace headnet {
namespace kernels {

/// The shape arithmetic of a square-kernel convolution over one image.
struct ConvGeometry {
  int channels = 0;     ///< C (input channels)
  int height = 0;       ///< H
  int width = 0;        ///< W
  int kernel_size = 0;  ///< K
  int stride = 1;  ///< S
  int padding = 0;  ///< P (zeros on each side)

  /// Output rows: (H + 2P - K) / S + 1.
  int out_height() const { return (height + 2 * padding - kernel_size) / stride + 1; }
  /// Output columns: (W + 2P - K) / S + 1.
  int out_width() const { return (width + 2 * padding - kernel_size) / stride + 1; }
  /// Output pixels per channel.
  std::int64_t out_pixels() const { return std::int64_t(out_height()) * out_width(); }
  /// Rows of the im2col matrix: C K K.
  std::int64_t patch_size() const { return std::int64_t(channels) * kernel_size * kernel_size; }
  /// Elements of one input image: C H W.
  std::int64_t image_size() const { return std::int64_t(channels) * height * width; }
};

namespace detail {

// The output columns [lo, hi) whose input column ow*stride - padding + kw lies inside the image.
inline void valid_output_range(const ConvGeometry& g, int kw, int& lo, int& hi) {
  const int W_out = g.out_width();
  // iw = ow*S - P + kw >= 0  <=>  ow >= ceil((P - kw) / S)
  int first = g.padding - kw;
  lo = first <= 0 ? 0 : (first + g.stride - 1) / g.stride;
  // iw <= W - 1  <=>  ow <= floor((W - 1 + P - kw) / S)
  int last = g.width - 1 + g.padding - kw;
  hi = last < 0 ? 0 : std::min(W_out, last / g.stride + 1);
  lo = std::min(lo, hi);
}

// The rows that im2col and col2im move are short (5 to 32 values) and there are many of them (a
// 128-channel 5x5 layer moves 32,000 rows of 10 per image), so the fixed cost of a general loop
// (trip-count set-up, alias checks, a scalar tail of up to 7 values) dominates. These move 32-byte
// blocks instead.
template <typename T>
constexpr int block_values() {
  return sizeof(T) >= 32 ? 1 : int(32 / sizeof(T));
}

// out[0, n) = in[0, n). When n is not a multiple of the block, the last block is moved again
// overlapping the previous one, which is harmless for a copy and cheaper than a scalar tail.
template <typename T>
inline void copy_row(const T* __restrict in, T* __restrict out, int n) {
  constexpr int V = block_values<T>();
  if (n < V) {
    for (int i = 0; i < n; ++i) out[i] = in[i];
    return;
  }
  int i = 0;
  for (; i + V <= n; i += V) std::memcpy(out + i, in + i, sizeof(T) * V);
  if (i < n) std::memcpy(out + n - V, in + n - V, sizeof(T) * V);
}

// out[0, n) += in[0, n).
template <typename T>
inline void add_row(const T* __restrict in, T* __restrict out, int n) {
  constexpr int V = block_values<T>();
  int i = 0;
  for (; i + V <= n; i += V)
    for (int k = 0; k < V; ++k) out[i + k] += in[i + k];
  for (; i < n; ++i) out[i] += in[i];
}

}  // namespace detail

/// x: (C, H, W) -> columns: (C*K*K, ld) starting at `columns`; writes H_out*W_out entries per row.
template <typename T>
void im2col(const ConvGeometry& g, const T* x, T* columns, std::int64_t ld) {
  const int K = g.kernel_size, S = g.stride, P = g.padding;
  const int H_out = g.out_height(), W_out = g.out_width();
  for (int c = 0; c < g.channels; ++c) {
    const T* plane = x + std::int64_t(c) * g.height * g.width;
    for (int kh = 0; kh < K; ++kh) {
      for (int kw = 0; kw < K; ++kw) {
        T* row = columns + ((std::int64_t(c) * K + kh) * K + kw) * ld;
        int lo, hi;
        detail::valid_output_range(g, kw, lo, hi);
        for (int oh = 0; oh < H_out; ++oh) {
          T* out = row + std::int64_t(oh) * W_out;
          const int ih = oh * S - P + kh;
          if (ih < 0 || ih >= g.height) {
            std::fill(out, out + W_out, T(0));
            continue;
          }
          const T* in = plane + std::int64_t(ih) * g.width;
          const int shift = kw - P;  // iw = ow*S + shift
          for (int ow = 0; ow < lo; ++ow) out[ow] = T(0);
          if (S == 1) {
            detail::copy_row(in + lo + shift, out + lo, hi - lo);
          } else {
            for (int ow = lo; ow < hi; ++ow) out[ow] = in[ow * S + shift];
          }
          for (int ow = hi; ow < W_out; ++ow) out[ow] = T(0);
        }
      }
    }
  }
}

/// columns: (C*K*K, ld) -> dx: (C, H, W), accumulating (dx += fold(columns)).
template <typename T>
void col2im(const ConvGeometry& g, const T* columns, std::int64_t ld, T* dx) {
  const int K = g.kernel_size, S = g.stride, P = g.padding;
  const int H_out = g.out_height(), W_out = g.out_width();
  for (int c = 0; c < g.channels; ++c) {
    T* plane = dx + std::int64_t(c) * g.height * g.width;
    for (int kh = 0; kh < K; ++kh) {
      for (int kw = 0; kw < K; ++kw) {
        const T* row = columns + ((std::int64_t(c) * K + kh) * K + kw) * ld;
        int lo, hi;
        detail::valid_output_range(g, kw, lo, hi);
        for (int oh = 0; oh < H_out; ++oh) {
          const int ih = oh * S - P + kh;
          if (ih < 0 || ih >= g.height) continue;
          const T* in = row + std::int64_t(oh) * W_out;
          T* out = plane + std::int64_t(ih) * g.width;
          const int shift = kw - P;  // iw = ow*S + shift
          if (S == 1) {
            detail::add_row(in + lo, out + lo + shift, hi - lo);
          } else {
            for (int ow = lo; ow < hi; ++ow) out[ow * S + shift] += in[ow];
          }
        }
      }
    }
  }
}

}  // namespace kernels
}  // namespace headnet
