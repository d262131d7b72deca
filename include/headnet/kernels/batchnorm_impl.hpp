// headnet/kernels/batchnorm_impl.hpp: batch normalisation's loops (the formulas are at the top of
// kernels/batchnorm.hpp), written once in plain C++ for the compiler to vectorise. Not a header to
// include: kernels/batchnorm.hpp includes it once per instruction set (simd/for_each_isa.hpp),
// inside namespace batchnorm::<isa> with the compiler's target set to that instruction set, so that
// a binary built without -march still runs these loops on the CPU's widest vectors rather than on
// SSE2's (docs/benchmarks.md, session 21). The loops are static members of `Loops`, so that one
// dispatcher (batchnorm.hpp) hands a whole copy to each public function.
//
// Sums are accumulated in double, in 8 interleaved partial sums per channel (lane l takes the
// elements l, l + 8, ... of each image's plane, added up in a fixed order at the end): one running
// sum would wait on the adder's latency at every element, and the compiler may not reorder a
// floating-point sum itself; 8 independent ones become vector registers. Channels are split across
// threads, so the result does not depend on the thread count.
//
// (No include guard: included once per instruction set.)

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

// Each public function of kernels/batchnorm.hpp, same name, same contract.
struct Loops {
  template <typename T>
  static void batchnorm_statistics(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, T* mean, T* var) {
    const double M = double(N * S);
#pragma omp parallel for schedule(static) if (N * C * S > batchnorm_parallel_threshold)
    for (std::int64_t c = 0; c < C; ++c) {
      double sums[batchnorm_lanes] = {};
      for (std::int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        accumulate_lanes(S, sums, [p](std::int64_t s) { return double(p[s]); });
      }
      const double m = add_lanes(sums) / M;
      double squares[batchnorm_lanes] = {};
      for (std::int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        accumulate_lanes(S, squares, [p, m](std::int64_t s) { return (double(p[s]) - m) * (double(p[s]) - m); });
      }
      mean[c] = T(m);
      var[c] = T(add_lanes(squares) / M);
    }
  }

  template <typename T, typename Op>
  static void batchnorm_normalize(const Op& op, std::int64_t N, std::int64_t C, std::int64_t S, const T* x,
                                  const T* mean, const T* invstd, const T* gamma, const T* beta, T* z) {
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

  template <typename T>
  static void batchnorm_backward(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, const T* dy,
                                 const T* mean, const T* invstd, const T* gamma, bool batch_statistics, T* dx,
                                 T* grad_gamma, T* grad_beta) {
    const double M = double(N * S);
#pragma omp parallel for schedule(static) if (N * C * S > batchnorm_parallel_threshold)
    for (std::int64_t c = 0; c < C; ++c) {
      const double m = double(mean[c]), is = double(invstd[c]);
      double sum_dy = 0, sum_dy_xhat = 0;
      channel_gradient_sums(N, C, S, c, x, dy, m, is, sum_dy, sum_dy_xhat);
      if (grad_gamma) grad_gamma[c] += T(sum_dy_xhat);
      if (grad_beta) grad_beta[c] += T(sum_dy);
      if (!dx) continue;
      const double scale = (gamma ? double(gamma[c]) : 1.0) * is;
      channel_input_gradient(N, C, S, c, x, dy, m, is, scale, batch_statistics ? sum_dy / M : 0.0,
                             batch_statistics ? sum_dy_xhat / M : 0.0, dx);
    }
  }

  // Per channel, one sweep forms g and its two sums while an image's plane is in cache, a second
  // writes dx.
  template <typename T, typename Op>
  static void batchnorm_backward(const Op& op, std::int64_t N, std::int64_t C, std::int64_t S, const T* x,
                                 const T* dz, const T* mean, const T* invstd, const T* gamma, const T* beta,
                                 bool batch_statistics, T* scratch, T* dx, T* grad_gamma, T* grad_beta) {
    const double M = double(N * S);
#pragma omp parallel for schedule(static) if (N * C * S > batchnorm_parallel_threshold)
    for (std::int64_t c = 0; c < C; ++c) {
      const T scale = invstd[c] * (gamma ? gamma[c] : T(1));
      const T shift = (beta ? beta[c] : T(0)) - mean[c] * scale;
      const double m = double(mean[c]), is = double(invstd[c]);
      double a[batchnorm_lanes] = {}, b[batchnorm_lanes] = {};
      for (std::int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        const T* gz = dz + (n * C + c) * S;
        T* g = scratch + (n * C + c) * S;
        for (std::int64_t s = 0; s < S; ++s) g[s] = gz[s] * op.derivative(p[s] * scale + shift, T(0));
        accumulate_lanes(S, a, [g](std::int64_t s) { return double(g[s]); });
        accumulate_lanes(S, b, [p, g, m, is](std::int64_t s) { return double(g[s]) * (double(p[s]) - m) * is; });
      }
      const double sum_dy = add_lanes(a), sum_dy_xhat = add_lanes(b);
      if (grad_gamma) grad_gamma[c] += T(sum_dy_xhat);
      if (grad_beta) grad_beta[c] += T(sum_dy);
      if (!dx) continue;
      channel_input_gradient(N, C, S, c, x, scratch, m, is, (gamma ? double(gamma[c]) : 1.0) * is,
                             batch_statistics ? sum_dy / M : 0.0, batch_statistics ? sum_dy_xhat / M : 0.0, dx);
    }
  }

  template <typename T, typename Op>
  static void batchnorm_activation_gradient(const Op& op, std::int64_t N, std::int64_t C, std::int64_t S, const T* x,
                                            const T* dz, const T* mean, const T* invstd, const T* gamma,
                                            const T* beta, T* g) {
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

  template <typename T>
  static void batchnorm_sums(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, double* sum,
                             double* sum_squares) {
#pragma omp parallel for schedule(static) if (N * C * S > batchnorm_parallel_threshold)
    for (std::int64_t c = 0; c < C; ++c) {
      double a[batchnorm_lanes] = {}, b[batchnorm_lanes] = {};
      for (std::int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        accumulate_lanes(S, a, [p](std::int64_t s) { return double(p[s]); });
        accumulate_lanes(S, b, [p](std::int64_t s) { return double(p[s]) * double(p[s]); });
      }
      sum[c] = add_lanes(a), sum_squares[c] = add_lanes(b);
    }
  }

  template <typename T>
  static void batchnorm_backward_sums(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, const T* dy,
                                      const T* mean, const T* invstd, double* sum_dy, double* sum_dy_xhat) {
#pragma omp parallel for schedule(static) if (N * C * S > batchnorm_parallel_threshold)
    for (std::int64_t c = 0; c < C; ++c)
      channel_gradient_sums(N, C, S, c, x, dy, double(mean[c]), double(invstd[c]), sum_dy[c], sum_dy_xhat[c]);
  }

  template <typename T>
  static void batchnorm_backward_input(std::int64_t N, std::int64_t C, std::int64_t S, const T* x, const T* dy,
                                       const T* mean, const T* invstd, const T* gamma, double M,
                                       const double* sum_dy, const double* sum_dy_xhat, T* dx) {
#pragma omp parallel for schedule(static) if (N * C * S > batchnorm_parallel_threshold)
    for (std::int64_t c = 0; c < C; ++c) {
      const double is = double(invstd[c]);
      channel_input_gradient(N, C, S, c, x, dy, double(mean[c]), is, (gamma ? double(gamma[c]) : 1.0) * is,
                             sum_dy[c] / M, sum_dy_xhat[c] / M, dx);
    }
  }
};
