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
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "headnet/core/parallel.hpp"
#include "headnet/kernels/conv2d_direct.hpp"
#include "headnet/kernels/conv2d_winograd.hpp"
#include "headnet/kernels/gemm.hpp"
#include "headnet/kernels/im2col.hpp"
#include "headnet/kernels/maxpool2d.hpp"
#include "headnet/kernels/relu.hpp"
#include "headnet/simd/isa.hpp"

namespace headnet {
namespace kernels {

/// How a convolution is computed. automatic picks, per layer shape and pass, what measured faster
/// on the benchmarks (benchmarks/conv_kernels.cpp); the others force one path where it can run
/// (tests check each): the direct kernels (kernels/conv2d_direct.hpp, float, stride 1), Winograd
/// F(4x4, 3x3), F(3x3, 3x3) or F(2x2, 3x3) (kernels/conv2d_winograd.hpp, 3x3, stride 1, padding up
/// to 2).
/// A layer the forced path cannot compute gets the automatic choice among the others.
enum class ConvAlgorithm { automatic, im2col_gemm, direct, winograd_4x4, winograd_2x2, winograd_3x3 };

/// "automatic", "im2col_gemm", "direct", "winograd_4x4", "winograd_3x3" or "winograd_2x2".
inline const char* name(ConvAlgorithm algorithm) {
  switch (algorithm) {
    case ConvAlgorithm::im2col_gemm: return "im2col_gemm";
    case ConvAlgorithm::direct: return "direct";
    case ConvAlgorithm::winograd_4x4: return "winograd_4x4";
    case ConvAlgorithm::winograd_2x2: return "winograd_2x2";
    case ConvAlgorithm::winograd_3x3: return "winograd_3x3";
    default: return "automatic";
  }
}

/// The algorithm named by name(ConvAlgorithm); throws std::invalid_argument naming the choices.
inline ConvAlgorithm parse_conv_algorithm(const std::string& text) {
  for (ConvAlgorithm a : {ConvAlgorithm::automatic, ConvAlgorithm::im2col_gemm, ConvAlgorithm::direct,
                          ConvAlgorithm::winograd_4x4, ConvAlgorithm::winograd_3x3, ConvAlgorithm::winograd_2x2})
    if (text == name(a)) return a;
  throw std::invalid_argument("unknown convolution algorithm '" + text +
                              "': automatic, im2col_gemm, direct, winograd_4x4, winograd_3x3 or winograd_2x2");
}

/// What the layer applies to its output. relu: y = max(conv(x) + b, 0), a ReLU fused into the
/// convolution (Sequential does this for a ReLU that follows a Conv2d): no separate pass over the
/// activations, and the backward masks dy where it copies it anyway.
enum class ConvActivation { none, relu };


/// One pass of a convolution.
enum class ConvPass { forward, input_gradient, weight_gradient };

/// "forward", "input_gradient" or "weight_gradient".
inline const char* name(ConvPass pass) {
  switch (pass) {
    case ConvPass::input_gradient: return "input_gradient";
    case ConvPass::weight_gradient: return "weight_gradient";
    default: return "forward";
  }
}

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

// The automatic choice between the direct kernels and im2col + GEMM, pass by pass, where both can
// run. From `headnet-conv-kernels --algorithm=direct|im2col_gemm` at batch 32, 2 threads (table in
// docs/benchmarks.md): the direct kernels win the forward everywhere (1.1-3.4x) and the gradients of
// layers with few channels; the GEMM wins the input gradient when the input has fewer channels
// than a direct tile (3 of 6) and many output channels, and the weight gradient of wide layers
// (128+ channels, 1024+ taps) unless their channels come in 8s, when the direct weight gradient
// runs by channel (direct::weight_gradient_by_channel_applies) and wins, up to a gradient of 2 MiB:
// the direct kernels add into it image by image, and 3x3 256 -> 256 (2.25 MiB) measured 60
// GFLOP/s against the GEMM's 71 (3x3 128 -> 128, 0.56 MiB: 122 against 72).
// Whether the weight gradient runs by channel is the direct kernels' own plan (direct::plan).
inline bool prefer_direct(const ConvGeometry& g, int C_out, ConvPass pass, simd::Isa isa) {
  switch (pass) {
    case ConvPass::input_gradient: return !(g.channels < 6 && C_out >= 32);
    case ConvPass::weight_gradient: {
      const bool wide = C_out >= 128 && g.patch_size() >= 1024;
      const bool gradient_fits = std::int64_t(C_out) * g.patch_size() <= (std::int64_t(1) << 19);  // floats
      return !wide || (direct::plan(isa, g, C_out).weight_gradient_by_channel && gradient_fits);
    }
    default: return true;
  }
}

// The automatic choice of Winograd F(4x4, 3x3) where it can run (see select_conv_path), for a
// batch of N images (0: not known, taken as large). From the fast recipe's 3x3 layers at batch 256,
// 2 threads, AVX-512 (`compare_pytorch.py --fast-layers`, table in docs/benchmarks.md, "Winograd"):
// the forward and the input gradient win when the channels their products sum over (C_in for the
// forward, C_out for the input gradient) number 32 or more: 1.3-2.4x the direct kernels from 64
// channels, and 24 -> 64 at 31x31 lost its forward (summing over 24) but won its input gradient
// (over 64). The weight gradient, whose products ran on the GEMM then (on the register tiles since
// session 19, as fast or faster), wins from 64 x 64 channels up (1.27x there, 1.3-1.8x on the wider
// layers) and tied at 24 x 64. All of that needs a batch of 128
// output tiles or more: at batch 32 on 3x3 images (32 tiles) the weight transform and half-empty
// register tiles made Winograd 3x slower. With registers of 8 floats (AVX2, portable) the direct
// forward has half the FMAs per instruction and Winograd also wins the forward summing over 24
// channels: 24 -> 64 at 31x31, batch 256, AMD EPYC Zen 3 (AVX2), alternated runs of
// `headnet-conv-kernels --algorithm=direct|winograd_4x4`: 141-212 GFLOP/s against 87-111 (1.6-1.9x),
// 121-152 against 82-114 with its max-pool (fused into either); narrower inputs were not measured.
template <typename T>
bool prefer_winograd(const ConvGeometry& g, int C_out, ConvPass pass, int N, simd::Isa isa = simd::active_isa()) {
  if (!std::is_same<T, float>::value) return false;  // double: the exact paths
  const std::int64_t tiles_per_image = std::int64_t((g.out_height() + 3) / 4) * ((g.out_width() + 3) / 4);
  if (N > 0 && tiles_per_image * N < 128) return false;
  switch (pass) {
    case ConvPass::forward: return g.channels >= (simd::vector_width(isa) >= 16 ? 32 : 24) && C_out >= 16;
    case ConvPass::input_gradient: return C_out >= 32 && g.channels >= 16;
    default: return std::int64_t(g.channels) * C_out >= 64 * 64;
  }
}

}  // namespace detail

/// The code that computes one pass: im2col + GEMM, the direct kernels of one instruction set, or
/// Winograd.
struct ConvPath {
  ConvAlgorithm algorithm;  ///< im2col_gemm, direct or a winograd_* (never automatic)
  simd::Isa isa;            ///< the instruction set of our vector kernels, where they run
  bool vector_kernels = false;  ///< whether our vector kernels run (direct; Winograd in float)
  /// The algorithm's name, followed by "/<isa>" where our vector kernels run: "im2col_gemm",
  /// "direct/avx512", "winograd_4x4/avx2", "winograd_2x2" (in double).
  std::string name() const {
    const std::string base = kernels::name(algorithm);
    return vector_kernels ? base + "/" + simd::name(isa) : base;
  }
};

/// The path conv2d_forward / conv2d_backward take for one pass of this layer on a batch of N
/// images (0: unknown, taken as large): what `algorithm` forces where it can run; automatic (or a
/// forced path that cannot run): Winograd where it measured faster (detail::prefer_winograd), else the direct kernels of `isa` where they can run
/// and measured faster (detail::prefer_direct), else im2col + GEMM. The single place where the
/// choice is made.
template <typename T>
ConvPath select_conv_path(const ConvGeometry& g, int C_out, ConvPass pass,
                          ConvAlgorithm algorithm = ConvAlgorithm::automatic, simd::Isa isa = simd::active_isa(),
                          int N = 0) {
  const ConvPath gemm{ConvAlgorithm::im2col_gemm, isa, false}, direct{ConvAlgorithm::direct, isa, true};
  const bool winograd_runs = winograd::supported(g, C_out);
  constexpr bool float_kernels = std::is_same<T, float>::value;
  if (algorithm == ConvAlgorithm::winograd_4x4 || algorithm == ConvAlgorithm::winograd_3x3 ||
      algorithm == ConvAlgorithm::winograd_2x2) {
    if (winograd_runs) return ConvPath{algorithm, isa, float_kernels};
    algorithm = ConvAlgorithm::automatic;
  }
  if (algorithm == ConvAlgorithm::automatic && winograd_runs && detail::prefer_winograd<T>(g, C_out, pass, N, isa)) {
    const ConvAlgorithm tile =
        winograd::fewest_products_tile(g) == 3 ? ConvAlgorithm::winograd_3x3 : ConvAlgorithm::winograd_4x4;
    return ConvPath{tile, isa, float_kernels};
  }
  if (!direct_conv_supported<T>(g, C_out, isa)) return gemm;
  if (algorithm != ConvAlgorithm::automatic) return algorithm == ConvAlgorithm::direct ? direct : gemm;
  return detail::prefer_direct(g, C_out, pass, isa) ? direct : gemm;
}

/// y = conv(x, weight) + bias. bias may be null. `isa`: the direct kernels' instruction set.
template <typename T>
void conv2d_forward(const ConvGeometry& g, int N, int C_out, const T* x, const T* weight, const T* bias, T* y,
                    Conv2dWorkspace<T>& ws, ConvAlgorithm algorithm = ConvAlgorithm::automatic,
                    ConvActivation activation = ConvActivation::none, simd::Isa isa = simd::active_isa()) {
  const ConvAlgorithm path = select_conv_path<T>(g, C_out, ConvPass::forward, algorithm, isa, N).algorithm;
  const bool relu = activation == ConvActivation::relu;
  if (path == ConvAlgorithm::winograd_4x4)
    return winograd::conv2d_forward<4>(g, N, C_out, x, weight, bias, y, ws, relu, isa);
  if (path == ConvAlgorithm::winograd_3x3)
    return winograd::conv2d_forward<3>(g, N, C_out, x, weight, bias, y, ws, relu, isa);
  if (path == ConvAlgorithm::winograd_2x2)
    return winograd::conv2d_forward<2>(g, N, C_out, x, weight, bias, y, ws, relu, isa);
  if constexpr (std::is_same<T, float>::value) {
    if (path == ConvAlgorithm::direct)
      return direct::conv2d_forward(isa, g, N, C_out, x, weight, bias, y, ws, relu);
  }
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

/// The forward with a 2x2, stride-2 max-pool fused into the output (Conv2d takes over a
/// MaxPool2d(2) that follows it): pool.y (N, C_out, H_out / 2, W_out / 2) and pool.argmax are
/// exactly maxpool2d_forward(pool_2x2(H_out, W_out), ...) of conv2d_forward's y (with `activation`
/// applied before the pool), without y being
/// written out: Winograd with even tiles pools each tile as it leaves the output transform, the
/// direct kernels each image while it is in cache; the other paths write y to the workspace first.
template <typename T>
void conv2d_maxpool_forward(const ConvGeometry& g, int N, int C_out, const T* x, const T* weight, const T* bias,
                            PooledOutput<T> pool, Conv2dWorkspace<T>& ws,
                            ConvAlgorithm algorithm = ConvAlgorithm::automatic,
                            ConvActivation activation = ConvActivation::none, simd::Isa isa = simd::active_isa()) {
  const ConvAlgorithm path = select_conv_path<T>(g, C_out, ConvPass::forward, algorithm, isa, N).algorithm;
  const bool relu = activation == ConvActivation::relu;
  if (path == ConvAlgorithm::winograd_4x4)
    return winograd::conv2d_forward<4>(g, N, C_out, x, weight, bias, static_cast<T*>(nullptr), ws, relu, isa, pool);
  if (path == ConvAlgorithm::winograd_2x2)
    return winograd::conv2d_forward<2>(g, N, C_out, x, weight, bias, static_cast<T*>(nullptr), ws, relu, isa, pool);
  if constexpr (std::is_same<T, float>::value) {
    if (path == ConvAlgorithm::direct)
      return direct::conv2d_forward(isa, g, N, C_out, x, weight, bias, nullptr, ws, relu, pool);
  }
  T* y = ws.unpooled(std::int64_t(N) * C_out * g.out_pixels());
  conv2d_forward(g, N, C_out, x, weight, bias, y, ws, algorithm, activation, isa);
  maxpool2d_forward(pool_2x2(g.out_height(), g.out_width()), std::int64_t(N) * C_out, y, pool.y, pool.argmax);
}

/// grad_bias += the sum of dy over the images and pixels of each output channel (only where
/// relu_output > 0 when given). In double: a channel sums N x P values (a million for the fast
/// recipe's whitening layer at batch 1024), too many for one float accumulator to keep exact.
template <typename T>
void conv2d_bias_gradient(int N, int C_out, std::int64_t P, const T* dy, const T* relu_output, T* grad_bias) {
#pragma omp parallel for schedule(static) if (std::int64_t(N) * C_out * P > 32768)
  for (int co = 0; co < C_out; ++co) {
    double sum = 0;
    for (int n = 0; n < N; ++n) {
      const std::int64_t offset = (std::int64_t(n) * C_out + co) * P;
      for (std::int64_t p = 0; p < P; ++p)
        if (!relu_output || relu_output[offset + p] > T(0)) sum += double(dy[offset + p]);
    }
    grad_bias[co] += T(sum);
  }
}

/// conv2d_bias_gradient of the full-size dy that a fused max-pool's gradient stands for, summed in
/// the same order (each full row's winners, left to right), so the same bits.
template <typename T>
void conv2d_bias_gradient(int N, int C_out, const PooledGradient<T>& pooled, T* grad_bias) {
  const int pooled_height = pooled.height / 2, pooled_width = pooled.width / 2;
  const std::int64_t P = pooled.pooled_plane();
#pragma omp parallel for schedule(static) if (std::int64_t(N) * C_out * P > 8192)
  for (int co = 0; co < C_out; ++co) {
    double sum = 0;
    for (int n = 0; n < N; ++n)
      for (int pr = 0; pr < pooled_height; ++pr) {
        const std::int64_t first = (std::int64_t(n) * C_out + co) * P + std::int64_t(pr) * pooled_width;
        const int lower_row = (2 * pr + 1) * pooled.width;  // where the window's second row starts
        for (int pc = 0; pc < pooled_width; ++pc)
          if (pooled.argmax[first + pc] < lower_row) sum += double(pooled.value(first + pc));
        for (int pc = 0; pc < pooled_width; ++pc)
          if (pooled.argmax[first + pc] >= lower_row) sum += double(pooled.value(first + pc));
      }
    grad_bias[co] += T(sum);
  }
}

namespace detail {

// conv2d_backward and conv2d_maxpool_backward: dy is either given (pooled null) or stands behind a
// fused max-pool's gradient (dy null).
template <typename T>
void conv2d_backward(const ConvGeometry& g, int N, int C_out, const T* x, const T* weight, const T* dy, T* dx,
                     T* grad_weight, T* grad_bias, Conv2dWorkspace<T>& ws, ConvAlgorithm algorithm,
                     const T* relu_output, simd::Isa isa, const PooledGradient<T>* pooled) {
  const std::int64_t dy_size = std::int64_t(N) * C_out * g.out_pixels();
  if (pooled) {
    // Only the direct kernels take the pooled gradient (one image unpooled at a time, in cache).
    // Winograd reads dy tile by tile, several times over: unpooling its chunks' planes as it
    // went cost more (measured, fast recipe at batch 1024: 413 against 423 images/s) than one
    // streaming pass over the batch; im2col reads dy as a matrix. Those get the batch unpooled.
    auto takes = [&](ConvPass pass) {
      return select_conv_path<T>(g, C_out, pass, algorithm, isa, N).algorithm == ConvAlgorithm::direct;
    };
    const bool direct_only = (!dx || takes(ConvPass::input_gradient)) && (!grad_weight || takes(ConvPass::weight_gradient));
    if (!direct_only) {
      T* unpooled = ws.unpooled(dy_size);
      maxpool2d_backward(pooled->geometry(), std::int64_t(N) * C_out, pooled->dy, pooled->argmax, unpooled,
                         pooled->relu_output);
      dy = unpooled;
      pooled = nullptr;
    }
  }
  auto bias_gradient = [&](const T* relu_mask) {
    if (pooled)
      conv2d_bias_gradient(N, C_out, *pooled, grad_bias);
    else
      conv2d_bias_gradient(N, C_out, g.out_pixels(), dy, relu_mask, grad_bias);
  };
  if (grad_bias && !grad_weight) {
    // The direct and im2col paths below sum the bias gradient beside the weight gradient only; a
    // bias trained under a frozen weight (the fast recipe's whitening convolution) is summed here.
    bias_gradient(relu_output);
    grad_bias = nullptr;
    if (!dx) return;
  }
  {  // Winograd takes the gradients it is chosen for, on dy masked once by a fused ReLU.
    auto winograd_path = [&](ConvPass pass) {
      const ConvAlgorithm a = select_conv_path<T>(g, C_out, pass, algorithm, isa, N).algorithm;
      return a == ConvAlgorithm::winograd_4x4   ? 4
             : a == ConvAlgorithm::winograd_3x3 ? 3
             : a == ConvAlgorithm::winograd_2x2 ? 2
                                                : 0;
    };
    const int dx_tile = dx ? winograd_path(ConvPass::input_gradient) : 0;
    const int dw_tile = grad_weight ? winograd_path(ConvPass::weight_gradient) : 0;
    if (dx_tile || dw_tile) {
      if (relu_output) {
        T* masked = ws.masked_grad(dy_size);
        relu_backward(dy_size, relu_output, dy, masked);
        dy = masked;
        relu_output = nullptr;
      }
      if (dx_tile == 4) winograd::conv2d_input_gradient<4>(g, N, C_out, weight, dy, dx, ws, isa);
      if (dx_tile == 3) winograd::conv2d_input_gradient<3>(g, N, C_out, weight, dy, dx, ws, isa);
      if (dx_tile == 2) winograd::conv2d_input_gradient<2>(g, N, C_out, weight, dy, dx, ws, isa);
      if (dw_tile && grad_bias) bias_gradient(nullptr);  // Winograd's weight gradient has no bias sum of its own
      if (dw_tile == 4) winograd::conv2d_weight_gradient<4>(g, N, C_out, x, dy, grad_weight, ws, isa);
      if (dw_tile == 3) winograd::conv2d_weight_gradient<3>(g, N, C_out, x, dy, grad_weight, ws, isa);
      if (dw_tile == 2) winograd::conv2d_weight_gradient<2>(g, N, C_out, x, dy, grad_weight, ws, isa);
      if (dx_tile) dx = nullptr;
      if (dw_tile) grad_weight = grad_bias = nullptr;
      if (!dx && !grad_weight) return;
    }
  }
  if constexpr (std::is_same<T, float>::value) {
    // Each gradient goes to the path that is faster for it; whatever the direct kernels take is
    // removed from what the im2col path below computes.
    auto direct = [&](ConvPass pass) {
      return select_conv_path<T>(g, C_out, pass, algorithm, isa, N).algorithm == ConvAlgorithm::direct;
    };
    const bool direct_dx = dx && direct(ConvPass::input_gradient);
    const bool direct_dw = grad_weight && direct(ConvPass::weight_gradient);
    // The direct kernels mask dy for free while copying it into dy_ext; when every gradient wanted
    // goes that way, no masked copy of dy is made.
    const bool mask_in_kernels = (!grad_weight || direct_dw) &&
                                 (!dx || (direct_dx && direct::input_gradient_scatters(isa, g, C_out)));
    if (relu_output && !mask_in_kernels) {
      T* masked = ws.masked_grad(dy_size);
      relu_backward(dy_size, relu_output, dy, masked);
      dy = masked;
      relu_output = nullptr;
    }
    if (direct_dx || direct_dw) {
      direct::conv2d_backward(isa, g, N, C_out, x, weight, dy, direct_dx ? dx : nullptr,
                              direct_dw ? grad_weight : nullptr, direct_dw ? grad_bias : nullptr, ws, relu_output,
                              pooled);
      if (direct_dx) dx = nullptr;
      if (direct_dw) grad_weight = grad_bias = nullptr;
      if (!dx && !grad_weight) return;
    }
  }
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

}  // namespace detail

/// Backward pass. Pass null for what is not wanted:
///   dx (overwritten): gradient with respect to x;
///   grad_weight, grad_bias (accumulated, +=): gradients with respect to the parameters.
///   relu_output: for a layer with a fused ReLU (ConvActivation::relu), its output; dy is then the
///   gradient of that output and is masked by relu_output > 0 before anything else.
template <typename T>
void conv2d_backward(const ConvGeometry& g, int N, int C_out, const T* x, const T* weight, const T* dy, T* dx,
                     T* grad_weight, T* grad_bias, Conv2dWorkspace<T>& ws,
                     ConvAlgorithm algorithm = ConvAlgorithm::automatic, const T* relu_output = nullptr,
                     simd::Isa isa = simd::active_isa()) {
  detail::conv2d_backward(g, N, C_out, x, weight, dy, dx, grad_weight, grad_bias, ws, algorithm, relu_output, isa,
                          static_cast<const PooledGradient<T>*>(nullptr));
}

/// The backward of conv2d_maxpool_forward: exactly maxpool2d_backward(pool_2x2(H_out, W_out), ...)
/// of the pooled gradient (masked by pooled_relu_output > 0 when a ReLU came before the pool) into a
/// full-size dy, then conv2d_backward of that dy. Where the direct kernels take every gradient
/// wanted, the full-size dy is never stored: they unpool one image at a time into a thread's buffer,
/// just before reading it. Otherwise (Winograd, im2col + GEMM) the batch is unpooled into the
/// workspace first, as the layers apart would.
template <typename T>
void conv2d_maxpool_backward(const ConvGeometry& g, int N, int C_out, const T* x, const T* weight,
                             const T* pooled_dy, const std::int32_t* argmax, const T* pooled_relu_output, T* dx,
                             T* grad_weight, T* grad_bias, Conv2dWorkspace<T>& ws,
                             ConvAlgorithm algorithm = ConvAlgorithm::automatic, simd::Isa isa = simd::active_isa()) {
  const PooledGradient<T> pooled{pooled_dy, argmax, pooled_relu_output, g.out_height(), g.out_width()};
  detail::conv2d_backward(g, N, C_out, x, weight, static_cast<const T*>(nullptr), dx, grad_weight, grad_bias, ws,
                          algorithm, static_cast<const T*>(nullptr), isa, &pooled);
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
