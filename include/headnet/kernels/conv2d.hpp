// headnet/kernels/conv2d.hpp: 2-D convolution, forward and backward: the im2col + Eigen GEMM path,
// and the dispatch between it and the direct stride-1 kernels of conv2d_direct.hpp (conv2d_forward
// and conv2d_backward pick per pass; see detail::prefer_direct).
//
// The im2col + GEMM path:
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
#include <stdexcept>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "headnet/core/parallel.hpp"
#include "headnet/kernels/conv2d_direct.hpp"
#include "headnet/kernels/gemm.hpp"
#include "headnet/kernels/im2col.hpp"
#include "headnet/kernels/relu.hpp"

namespace headnet {
namespace kernels {

/// How a convolution is computed. automatic picks, per layer shape, what measured faster on the
/// benchmarks (benchmarks/conv_kernels.cpp); the others force one path (tests check both).
enum class ConvAlgorithm { automatic, im2col_gemm, direct };

/// What the layer applies to its output. relu: y = max(conv(x) + b, 0), a ReLU fused into the
/// convolution (Sequential does this for a ReLU that follows a Conv2d): no separate pass over the
/// activations, and the backward masks dy where it copies it anyway.
enum class ConvActivation { none, relu };

/// Scratch memory the convolution kernels reuse from step to step (no allocation once warm).
template <typename T>
class Conv2dWorkspace {
 public:
  /// Scratch buffers, one set per thread; `threads` must be called outside a parallel region.
  void prepare(int threads) {
    if (static_cast<int>(per_thread_.size()) < threads) per_thread_.resize(static_cast<std::size_t>(threads));
  }
  /// im2col columns for `thread`, at least n elements.
  T* columns(int thread, std::int64_t n) { return grow(per_thread_[std::size_t(thread)].columns, n); }
  /// Gathered rows for `thread`, at least n elements.
  T* gathered(int thread, std::int64_t n) { return grow(per_thread_[std::size_t(thread)].gathered, n); }
  /// Shared: dy masked by a fused ReLU, when the kernels that run cannot mask it themselves.
  T* masked_grad(std::int64_t n) { return grow(masked_grad_, n); }
  /// One partial weight gradient per chunk of a batch (detail::for_each_image_chunk); grow them all
  /// before a parallel region.
  T* chunk_partial(int chunk, std::int64_t n) {
    if (static_cast<int>(chunk_partials_.size()) <= chunk) chunk_partials_.resize(static_cast<std::size_t>(chunk) + 1);
    return grow(chunk_partials_[std::size_t(chunk)], n);
  }
  /// A weight-gradient partial sum for `thread`, at least n elements.
  T* partial_weight(int thread, std::int64_t n) {
    return grow(per_thread_[std::size_t(thread)].partial_weight, n);
  }
  /// 64-byte aligned, so that the direct kernels' vector loads of rows do not split cache lines.
  T* padded(int thread, std::int64_t n) { return aligned(per_thread_[std::size_t(thread)].padded, n); }
  /// An extended input row buffer for `thread`, 64-byte aligned.
  T* extended(int thread, std::int64_t n) { return aligned(per_thread_[std::size_t(thread)].extended, n); }
  /// A transposed tile buffer for `thread`, 64-byte aligned.
  T* transposed(int thread, std::int64_t n) { return aligned(per_thread_[std::size_t(thread)].transposed, n); }
  /// The gathered buffer of `thread`, 64-byte aligned.
  T* gathered_aligned(int thread, std::int64_t n) { return aligned(per_thread_[std::size_t(thread)].gathered, n); }
  /// Per-pixel base offsets for `thread`, at least n.
  std::int64_t* pixel_bases(int thread, std::int64_t n) {
    auto& v = per_thread_[std::size_t(thread)].pixel_bases;
    if (static_cast<std::int64_t>(v.size()) < n) v.resize(static_cast<std::size_t>(n));
    return v.data();
  }
  /// The GEMM packing buffers of `thread`.
  GemmWorkspace<T>& gemm(int thread) { return per_thread_[std::size_t(thread)].gemm; }
  /// Shared by all threads, filled before a parallel region: packed weights and tap offsets.
  T* packed_weight(std::int64_t n) { return grow(packed_weight_, n); }
  /// Tap offset table `which` (shared), at least n.
  std::int64_t* offsets(int which, std::int64_t n) {
    auto& v = offsets_[std::size_t(which)];
    if (static_cast<std::int64_t>(v.size()) < n) v.resize(static_cast<std::size_t>(n));
    return v.data();
  }

 private:
  struct Buffers {
    std::vector<T> columns, gathered, partial_weight, padded, extended, transposed;
    std::vector<std::int64_t> pixel_bases;
    GemmWorkspace<T> gemm;
  };
  static T* grow(std::vector<T>& v, std::int64_t n) {
    if (static_cast<std::int64_t>(v.size()) < n) v.resize(static_cast<std::size_t>(n));
    return v.data();
  }
  static T* aligned(std::vector<T>& v, std::int64_t n) {
    T* p = grow(v, n + std::int64_t(64 / sizeof(T)));
    auto address = reinterpret_cast<std::uintptr_t>(p);
    return reinterpret_cast<T*>((address + 63) & ~std::uintptr_t(63));
  }
  std::vector<Buffers> per_thread_;
  std::vector<T> packed_weight_, masked_grad_;
  std::vector<std::vector<T>> chunk_partials_;
  std::vector<std::int64_t> offsets_[2];
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

enum class ConvPass { forward, input_gradient, weight_gradient };

// The automatic choice between the direct kernels and im2col + GEMM, pass by pass, where both can
// run. From `headnet-conv-kernels --algorithm=direct|im2col_gemm` at batch 32, 2 threads (table in
// docs/benchmarks.md): the direct kernels win the forward everywhere (1.1-3.4x) and the gradients of
// layers with few channels; the GEMM wins the input gradient when the input has fewer channels
// than a direct tile (3 of 6) and many output channels, and the weight gradient of wide layers
// (128+ channels, 1024+ taps) unless their channels come in 8s, when the direct weight gradient
// runs by channel (direct::weight_gradient_by_channel_applies) and wins, up to a gradient of 2 MiB:
// the direct kernels add into it image by image, and 3x3 256 -> 256 (2.25 MiB) measured 60
// GFLOP/s against the GEMM's 71 (3x3 128 -> 128, 0.56 MiB: 122 against 72).
inline bool prefer_direct(const ConvGeometry& g, int C_out, ConvPass pass) {
  switch (pass) {
    case ConvPass::input_gradient: return !(g.channels < 6 && C_out >= 32);
    case ConvPass::weight_gradient: {
      const bool wide = C_out >= 128 && g.patch_size() >= 1024;
      const bool gradient_fits = std::int64_t(C_out) * g.patch_size() <= (std::int64_t(1) << 19);  // floats
      return !wide || (C_out % 8 == 0 && gradient_fits);
    }
    default: return true;
  }
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

// Runs body(thread, chunk, first_image, end_image) for `chunks` fixed, contiguous chunks of the
// batch, handed to the threads as they become free. On this shared machine one core often runs
// slower than the other for a while; with one fixed half per thread the other core then waits (a
// fifth of its time, measured on the wide network). The chunks do not depend on the thread count
// or on which thread runs them, so sums kept per chunk and added in chunk order are the same on
// every run and any number of threads.
template <typename Body>
int for_each_image_chunk(int images, int chunks, Body&& body) {
  chunks = std::max(1, std::min(chunks, images));
  const int threads = std::min(num_threads(), chunks);
  auto run = [&](int t, int c) {
    body(t, c, static_cast<int>(std::int64_t(images) * c / chunks),
         static_cast<int>(std::int64_t(images) * (c + 1) / chunks));
  };
  if (threads == 1) {
    for (int c = 0; c < chunks; ++c) run(0, c);
    return 1;
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_index();
#pragma omp for schedule(dynamic, 1)
    for (int c = 0; c < chunks; ++c) run(t, c);
  }
  return threads;
}

// Chunks of a batch for a weight gradient: each keeps its own partial sum (see
// for_each_image_chunk), so few enough that adding them up stays cheap.
constexpr int weight_gradient_chunks = 8;

// Whether `algorithm` resolves to the direct kernels for this layer.
template <typename T>
bool use_direct(const ConvGeometry& g, int C_out, ConvAlgorithm algorithm, ConvPass pass) {
  if (!direct_conv_supported<T>(g, C_out)) return false;
  if (algorithm != ConvAlgorithm::automatic) return algorithm == ConvAlgorithm::direct;
  return prefer_direct(g, C_out, pass);
}

}  // namespace detail

#if HEADNET_HAVE_DIRECT_CONV
namespace direct {

inline void conv2d_forward(const ConvGeometry& g, int N, int C_out, const float* x, const float* weight,
                           const float* bias, float* y, Conv2dWorkspace<float>& ws, bool relu) {
  const int K = g.kernel_size;
  const PaddedGeometry in{g.channels, g.height + 2 * g.padding, g.width + 2 * g.padding};
  const std::int64_t R = g.patch_size(), L = extended_length(in, K), out_image = C_out * g.out_pixels();
  const bool by_channel = forward_by_channel_applies(in, K, C_out);
  const int blocks = (C_out + forward_channels - 1) / forward_channels;
  float* packed = ws.packed_weight(std::int64_t(blocks) * forward_channels * R + 16);
  // 32-byte aligned: the by-channel tile loads its weights with aligned loads.
  packed = reinterpret_cast<float*>((reinterpret_cast<std::uintptr_t>(packed) + 31) & ~std::uintptr_t(31));
  if (by_channel)
    pack_forward_weights_by_channel(weight, C_out, R, packed);
  else
    pack_forward_weights(weight, C_out, R, packed);
  std::int64_t* offsets = ws.offsets(0, R);
  tap_offsets(in, K, offsets);
  // Each thread's buffers, grown for every thread before the parallel region: which thread runs
  // which image is decided at run time, so growing them there would allocate whenever a thread first
  // gets work it did not get before (a warm training step must not allocate).
  struct Buffers {
    float* y_ext;
    std::int64_t* base;
    float* acc;
    float* xp;
  };
  auto buffers = [&](int t) {
    return Buffers{by_channel ? nullptr : ws.extended(t, forward_channels * L),
                   by_channel ? ws.pixel_bases(t, g.out_pixels()) : nullptr,
                   by_channel ? ws.gathered_aligned(t, 96 * forward_tiles_by_channel(g.out_pixels())) : nullptr,
                   g.padding > 0 ? ws.padded(t, in.size() + slack) : nullptr};
  };
  const int threads = std::min(num_threads(), std::max(N, 1));
  ws.prepare(threads);
  for (int t = 0; t < threads; ++t) buffers(t);
  detail::for_each_image_chunk(N, N, [&](int t, int, int begin, int end) {
    const Buffers b = buffers(t);
    float* y_ext = b.y_ext;
    std::int64_t* base = b.base;
    float* acc = b.acc;
    float* xp = b.xp;
    for (int n = begin; n < end; ++n) {
      const float* image = x + std::int64_t(n) * g.image_size();
      if (xp) pad_image(image, g.channels, g.height, g.width, g.padding, xp);
      if (by_channel)
        forward_image_by_channel(in, K, C_out, xp ? xp : image, packed, offsets, bias, y + n * out_image, base, acc,
                                 relu);
      else
        forward_image(in, K, C_out, xp ? xp : image, packed, offsets, bias, y + n * out_image, y_ext, relu);
    }
  });
}

// relu_output: see extend_grad_output; only when dy reaches the kernels through dy_ext (weight
// gradient, scattered input gradient).
inline void conv2d_backward(const ConvGeometry& g, int N, int C_out, const float* x, const float* weight,
                            const float* dy, float* dx, float* grad_weight, float* grad_bias,
                            Conv2dWorkspace<float>& ws, const float* relu_output = nullptr) {
  const int K = g.kernel_size, C = g.channels;
  const PaddedGeometry in{C, g.height + 2 * g.padding, g.width + 2 * g.padding};
  const int q = K - 1 - g.padding;  // dy's padding for the input gradient
  const PaddedGeometry grad{C_out, g.out_height() + 2 * q, g.out_width() + 2 * q};
  const std::int64_t R = g.patch_size(), R_grad = std::int64_t(C_out) * K * K;
  const std::int64_t Ln = grad_length(in, K), L_grad = extended_length(grad, K);
  const std::int64_t out_image = C_out * g.out_pixels(), weight_size = C_out * R;
  std::int64_t* offsets = ws.offsets(0, R);
  tap_offsets(in, K, offsets);
  // The input gradient scatters from dy_ext (built for the weight gradient anyway) or gathers
  // from dy padded by q, whichever does less work (prefer_scatter).
  const bool scatter = dx && prefer_scatter(in, grad, K);
  const bool by_channel = grad_weight && weight_gradient_by_channel_applies(in, K, C_out);
  const std::int64_t P = g.out_pixels();
  if (relu_output && dx && !scatter) throw std::logic_error("direct::conv2d_backward: a fused ReLU needs dy_ext");
  std::int64_t* grad_offsets = ws.offsets(1, R_grad);
  float* packed = nullptr;
  if (dx) {
    const int blocks = (C + forward_channels - 1) / forward_channels;
    packed = ws.packed_weight(std::int64_t(blocks) * forward_channels * R_grad);
    if (scatter) {
      pack_scatter_weights(weight, C_out, C, K, packed);
    } else {
      tap_offsets(grad, K, grad_offsets);
      pack_flipped_weights(weight, C_out, C, K, packed);
    }
  }
  // Without a weight gradient every image is its own chunk; with one, each of a few chunks sums
  // into its own partial gradient, added up in chunk order at the end.
  const int chunks = std::max(1, std::min(N, grad_weight ? detail::weight_gradient_chunks : N));
  const int threads = std::min(num_threads(), chunks);
  ws.prepare(threads);
  if (grad_weight)
    for (int c = 0; c < chunks; ++c) ws.chunk_partial(c, weight_size + C_out);  // grown outside the threads
  // Groups of images whose padded inputs and dy (extended or transposed) fit in about 256 KiB
  // (L2), so that each weight tile sums a whole group in registers while the group stays in cache.
  const bool extend = scatter || (grad_weight && !by_channel), transpose = grad_weight && by_channel;
  const std::int64_t xp_stride = round_up(in.size() + slack, 16), dy_stride = extend ? C_out * Ln : 0;
  const std::int64_t dyT_stride = transpose ? round_up(C_out * P, 16) : 0;
  const std::int64_t group_bytes = 4 * ((grad_weight ? xp_stride : 0) + dy_stride + dyT_stride);
  const int group = group_bytes ? int(std::max<std::int64_t>(1, (std::int64_t(256) << 10) / group_bytes)) : 1;
  // Each thread's buffers for `most` images, grown for every thread and the largest chunk before the
  // parallel region (as in conv2d_forward: no allocation when a thread first gets other work).
  struct Buffers {
    float *xp, *dy_ext, *dyT, *dxp, *dyp, *y_ext;
  };
  auto buffers = [&](int t, int most) {
    Buffers b{nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
    if (grad_weight || scatter) {
      b.xp = grad_weight ? ws.padded(t, most * xp_stride) : nullptr;
      b.dy_ext = extend ? ws.extended(t, most * dy_stride) : nullptr;
      b.dyT = transpose ? ws.transposed(t, most * dyT_stride) : nullptr;
      b.dxp = scatter ? ws.columns(t, in.size() + scatter_slack) : nullptr;
    }
    if (dx && !scatter) {
      b.dyp = ws.columns(t, grad.size() + slack);
      b.y_ext = ws.gathered(t, forward_channels * L_grad);
    }
    return b;
  };
  const int largest_chunk = (N + chunks - 1) / chunks;
  for (int t = 0; t < threads; ++t) buffers(t, std::min(group, largest_chunk));
  detail::for_each_image_chunk(N, chunks, [&](int t, int chunk, int begin, int end) {
    float* gw = nullptr;
    float* gb = nullptr;
    // By pixel, gw is (C_out, R) like grad_weight; by channel, (R, C_out), transposed at the end.
    if (grad_weight) {
      gw = ws.chunk_partial(chunk, weight_size + C_out);
      std::fill(gw, gw + weight_size + C_out, 0.0f);
      gb = grad_bias ? gw + weight_size : nullptr;
    }
    const Buffers b = buffers(t, std::min(group, end - begin));
    if (gw || scatter) {
      float* xp = b.xp;
      float* dy_ext = b.dy_ext;
      float* dyT = b.dyT;
      float* dxp = b.dxp;
      for (int n0 = begin; n0 < end; n0 += group) {
        const int images = std::min(group, end - n0);
        for (int i = 0; i < images; ++i) {
          const float* mask = relu_output ? relu_output + (n0 + i) * out_image : nullptr;
          if (gw)
            pad_image(x + std::int64_t(n0 + i) * g.image_size(), C, g.height, g.width, g.padding, xp + i * xp_stride);
          if (extend)
            extend_grad_output(in, K, C_out, dy + (n0 + i) * out_image, dy_ext + i * dy_stride,
                               transpose ? nullptr : gb, mask);
          if (transpose) transpose_grad_output(C_out, P, dy + (n0 + i) * out_image, mask, dyT + i * dyT_stride, gb);
        }
        if (gw && by_channel)
          weight_gradient_by_channel(in, K, C_out, xp, xp_stride, dyT, dyT_stride, images, offsets, gw);
        else if (gw)
          weight_gradient(in, K, C_out, xp, xp_stride, dy_ext, dy_stride, images, offsets, gw);
        if (scatter)
          for (int i = 0; i < images; ++i)
            input_gradient_scatter(in, K, C_out, g.padding, dy_ext + i * dy_stride, packed, dxp,
                                   dx + std::int64_t(n0 + i) * g.image_size());
      }
    }
    if (dx && !scatter) {
      float* dyp = b.dyp;
      float* y_ext = b.y_ext;
      for (int n = begin; n < end; ++n) {
        pad_image(dy + n * out_image, C_out, g.out_height(), g.out_width(), q, dyp);
        forward_image(grad, K, C, dyp, packed, grad_offsets, nullptr, dx + std::int64_t(n) * g.image_size(), y_ext);
      }
    }
  });
  if (grad_weight) {
    for (int c = 0; c < chunks; ++c) {
      const float* partial = ws.chunk_partial(c, weight_size + C_out);
      if (by_channel) {
        for (int co = 0; co < C_out; ++co)
          for (std::int64_t r = 0; r < R; ++r) grad_weight[co * R + r] += partial[r * C_out + co];
      } else {
        for (std::int64_t i = 0; i < weight_size; ++i) grad_weight[i] += partial[i];
      }
      if (grad_bias)
        for (int co = 0; co < C_out; ++co) grad_bias[co] += partial[weight_size + co];
    }
  }
}

}  // namespace direct
#endif

/// y = conv(x, weight) + bias. bias may be null.
template <typename T>
void conv2d_forward(const ConvGeometry& g, int N, int C_out, const T* x, const T* weight, const T* bias, T* y,
                    Conv2dWorkspace<T>& ws, ConvAlgorithm algorithm = ConvAlgorithm::automatic,
                    ConvActivation activation = ConvActivation::none) {
#if HEADNET_HAVE_DIRECT_CONV
  if constexpr (std::is_same<T, float>::value) {
    if (detail::use_direct<T>(g, C_out, algorithm, detail::ConvPass::forward))
      return direct::conv2d_forward(g, N, C_out, x, weight, bias, y, ws, activation == ConvActivation::relu);
  }
#endif
  (void)algorithm;
  if (activation == ConvActivation::relu) {
    conv2d_forward(g, N, C_out, x, weight, bias, y, ws, ConvAlgorithm::im2col_gemm);
    relu_forward(std::int64_t(N) * C_out * g.out_pixels(), y, y);
    return;
  }
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

/// Backward pass. Pass null for what is not wanted:
///   dx (overwritten): gradient with respect to x;
///   grad_weight, grad_bias (accumulated, +=): gradients with respect to the parameters.
///   relu_output: for a layer with a fused ReLU (ConvActivation::relu), its output; dy is then the
///   gradient of that output and is masked by relu_output > 0 before anything else.
template <typename T>
void conv2d_backward(const ConvGeometry& g, int N, int C_out, const T* x, const T* weight, const T* dy, T* dx,
                     T* grad_weight, T* grad_bias, Conv2dWorkspace<T>& ws,
                     ConvAlgorithm algorithm = ConvAlgorithm::automatic, const T* relu_output = nullptr) {
  const std::int64_t dy_size = std::int64_t(N) * C_out * g.out_pixels();
#if HEADNET_HAVE_DIRECT_CONV
  if constexpr (std::is_same<T, float>::value) {
    // Each gradient goes to the path that is faster for it; whatever the direct kernels take is
    // removed from what the im2col path below computes.
    const bool direct_dx = dx && detail::use_direct<T>(g, C_out, algorithm, detail::ConvPass::input_gradient);
    const bool direct_dw =
        grad_weight && detail::use_direct<T>(g, C_out, algorithm, detail::ConvPass::weight_gradient);
    // The direct kernels mask dy for free while copying it into dy_ext; when every gradient wanted
    // goes that way, no masked copy of dy is made.
    const bool mask_in_kernels = (!grad_weight || direct_dw) &&
                                 (!dx || (direct_dx && direct::input_gradient_scatters(g, C_out)));
    if (relu_output && !mask_in_kernels) {
      T* masked = ws.masked_grad(dy_size);
      relu_backward(dy_size, relu_output, dy, masked);
      dy = masked;
      relu_output = nullptr;
    }
    if (direct_dx || direct_dw) {
      direct::conv2d_backward(g, N, C_out, x, weight, dy, direct_dx ? dx : nullptr, direct_dw ? grad_weight : nullptr,
                              direct_dw ? grad_bias : nullptr, ws, relu_output);
      if (direct_dx) dx = nullptr;
      if (direct_dw) grad_weight = grad_bias = nullptr;
      if (!dx && !grad_weight) return;
    }
  }
#endif
  (void)algorithm;
  if (relu_output) {
    T* masked = ws.masked_grad(dy_size);
    relu_backward(dy_size, relu_output, dy, masked);
    dy = masked;
  }
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

/// Direct seven-loop convolution, for tests only: slow, but obviously the definition.
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
