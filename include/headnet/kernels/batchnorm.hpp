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
// Sums are accumulated in double, in 8 interleaved partial sums per channel (lane l takes the
// elements l, l + 8, ... of each image's plane, added up in a fixed order at the end): one running
// sum would wait on the adder's latency at every element, and the compiler may not reorder a
// floating-point sum itself; 8 independent ones become vector registers. Channels are split across
// threads, so the result does not depend on the thread count.
#pragma once

#include <cmath>
#include <cstdint>

namespace headnet {
namespace kernels {

/// Below this many elements a parallel region costs more than it saves.
constexpr std::int64_t batchnorm_parallel_threshold = std::int64_t(1) << 15;

namespace detail {
constexpr int batchnorm_lanes = 8;

// The lanes' partial sums, added up in a fixed order.
inline double add_lanes(const double* lanes) {
  double total = 0;
  for (int l = 0; l < batchnorm_lanes; ++l) total += lanes[l];
  return total;
}

// Adds f(s) for s in [0, S) into the lanes (lane s % 8).
template <typename F>
inline void accumulate_lanes(std::int64_t S, double* lanes, F f) {
  std::int64_t s = 0;
  for (; s + batchnorm_lanes <= S; s += batchnorm_lanes)
    for (int l = 0; l < batchnorm_lanes; ++l) lanes[l] += f(s + l);
  for (int l = 0; s < S; ++s, ++l) lanes[l] += f(s);
}
}  // namespace detail

/// Per-channel mean and biased variance of x (N, C, S), in double accumulators.
template <typename T>
void batchnorm_statistics(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, T* mean, T* var) {
  const double M = double(N * S);
#pragma omp parallel for schedule(static) if (N * C * S > batchnorm_parallel_threshold)
  for (std::int64_t c = 0; c < C; ++c) {
    double sums[detail::batchnorm_lanes] = {};
    for (std::int64_t n = 0; n < N; ++n) {
      const T* p = x + (n * C + c) * S;
      detail::accumulate_lanes(S, sums, [p](std::int64_t s) { return double(p[s]); });
    }
    const double m = detail::add_lanes(sums) / M;
    double squares[detail::batchnorm_lanes] = {};
    for (std::int64_t n = 0; n < N; ++n) {
      const T* p = x + (n * C + c) * S;
      detail::accumulate_lanes(S, squares, [p, m](std::int64_t s) { return (double(p[s]) - m) * (double(p[s]) - m); });
    }
    mean[c] = T(m);
    var[c] = T(detail::add_lanes(squares) / M);
  }
}

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

/// z = f((x - mean) * invstd * gamma + beta): the normalisation and the activation `op` after it,
/// in one pass (y is never written).
template <typename T, typename Op>
void batchnorm_normalize(const Op& op, std::int64_t N, std::int64_t C, std::int64_t S, const T* x, const T* mean,
                         const T* invstd, const T* gamma, const T* beta, T* z) {
#pragma omp parallel for collapse(2) schedule(static) if (N * C * S > batchnorm_parallel_threshold)
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t c = 0; c < C; ++c) {
      const T scale = invstd[c] * (gamma ? gamma[c] : T(1));
      const T shift = (beta ? beta[c] : T(0)) - mean[c] * scale;
      const T* p = x + (n * C + c) * S;
      T* q = z + (n * C + c) * S;
      for (std::int64_t s = 0; s < S; ++s) q[s] = op.value(p[s] * scale + shift);
    }
  }
}

/// y = (x - mean) * invstd * gamma + beta per channel (gamma and beta may be null: 1 and 0).
template <typename T>
void batchnorm_normalize(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, const T* mean, const T* invstd,
                         const T* gamma, const T* beta, T* y) {
  batchnorm_normalize(detail::Unchanged(), N, C, S, x, mean, invstd, gamma, beta, y);
}

namespace detail {
// Channel c's sum dy and sum dy xhat, xhat = (x - m) is.
template <typename T>
void channel_gradient_sums(std::int64_t N, std::int64_t C, std::int64_t S, std::int64_t c, const T* x, const T* dy,
                           double m, double is, double& sum_dy, double& sum_dy_xhat) {
  double a[batchnorm_lanes] = {}, b[batchnorm_lanes] = {};
  for (std::int64_t n = 0; n < N; ++n) {
    const T* p = x + (n * C + c) * S;
    const T* g = dy + (n * C + c) * S;
    accumulate_lanes(S, a, [g](std::int64_t s) { return double(g[s]); });
    accumulate_lanes(S, b, [p, g, m, is](std::int64_t s) { return double(g[s]) * (double(p[s]) - m) * is; });
  }
  sum_dy = add_lanes(a), sum_dy_xhat = add_lanes(b);
}

// Channel c's dx = scale (dy - mean_dy - xhat mean_dy_xhat).
template <typename T>
void channel_input_gradient(std::int64_t N, std::int64_t C, std::int64_t S, std::int64_t c, const T* x, const T* dy,
                            double m, double is, double scale, double mean_dy, double mean_dy_xhat, T* dx) {
  for (std::int64_t n = 0; n < N; ++n) {
    const T* p = x + (n * C + c) * S;
    const T* g = dy + (n * C + c) * S;
    T* d = dx + (n * C + c) * S;
    for (std::int64_t s = 0; s < S; ++s) d[s] = T(scale * (double(g[s]) - mean_dy - (double(p[s]) - m) * is * mean_dy_xhat));
  }
}
}  // namespace detail

/// dx may be null (overwritten otherwise); grad_gamma and grad_beta may be null (accumulated).
template <typename T>
void batchnorm_backward(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, const T* dy, const T* mean,
                        const T* invstd, const T* gamma, bool batch_statistics, T* dx, T* grad_gamma, T* grad_beta) {
  const double M = double(N * S);
#pragma omp parallel for schedule(static) if (N * C * S > batchnorm_parallel_threshold)
  for (std::int64_t c = 0; c < C; ++c) {
    const double m = double(mean[c]), is = double(invstd[c]);
    double sum_dy = 0, sum_dy_xhat = 0;
    detail::channel_gradient_sums(N, C, S, c, x, dy, m, is, sum_dy, sum_dy_xhat);
    if (grad_gamma) grad_gamma[c] += T(sum_dy_xhat);
    if (grad_beta) grad_beta[c] += T(sum_dy);
    if (!dx) continue;
    const double scale = (gamma ? double(gamma[c]) : 1.0) * is;
    detail::channel_input_gradient(N, C, S, c, x, dy, m, is, scale, batch_statistics ? sum_dy / M : 0.0,
                                   batch_statistics ? sum_dy_xhat / M : 0.0, dx);
  }
}

/// The backward of z = f(batchnorm(x)): g = dz f'(y) with y recomputed from x as the forward formed
/// it, then batchnorm_backward's sums and dx from g. g is written to `scratch` (N, C, S), and dx,
/// if wanted, over it: pass dx == scratch, or dx null to keep only the parameter gradients.
/// Per channel, one sweep forms g and its two sums while an image's plane is in cache, a second
/// writes dx.
template <typename T, typename Op>
void batchnorm_backward(const Op& op, std::int64_t N, std::int64_t C, std::int64_t S, const T* x, const T* dz,
                        const T* mean, const T* invstd, const T* gamma, const T* beta, bool batch_statistics,
                        T* scratch, T* dx, T* grad_gamma, T* grad_beta) {
  const double M = double(N * S);
#pragma omp parallel for schedule(static) if (N * C * S > batchnorm_parallel_threshold)
  for (std::int64_t c = 0; c < C; ++c) {
    const T scale = invstd[c] * (gamma ? gamma[c] : T(1));
    const T shift = (beta ? beta[c] : T(0)) - mean[c] * scale;
    const double m = double(mean[c]), is = double(invstd[c]);
    double a[detail::batchnorm_lanes] = {}, b[detail::batchnorm_lanes] = {};
    for (std::int64_t n = 0; n < N; ++n) {
      const T* p = x + (n * C + c) * S;
      const T* gz = dz + (n * C + c) * S;
      T* g = scratch + (n * C + c) * S;
      for (std::int64_t s = 0; s < S; ++s) g[s] = gz[s] * op.derivative(p[s] * scale + shift, T(0));
      detail::accumulate_lanes(S, a, [g](std::int64_t s) { return double(g[s]); });
      detail::accumulate_lanes(S, b, [p, g, m, is](std::int64_t s) { return double(g[s]) * (double(p[s]) - m) * is; });
    }
    const double sum_dy = detail::add_lanes(a), sum_dy_xhat = detail::add_lanes(b);
    if (grad_gamma) grad_gamma[c] += T(sum_dy_xhat);
    if (grad_beta) grad_beta[c] += T(sum_dy);
    if (!dx) continue;
    detail::channel_input_gradient(N, C, S, c, x, scratch, m, is, (gamma ? double(gamma[c]) : 1.0) * is,
                                   batch_statistics ? sum_dy / M : 0.0, batch_statistics ? sum_dy_xhat / M : 0.0, dx);
  }
}

/// Only g = dz f'(y) of the fused backward above, for SyncBatchNorm, whose sums are added up over
/// the processes before dx is formed.
template <typename T, typename Op>
void batchnorm_activation_gradient(const Op& op, std::int64_t N, std::int64_t C, std::int64_t S, const T* x,
                                   const T* dz, const T* mean, const T* invstd, const T* gamma, const T* beta, T* g) {
#pragma omp parallel for collapse(2) schedule(static) if (N * C * S > batchnorm_parallel_threshold)
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t c = 0; c < C; ++c) {
      const T scale = invstd[c] * (gamma ? gamma[c] : T(1));
      const T shift = (beta ? beta[c] : T(0)) - mean[c] * scale;
      const std::int64_t at = (n * C + c) * S;
      for (std::int64_t s = 0; s < S; ++s) g[at + s] = dz[at + s] * op.derivative(x[at + s] * scale + shift, T(0));
    }
  }
}

/// Per-channel sum and sum of squares of x (N, C, S), in double: what SyncBatchNorm adds up over
/// the processes before it forms the mean and variance.
template <typename T>
void batchnorm_sums(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, double* sum, double* sum_squares) {
#pragma omp parallel for schedule(static) if (N * C * S > batchnorm_parallel_threshold)
  for (std::int64_t c = 0; c < C; ++c) {
    double a[detail::batchnorm_lanes] = {}, b[detail::batchnorm_lanes] = {};
    for (std::int64_t n = 0; n < N; ++n) {
      const T* p = x + (n * C + c) * S;
      detail::accumulate_lanes(S, a, [p](std::int64_t s) { return double(p[s]); });
      detail::accumulate_lanes(S, b, [p](std::int64_t s) { return double(p[s]) * double(p[s]); });
    }
    sum[c] = detail::add_lanes(a), sum_squares[c] = detail::add_lanes(b);
  }
}

/// batchnorm_backward in two halves, so that the sums can be added up over processes in between
/// (SyncBatchNorm): first sum dy and sum dy xhat per channel...
template <typename T>
void batchnorm_backward_sums(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, const T* dy, const T* mean,
                             const T* invstd, double* sum_dy, double* sum_dy_xhat) {
#pragma omp parallel for schedule(static) if (N * C * S > batchnorm_parallel_threshold)
  for (std::int64_t c = 0; c < C; ++c)
    detail::channel_gradient_sums(N, C, S, c, x, dy, double(mean[c]), double(invstd[c]), sum_dy[c], sum_dy_xhat[c]);
}

/// ...then dx = gamma invstd (dy - sum_dy / M - xhat sum_dy_xhat / M), M the number of values the
/// statistics were taken over (all processes').
template <typename T>
void batchnorm_backward_input(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, const T* dy, const T* mean,
                              const T* invstd, const T* gamma, double M, const double* sum_dy, const double* sum_dy_xhat,
                              T* dx) {
#pragma omp parallel for schedule(static) if (N * C * S > batchnorm_parallel_threshold)
  for (std::int64_t c = 0; c < C; ++c) {
    const double is = double(invstd[c]);
    detail::channel_input_gradient(N, C, S, c, x, dy, double(mean[c]), is, (gamma ? double(gamma[c]) : 1.0) * is,
                                   sum_dy[c] / M, sum_dy_xhat[c] / M, dx);
  }
}

}  // namespace kernels
}  // namespace headnet
