// headnet/kernels/conv2d.hpp: 2-D convolution as im2col + Eigen GEMM, forward and backward.
//
// Shapes (row-major):
//   x: (N, C, H, W)   weight: (C_out, C*K*K)   bias: (C_out)   y, dy: (N, C_out, H_out, W_out)
// For a chunk of B images unfolded side by side, columns: (C*K*K, B*P) with P = H_out*W_out, and
//   forward          Y  = weight x columns + bias                (C_out, B*P)
//   backward weight  dW += dY x columns^T,  db += rowsum(dY)      (C_out, C*K*K)
//   backward input   dcolumns = weight^T x dY;  dx = col2im(dcolumns)
// Several images share one GEMM because one image of a small layer makes a matrix too thin for the
// GEMM to run well (the tutorial's conv2 has P = 100).
//
// Threads: the batch is split into one contiguous range per thread; each thread unfolds and
// multiplies its own images with a single-threaded GEMM (kernels/gemm.hpp) and keeps its own
// partial dW, summed at the end. A single image runs on one thread.
//
// All scratch memory lives in a Conv2dWorkspace that grows to the largest shape seen and is then
// reused, so a training step in steady state allocates nothing.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "headnet/core/parallel.hpp"
#include "headnet/kernels/gemm.hpp"
#include "headnet/kernels/im2col.hpp"

namespace headnet {
namespace kernels {

template <typename T>
class Conv2dWorkspace {
 public:
  // Scratch buffers, one set per thread; `threads` must be called outside a parallel region.
  void prepare(int threads) {
    if (static_cast<int>(per_thread_.size()) < threads) per_thread_.resize(static_cast<std::size_t>(threads));
  }
  T* columns(int thread, std::int64_t n) { return grow(per_thread_[std::size_t(thread)].columns, n); }
  T* gathered(int thread, std::int64_t n) { return grow(per_thread_[std::size_t(thread)].gathered, n); }
  T* partial_weight(int thread, std::int64_t n) {
    return grow(per_thread_[std::size_t(thread)].partial_weight, n);
  }
  GemmWorkspace<T>& gemm(int thread) { return per_thread_[std::size_t(thread)].gemm; }

 private:
  struct Buffers {
    std::vector<T> columns, gathered, partial_weight;
    GemmWorkspace<T> gemm;
  };
  static T* grow(std::vector<T>& v, std::int64_t n) {
    if (static_cast<std::int64_t>(v.size()) < n) v.resize(static_cast<std::size_t>(n));
    return v.data();
  }
  std::vector<Buffers> per_thread_;
};

namespace detail {

// How many images one GEMM takes: enough to make the matrix wide, few enough that the unfolded
// columns (about 1 MiB, one core's L2) stay in cache between im2col and the GEMM.
template <typename T>
int images_per_gemm(const ConvGeometry& g, int images) {
  const std::int64_t bytes_per_image = g.patch_size() * g.out_pixels() * std::int64_t(sizeof(T));
  // Measured on the tutorial and wide networks: 256 KiB and 4 MiB were both slower at batch 32-128.
  const std::int64_t budget = std::int64_t(1) << 20;
  std::int64_t b = bytes_per_image > 0 ? budget / bytes_per_image : images;
  return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(b, images)));
}

// Runs body(thread, first_image, end_image) on one contiguous range of images per thread.
template <typename Body>
int for_each_image_range(int images, Body&& body) {
  const int threads = images >= 2 ? std::min(num_threads(), images) : 1;
  if (threads == 1) {
    body(0, 0, images);
    return 1;
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_index();
    const int begin = static_cast<int>(std::int64_t(images) * t / threads);
    const int end = static_cast<int>(std::int64_t(images) * (t + 1) / threads);
    body(t, begin, end);
  }
  return threads;
}

}  // namespace detail

// y = conv(x, weight) + bias. bias may be null.
template <typename T>
void conv2d_forward(const ConvGeometry& g, int N, int C_out, const T* x, const T* weight, const T* bias, T* y,
                    Conv2dWorkspace<T>& ws) {
  const std::int64_t P = g.out_pixels(), R = g.patch_size(), image = g.image_size(), out_image = C_out * P;
  const int B = detail::images_per_gemm<T>(g, N);
  ws.prepare(std::min(num_threads(), std::max(N, 1)));

  detail::for_each_image_range(N, [&](int t, int begin, int end) {
    for (int n0 = begin; n0 < end; n0 += B) {
      const int b = std::min(B, end - n0);
      const std::int64_t ld = b * P;
      T* columns = ws.columns(t, R * ld);
      for (int i = 0; i < b; ++i) im2col(g, x + (n0 + i) * image, columns + i * P, ld);
      if (b == 1) {  // Y = W columns straight into the output image, then the bias
        T* Y = y + n0 * out_image;
        gemm<false, false>(C_out, P, R, weight, R, columns, P, Y, P, false, ws.gemm(t));
        if (bias)
          for (int co = 0; co < C_out; ++co)
            for (std::int64_t p = 0; p < P; ++p) Y[co * P + p] += bias[co];
        continue;
      }
      T* Y = ws.gathered(t, C_out * ld);
      gemm<false, false>(C_out, ld, R, weight, R, columns, ld, Y, ld, false, ws.gemm(t));
      // (C_out, b*P) -> b images of (C_out, P), adding the bias on the way.
      for (int i = 0; i < b; ++i) {
        for (int co = 0; co < C_out; ++co) {
          const T* src = Y + co * ld + i * P;
          T* dst = y + (n0 + i) * out_image + co * P;
          const T add = bias ? bias[co] : T(0);
          for (std::int64_t p = 0; p < P; ++p) dst[p] = src[p] + add;
        }
      }
    }
  });
}

// Backward pass. Pass null for what is not wanted:
//   dx (overwritten): gradient with respect to x;
//   grad_weight, grad_bias (accumulated, +=): gradients with respect to the parameters.
template <typename T>
void conv2d_backward(const ConvGeometry& g, int N, int C_out, const T* x, const T* weight, const T* dy, T* dx,
                     T* grad_weight, T* grad_bias, Conv2dWorkspace<T>& ws) {
  const std::int64_t P = g.out_pixels(), R = g.patch_size(), image = g.image_size(), out_image = C_out * P;
  const int B = detail::images_per_gemm<T>(g, N);
  const std::int64_t weight_size = C_out * R;
  ws.prepare(std::min(num_threads(), std::max(N, 1)));

  const int threads = detail::for_each_image_range(N, [&](int t, int begin, int end) {
    // Thread 0 accumulates straight into the caller's buffers; the others into partial sums,
    // stored as C_out*R weight entries followed by C_out bias entries.
    T* gw = nullptr;
    T* gb = nullptr;
    if (grad_weight) {
      if (t == 0) {
        gw = grad_weight;
        gb = grad_bias;
      } else {
        gw = ws.partial_weight(t, weight_size + C_out);
        std::fill(gw, gw + weight_size + C_out, T(0));
        gb = grad_bias ? gw + weight_size : nullptr;
      }
    }
    for (int n0 = begin; n0 < end; n0 += B) {
      const int b = std::min(B, end - n0);
      const std::int64_t ld = b * P;
      const T* dY_data = dy + n0 * out_image;
      if (b > 1) {  // b images of (C_out, P) -> (C_out, b*P)
        T* gathered = ws.gathered(t, C_out * ld);
        for (int i = 0; i < b; ++i)
          for (int co = 0; co < C_out; ++co)
            std::copy(dy + (n0 + i) * out_image + co * P, dy + (n0 + i) * out_image + (co + 1) * P,
                      gathered + co * ld + i * P);
        dY_data = gathered;
      }
      T* columns = ws.columns(t, R * ld);
      if (gw) {  // dW += dY columns^T;  db += rowsum(dY)
        for (int i = 0; i < b; ++i) im2col(g, x + (n0 + i) * image, columns + i * P, ld);
        gemm<false, true>(C_out, R, ld, dY_data, ld, columns, ld, gw, R, true, ws.gemm(t));
        if (gb) {
          for (int co = 0; co < C_out; ++co) {
            T sum = T(0);
            for (std::int64_t p = 0; p < ld; ++p) sum += dY_data[co * ld + p];
            gb[co] += sum;
          }
        }
      }
      if (dx) {  // dcolumns = W^T dY, into the columns buffer (free again), then fold back
        gemm<true, false>(R, ld, C_out, weight, R, dY_data, ld, columns, ld, false, ws.gemm(t));
        for (int i = 0; i < b; ++i) {
          T* dx_image = dx + (n0 + i) * image;
          std::fill(dx_image, dx_image + image, T(0));
          col2im(g, columns + i * P, ld, dx_image);
        }
      }
    }
  });

  if (grad_weight) {
    for (int t = 1; t < threads; ++t) {
      const T* partial = ws.partial_weight(t, weight_size + C_out);
      for (std::int64_t i = 0; i < weight_size; ++i) grad_weight[i] += partial[i];
      if (grad_bias)
        for (int co = 0; co < C_out; ++co) grad_bias[co] += partial[weight_size + co];
    }
  }
}

// Direct seven-loop convolution, for tests only: slow, but obviously the definition.
template <typename T>
void conv2d_forward_reference(const ConvGeometry& g, int N, int C_out, const T* x, const T* weight, const T* bias,
                              T* y) {
  const int K = g.kernel_size, H_out = g.out_height(), W_out = g.out_width();
  for (int n = 0; n < N; ++n)
    for (int co = 0; co < C_out; ++co)
      for (int oh = 0; oh < H_out; ++oh)
        for (int ow = 0; ow < W_out; ++ow) {
          T sum = bias ? bias[co] : T(0);
          for (int c = 0; c < g.channels; ++c)
            for (int kh = 0; kh < K; ++kh)
              for (int kw = 0; kw < K; ++kw) {
                const int ih = oh * g.stride - g.padding + kh, iw = ow * g.stride - g.padding + kw;
                if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width) continue;
                sum += weight[((co * g.channels + c) * K + kh) * K + kw] *
                       x[((std::int64_t(n) * g.channels + c) * g.height + ih) * g.width + iw];
              }
          y[((std::int64_t(n) * C_out + co) * H_out + oh) * W_out + ow] = sum;
        }
}

}  // namespace kernels
}  // namespace headnet
