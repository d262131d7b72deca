// headnet/kernels/maxpool2d.hpp: max pooling over K x K windows, forward and backward.
//
// Shapes: x, dx: (planes, H, W) with planes = N*C; y, dy, argmax: (planes, H_out, W_out),
// H_out = (H - K) / S + 1 (no padding, floor mode, as PyTorch's defaults).
// argmax records, for every output, the offset inside its input plane of the element that won;
// backward routes each output gradient there (+=, so overlapping windows add up). Ties go to the
// first element in row-major order and a NaN wins, as in PyTorch.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace headnet {
namespace kernels {

struct PoolGeometry {
  int height = 0, width = 0, kernel_size = 0, stride = 0;
  int out_height() const { return (height - kernel_size) / stride + 1; }
  int out_width() const { return (width - kernel_size) / stride + 1; }
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

}  // namespace detail

template <typename T>
void maxpool2d_forward(const PoolGeometry& g, std::int64_t planes, const T* x, T* y, std::int32_t* argmax) {
  const int H_out = g.out_height(), W_out = g.out_width(), K = g.kernel_size, S = g.stride;
  const std::int64_t in_plane = std::int64_t(g.height) * g.width, out_plane = std::int64_t(H_out) * W_out;
#pragma omp parallel for schedule(static) if (planes * in_plane > (1 << 16))
  for (std::int64_t p = 0; p < planes; ++p) {
    const T* in = x + p * in_plane;
    T* out = y + p * out_plane;
    std::int32_t* arg = argmax + p * out_plane;
    if (K == 2 && S == 2) {
      detail::maxpool2x2_plane(g, in, out, arg);
      continue;
    }
    for (int oh = 0; oh < H_out; ++oh) {
      for (int ow = 0; ow < W_out; ++ow) {
        std::int32_t best_index = (oh * S) * g.width + ow * S;
        T best = in[best_index];
        for (int kh = 0; kh < K; ++kh) {
          for (int kw = 0; kw < K; ++kw) {
            const std::int32_t index = (oh * S + kh) * g.width + (ow * S + kw);
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
}

// dx is overwritten.
template <typename T>
void maxpool2d_backward(const PoolGeometry& g, std::int64_t planes, const T* dy, const std::int32_t* argmax,
                        T* dx) {
  const std::int64_t in_plane = std::int64_t(g.height) * g.width;
  const std::int64_t out_plane = std::int64_t(g.out_height()) * g.out_width();
#pragma omp parallel for schedule(static) if (planes * in_plane > (1 << 16))
  for (std::int64_t p = 0; p < planes; ++p) {
    T* grad_in = dx + p * in_plane;
    for (std::int64_t i = 0; i < in_plane; ++i) grad_in[i] = T(0);
    const T* grad_out = dy + p * out_plane;
    const std::int32_t* arg = argmax + p * out_plane;
    for (std::int64_t o = 0; o < out_plane; ++o) grad_in[arg[o]] += grad_out[o];
  }
}

}  // namespace kernels
}  // namespace headnet
