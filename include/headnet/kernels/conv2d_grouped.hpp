// headnet/kernels/conv2d_grouped.hpp: grouped (and depthwise) convolution, the portable path.
//
// x: (N, C_in, H, W), weight: (C_out, C_in / G, K, K), y: (N, C_out, H_out, W_out). Output channel
// co belongs to group g = co / (C_out / G) and sees input channels g * C_in/G ... (g + 1) * C_in/G - 1:
//   y[n, co, i, j] = bias[co] + sum_{c, kh, kw} weight[co, c, kh, kw] x[n, g C_in/G + c, i S - P + kh, j S - P + kw]
// Backward: dx = the transposed sum (dx overwritten), grad_weight and grad_bias accumulate (+=).
// Plain loops (any T, stride, padding): with G = C_in (depthwise) each output is K*K products, so
// there is no large product to hand to a GEMM. Forward and dx split (image, channel) pairs across
// threads; the weight gradient splits output channels.
#pragma once

#include <algorithm>
#include <cstdint>

#include "headnet/kernels/im2col.hpp"

namespace headnet {
namespace kernels {

/// Grouped convolution forward, plain loops: each group's C_out / groups outputs see C / groups inputs.
template <typename T>
void conv2d_grouped_forward(const ConvGeometry& g, int N, int C_out, int groups, const T* x, const T* weight,
                            const T* bias, T* y) {
  const int C_in = g.channels, Cg = C_in / groups, Og = C_out / groups, K = g.kernel_size;
  const int H = g.height, W = g.width, Ho = g.out_height(), Wo = g.out_width(), S = g.stride, P = g.padding;
#pragma omp parallel for collapse(2) schedule(static) if (std::int64_t(N) * C_out * Ho * Wo * Cg * K * K > (1 << 16))
  for (int n = 0; n < N; ++n) {
    for (int co = 0; co < C_out; ++co) {
      const int first = (co / Og) * Cg;
      T* out = y + (std::int64_t(n) * C_out + co) * Ho * Wo;
      for (int i = 0; i < Ho * Wo; ++i) out[i] = bias ? bias[co] : T(0);
      for (int c = 0; c < Cg; ++c) {
        const T* in = x + (std::int64_t(n) * C_in + first + c) * H * W;
        const T* w = weight + (std::int64_t(co) * Cg + c) * K * K;
        for (int oh = 0; oh < Ho; ++oh) {
          for (int kh = 0; kh < K; ++kh) {
            const int ih = oh * S - P + kh;
            if (ih < 0 || ih >= H) continue;
            for (int ow = 0; ow < Wo; ++ow) {
              T sum = T(0);
              for (int kw = 0; kw < K; ++kw) {
                const int iw = ow * S - P + kw;
                if (iw >= 0 && iw < W) sum += w[kh * K + kw] * in[ih * W + iw];
              }
              out[oh * Wo + ow] += sum;
            }
          }
        }
      }
    }
  }
}

/// Any of dx, grad_weight, grad_bias may be null.
template <typename T>
void conv2d_grouped_backward(const ConvGeometry& g, int N, int C_out, int groups, const T* x, const T* weight,
                             const T* dy, T* dx, T* grad_weight, T* grad_bias) {
  const int C_in = g.channels, Cg = C_in / groups, Og = C_out / groups, K = g.kernel_size;
  const int H = g.height, W = g.width, Ho = g.out_height(), Wo = g.out_width(), S = g.stride, P = g.padding;
  const bool parallel = std::int64_t(N) * C_out * Ho * Wo * Cg * K * K > (1 << 16);
  if (dx) {
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
    for (int n = 0; n < N; ++n) {
      for (int ci = 0; ci < C_in; ++ci) {
        const int group = ci / Cg, c = ci % Cg;
        T* d = dx + (std::int64_t(n) * C_in + ci) * H * W;
        std::fill(d, d + H * W, T(0));
        for (int co = group * Og; co < (group + 1) * Og; ++co) {
          const T* gy = dy + (std::int64_t(n) * C_out + co) * Ho * Wo;
          const T* w = weight + (std::int64_t(co) * Cg + c) * K * K;
          for (int oh = 0; oh < Ho; ++oh)
            for (int kh = 0; kh < K; ++kh) {
              const int ih = oh * S - P + kh;
              if (ih < 0 || ih >= H) continue;
              for (int ow = 0; ow < Wo; ++ow)
                for (int kw = 0; kw < K; ++kw) {
                  const int iw = ow * S - P + kw;
                  if (iw >= 0 && iw < W) d[ih * W + iw] += w[kh * K + kw] * gy[oh * Wo + ow];
                }
            }
        }
      }
    }
  }
  if (grad_weight || grad_bias) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int co = 0; co < C_out; ++co) {
      const int first = (co / Og) * Cg;
      for (int n = 0; n < N; ++n) {
        const T* gy = dy + (std::int64_t(n) * C_out + co) * Ho * Wo;
        if (grad_bias)
          for (int i = 0; i < Ho * Wo; ++i) grad_bias[co] += gy[i];
        if (!grad_weight) continue;
        for (int c = 0; c < Cg; ++c) {
          const T* in = x + (std::int64_t(n) * C_in + first + c) * H * W;
          T* gw = grad_weight + (std::int64_t(co) * Cg + c) * K * K;
          for (int kh = 0; kh < K; ++kh)
            for (int kw = 0; kw < K; ++kw) {
              T sum = T(0);
              for (int oh = 0; oh < Ho; ++oh) {
                const int ih = oh * S - P + kh;
                if (ih < 0 || ih >= H) continue;
                for (int ow = 0; ow < Wo; ++ow) {
                  const int iw = ow * S - P + kw;
                  if (iw >= 0 && iw < W) sum += gy[oh * Wo + ow] * in[ih * W + iw];
                }
              }
              gw[kh * K + kw] += sum;
            }
        }
      }
    }
  }
}

}  // namespace kernels
}  // namespace headnet
