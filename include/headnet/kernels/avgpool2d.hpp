// headnet/kernels/avgpool2d.hpp: average pooling, fixed windows and adaptive ones.
//
// Shapes: x, dx: (planes, H, W) with planes = N*C; y, dy: (planes, H_out, W_out).
// avgpool2d: PyTorch's windows (PoolGeometry: kernel, stride, padding, ceil mode). Each output is
//   the sum over its window clipped to the input, divided by the window's size clipped to the
//   padded input (count_include_pad) or to the input (not counting padding), as PyTorch divides.
// adaptive_avgpool2d: output (i, j) averages rows [floor(i H / H_out), ceil((i + 1) H / H_out)) and
//   the same for columns; output 1x1 is global average pooling.
// Backward spreads each output gradient evenly over its window (+=, so overlaps add), into a dx it
// zeroes first.
#pragma once

#include <algorithm>
#include <cstdint>

#include "headnet/kernels/maxpool2d.hpp"

namespace headnet {
namespace kernels {

namespace detail {
// The window of output o along one axis, clipped, and the count PyTorch divides by.
struct Window {
  int begin, end, divisor;
};
inline Window pool_window(int o, int in, const PoolGeometry& g, bool count_include_pad) {
  int begin = o * g.stride - g.padding;
  int end = std::min(begin + g.kernel_size, in + g.padding);
  const int padded = end - begin;
  begin = std::max(begin, 0);
  end = std::min(end, in);
  return {begin, end, count_include_pad ? padded : end - begin};
}
inline Window adaptive_window(int o, int in, int out) {
  const int begin = int((std::int64_t(o) * in) / out);
  const int end = int((std::int64_t(o + 1) * in + out - 1) / out);
  return {begin, end, end - begin};
}

// Applies `visit(window_h, window_w, out_index)` to every output of one plane.
template <typename Rows, typename Visit>
void for_each_window(int H_out, int W_out, Rows&& rows_and_columns, Visit&& visit) {
  for (int oh = 0; oh < H_out; ++oh) {
    const Window wh = rows_and_columns(oh, true);
    for (int ow = 0; ow < W_out; ++ow) visit(wh, rows_and_columns(ow, false), oh * W_out + ow);
  }
}

template <typename T, typename WindowOf>
void average_forward(std::int64_t planes, int H, int W, int H_out, int W_out, const T* x, T* y, WindowOf&& window_of) {
  const std::int64_t in_plane = std::int64_t(H) * W, out_plane = std::int64_t(H_out) * W_out;
#pragma omp parallel for schedule(static) if (planes * in_plane > (1 << 16))
  for (std::int64_t p = 0; p < planes; ++p) {
    const T* in = x + p * in_plane;
    T* out = y + p * out_plane;
    for_each_window(H_out, W_out, window_of, [&](const Window& wh, const Window& ww, int o) {
      T sum = T(0);
      for (int h = wh.begin; h < wh.end; ++h)
        for (int w = ww.begin; w < ww.end; ++w) sum += in[h * W + w];
      const int divisor = wh.divisor * ww.divisor;
      out[o] = divisor > 0 && wh.end > wh.begin && ww.end > ww.begin ? sum / T(divisor) : T(0);
    });
  }
}

template <typename T, typename WindowOf>
void average_backward(std::int64_t planes, int H, int W, int H_out, int W_out, const T* dy, T* dx, WindowOf&& window_of) {
  const std::int64_t in_plane = std::int64_t(H) * W, out_plane = std::int64_t(H_out) * W_out;
#pragma omp parallel for schedule(static) if (planes * in_plane > (1 << 16))
  for (std::int64_t p = 0; p < planes; ++p) {
    T* grad_in = dx + p * in_plane;
    const T* grad_out = dy + p * out_plane;
    std::fill(grad_in, grad_in + in_plane, T(0));
    for_each_window(H_out, W_out, window_of, [&](const Window& wh, const Window& ww, int o) {
      const int divisor = wh.divisor * ww.divisor;
      if (divisor <= 0) return;
      const T share = grad_out[o] / T(divisor);
      for (int h = wh.begin; h < wh.end; ++h)
        for (int w = ww.begin; w < ww.end; ++w) grad_in[h * W + w] += share;
    });
  }
}
}  // namespace detail

/// Average pooling of `planes` planes of g's size.
template <typename T>
void avgpool2d_forward(const PoolGeometry& g, bool count_include_pad, std::int64_t planes, const T* x, T* y) {
  detail::average_forward(planes, g.height, g.width, g.out_height(), g.out_width(), x, y, [&](int o, bool row) {
    return detail::pool_window(o, row ? g.height : g.width, g, count_include_pad);
  });
}
/// The gradient of avgpool2d_forward: each dy spread evenly over its window.
template <typename T>
void avgpool2d_backward(const PoolGeometry& g, bool count_include_pad, std::int64_t planes, const T* dy, T* dx) {
  detail::average_backward(planes, g.height, g.width, g.out_height(), g.out_width(), dy, dx, [&](int o, bool row) {
    return detail::pool_window(o, row ? g.height : g.width, g, count_include_pad);
  });
}

/// Adaptive average pooling of `planes` H x W planes to H_out x W_out, as PyTorch's windows.
template <typename T>
void adaptive_avgpool2d_forward(std::int64_t planes, int H, int W, int H_out, int W_out, const T* x, T* y) {
  detail::average_forward(planes, H, W, H_out, W_out, x, y, [&](int o, bool row) {
    return row ? detail::adaptive_window(o, H, H_out) : detail::adaptive_window(o, W, W_out);
  });
}
/// The gradient of adaptive_avgpool2d_forward.
template <typename T>
void adaptive_avgpool2d_backward(std::int64_t planes, int H, int W, int H_out, int W_out, const T* dy, T* dx) {
  detail::average_backward(planes, H, W, H_out, W_out, dy, dx, [&](int o, bool row) {
    return row ? detail::adaptive_window(o, H, H_out) : detail::adaptive_window(o, W, W_out);
  });
}

}  // namespace kernels
}  // namespace headnet
