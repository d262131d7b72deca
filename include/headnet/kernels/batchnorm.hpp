// headnet/kernels/batchnorm.hpp: batch normalisation's arithmetic, per channel.
//
// x, y, dy, dx: (N, C, S) row-major, S = H * W for images (1 for (N, C) inputs); M = N * S values
// per channel. gamma and beta may be null (affine = false: 1 and 0).
//   statistics  mean_c = sum x / M,  var_c = sum (x - mean_c)^2 / M        (two passes: exact for
//                                                                          large means too)
//   normalize   y = (x - mean_c) * invstd_c * gamma_c + beta_c,  invstd_c = 1 / sqrt(var_c + eps)
//   backward    xhat = (x - mean) * invstd;  grad_gamma += sum dy * xhat;  grad_beta += sum dy;
//               with batch statistics (training): dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
//               with fixed statistics (eval):     dx = gamma * invstd * dy
// Fused with the activation that follows (GELU, ReLU: an op of kernels/activations.hpp or relu.hpp
// whose derivative needs only its input y):
//   forward     z = f(y), y as above, never stored
//   backward    g = dz f'(y), y recomputed from x; then the backward above with dy = g, the sums
//               taken in the same sweep that forms g, and dx written over g
// Sums are accumulated in double, in a fixed order whatever the thread count; the loops, compiled
// once per instruction set, are in kernels/batchnorm_impl.hpp.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "headnet/simd/isa.hpp"

namespace headnet {
namespace kernels {

/// Below this many elements a parallel region costs more than it saves.
constexpr std::int64_t batchnorm_parallel_threshold = std::int64_t(1) << 15;

/// Planes (H x W) smaller than this take the fused normalisation + activation apart after all
/// (normalize, then the activation over the whole tensor): the fused loops run per plane, and on
/// 3x3 planes their short vector loops cost more than the pass over memory they save (measured:
/// `headnet-conv-kernels --benchmark_filter=batchnorm_gelu`, docs/benchmarks.md).
constexpr std::int64_t batchnorm_fused_min_plane = 32;

namespace detail {
// No activation: batchnorm_normalize's plain form.
struct Unchanged {
  template <typename T>
  T value(T y) const {
    return y;
  }
};
}  // namespace detail

}  // namespace kernels
}  // namespace headnet

#define HEADNET_ISA_NAMESPACE batchnorm
#define HEADNET_ISA_IMPL "headnet/kernels/batchnorm_impl.hpp"
#include "headnet/simd/for_each_isa.hpp"

namespace headnet {
namespace kernels {
namespace detail {
// Calls run(loops) with the copy of batchnorm_impl.hpp's Loops for T: in float the one
// simd::loops_copy picks for the kernels' instruction set, in double the portable one.
template <typename T, typename Run>
void with_batchnorm_loops(Run&& run) {
  if constexpr (std::is_same<T, float>::value) switch (simd::loops_copy(simd::active_isa())) {
#if HEADNET_SIMD_AVX512
      case simd::Isa::avx512: return run(batchnorm::avx512::Loops());
#endif
#if HEADNET_SIMD_AVX2
      case simd::Isa::avx2: return run(batchnorm::avx2::Loops());
#endif
      default: break;
    }
  run(batchnorm::portable::Loops());
}
}  // namespace detail

/// Per-channel mean and biased variance of x (N, C, S), in double accumulators.
template <typename T>
void batchnorm_statistics(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, T* mean, T* var) {
  detail::with_batchnorm_loops<T>([&](auto loops) { loops.batchnorm_statistics(N, C, S, x, mean, var); });
}

/// z = f((x - mean) * invstd * gamma + beta): the normalisation and the activation `op` after it,
/// in one pass (y is never written).
template <typename T, typename Op>
void batchnorm_normalize(const Op& op, std::int64_t N, std::int64_t C, std::int64_t S, const T* x, const T* mean,
                         const T* invstd, const T* gamma, const T* beta, T* z) {
  detail::with_batchnorm_loops<T>(
      [&](auto loops) { loops.batchnorm_normalize(op, N, C, S, x, mean, invstd, gamma, beta, z); });
}

/// y = (x - mean) * invstd * gamma + beta per channel (gamma and beta may be null: 1 and 0).
template <typename T>
void batchnorm_normalize(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, const T* mean, const T* invstd,
                         const T* gamma, const T* beta, T* y) {
  batchnorm_normalize(detail::Unchanged(), N, C, S, x, mean, invstd, gamma, beta, y);
}

/// dx may be null (overwritten otherwise); grad_gamma and grad_beta may be null (accumulated).
template <typename T>
void batchnorm_backward(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, const T* dy, const T* mean,
                        const T* invstd, const T* gamma, bool batch_statistics, T* dx, T* grad_gamma, T* grad_beta) {
  detail::with_batchnorm_loops<T>([&](auto loops) {
    loops.batchnorm_backward(N, C, S, x, dy, mean, invstd, gamma, batch_statistics, dx, grad_gamma, grad_beta);
  });
}

/// The backward of z = f(batchnorm(x)): g = dz f'(y) with y recomputed from x as the forward formed
/// it, then batchnorm_backward's sums and dx from g. g is written to `scratch` (N, C, S), and dx,
/// if wanted, over it: pass dx == scratch, or dx null to keep only the parameter gradients.
template <typename T, typename Op>
void batchnorm_backward(const Op& op, std::int64_t N, std::int64_t C, std::int64_t S, const T* x, const T* dz,
                        const T* mean, const T* invstd, const T* gamma, const T* beta, bool batch_statistics,
                        T* scratch, T* dx, T* grad_gamma, T* grad_beta) {
  detail::with_batchnorm_loops<T>([&](auto loops) {
    loops.batchnorm_backward(op, N, C, S, x, dz, mean, invstd, gamma, beta, batch_statistics, scratch, dx, grad_gamma,
                             grad_beta);
  });
}

/// Only g = dz f'(y) of the fused backward above, for SyncBatchNorm, whose sums are added up over
/// the processes before dx is formed.
template <typename T, typename Op>
void batchnorm_activation_gradient(const Op& op, std::int64_t N, std::int64_t C, std::int64_t S, const T* x,
                                   const T* dz, const T* mean, const T* invstd, const T* gamma, const T* beta, T* g) {
  detail::with_batchnorm_loops<T>(
      [&](auto loops) { loops.batchnorm_activation_gradient(op, N, C, S, x, dz, mean, invstd, gamma, beta, g); });
}

/// Per-channel sum and sum of squares of x (N, C, S), in double: what SyncBatchNorm adds up over
/// the processes before it forms the mean and variance.
template <typename T>
void batchnorm_sums(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, double* sum, double* sum_squares) {
  detail::with_batchnorm_loops<T>([&](auto loops) { loops.batchnorm_sums(N, C, S, x, sum, sum_squares); });
}

/// batchnorm_backward in two halves, so that the sums can be added up over processes in between
/// (SyncBatchNorm): first sum dy and sum dy xhat per channel...
template <typename T>
void batchnorm_backward_sums(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, const T* dy, const T* mean,
                             const T* invstd, double* sum_dy, double* sum_dy_xhat) {
  detail::with_batchnorm_loops<T>(
      [&](auto loops) { loops.batchnorm_backward_sums(N, C, S, x, dy, mean, invstd, sum_dy, sum_dy_xhat); });
}

/// ...then dx = gamma invstd (dy - sum_dy / M - xhat sum_dy_xhat / M), M the number of values the
/// statistics were taken over (all processes').
template <typename T>
void batchnorm_backward_input(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, const T* dy, const T* mean,
                              const T* invstd, const T* gamma, double M, const double* sum_dy, const double* sum_dy_xhat,
                              T* dx) {
  detail::with_batchnorm_loops<T>([&](auto loops) {
    loops.batchnorm_backward_input(N, C, S, x, dy, mean, invstd, gamma, M, sum_dy, sum_dy_xhat, dx);
  });
}

}  // namespace kernels
}  // namespace headnet
