// headnet/core/init.hpp: parameter initialisation, with torch.nn.init's names and formulas.
//
// Fans are PyTorch's (_calculate_fan_in_and_fan_out): for a weight (out, in, k, k) or (out, in),
// fan_in = in * k * k and fan_out = out * k * k. gain(nonlinearity, a) is calculate_gain's: 1 for
// linear and sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + a^2)) for leaky_relu.
//   zeros_, ones_, constant_       fill
//   uniform_(low, high), normal_(mean, std)
//   kaiming_uniform_(a, mode, nonlinearity)   U(-b, b), b = gain sqrt(3 / fan)
//   kaiming_normal_(a, mode, nonlinearity)    N(0, gain / sqrt(fan))
//   xavier_uniform_(gain)                     U(-b, b), b = gain sqrt(6 / (fan_in + fan_out))
//   xavier_normal_(gain)                      N(0, gain sqrt(2 / (fan_in + fan_out)))
//   dirac_(groups)                            identity convolution: weight[g*out_g + i, i, centre] = 1
//   whitening_(images, eps)                   the fast CIFAR-10 recipe's patch-whitening convolution
// Random draws come from a Generator (default_generator() unless given), so manual_seed fixes them.
//
// PyTorch's Conv2d and Linear draw weights with kaiming_uniform_(a = sqrt(5)) and biases from
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (pytorch_default). With a = sqrt(5) the kaiming bound
// gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)), is also exactly 1/sqrt(fan_in).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include <Eigen/Eigenvalues>

#include "headnet/core/error.hpp"
#include "headnet/core/random.hpp"
#include "headnet/core/tensor.hpp"

namespace headnet {
namespace init {

/// Fills t with draws from U(low, high).
template <typename T>
void uniform(Tensor<T>& t, double low, double high, Generator& gen) {
  for (T& v : t) v = static_cast<T>(gen.uniform(low, high));
}

/// Fills t from PyTorch's kaiming_uniform with negative slope `a` and the given fan-in.
template <typename T>
void kaiming_uniform(Tensor<T>& t, std::int64_t fan_in, double a, Generator& gen) {
  const double gain = std::sqrt(2.0 / (1.0 + a * a));
  const double bound = fan_in > 0 ? gain * std::sqrt(3.0 / double(fan_in)) : 0.0;
  uniform(t, -bound, bound, gen);
}

/// The weight and bias initialisation of PyTorch's Conv2d and Linear.
template <typename T>
void pytorch_default(Tensor<T>& weight, Tensor<T>* bias, std::int64_t fan_in, Generator& gen) {
  kaiming_uniform(weight, fan_in, std::sqrt(5.0), gen);
  if (bias) {
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(double(fan_in)) : 0.0;
    uniform(*bias, -bound, bound, gen);
  }
}

// ---- torch.nn.init ----

/// Which fan the Kaiming initialisations scale by.
enum class FanMode { fan_in, fan_out };

/// Fan-in and fan-out of a weight tensor, as torch.nn.init computes them.
struct Fans {
  std::int64_t in = 0;  ///< inputs per output unit of the weight
  std::int64_t out = 0;  ///< outputs per input unit of the weight
};
/// The fans of a weight of at least two dimensions; `who` names the caller in errors.
template <typename T>
Fans fans(const Tensor<T>& t, const char* who) {
  if (t.rank() < 2) {
    throw ShapeError(std::string("init::") + who + ": needs a tensor with at least 2 dimensions, got " + t.shape().str());
  }
  const std::int64_t receptive = t.size(0) && t.size(1) ? t.numel() / (t.size(0) * t.size(1)) : 0;
  return {t.size(1) * receptive, t.size(0) * receptive};
}

/// torch.nn.init.calculate_gain for "linear", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu".
inline double calculate_gain(const std::string& nonlinearity, double a = 0.01) {
  if (nonlinearity == "linear" || nonlinearity == "conv2d" || nonlinearity == "sigmoid") return 1.0;
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1.0 + a * a));
  throw Error("init::calculate_gain: unsupported nonlinearity '" + nonlinearity +
              "' (linear, conv2d, sigmoid, tanh, relu or leaky_relu)");
}

/// Fills t with `value`.
template <typename T>
void constant_(Tensor<T>& t, double value) {
  t.fill(T(value));
}
/// Fills t with zeros.
template <typename T>
void zeros_(Tensor<T>& t) {
  t.fill(T(0));
}
/// Fills t with ones.
template <typename T>
void ones_(Tensor<T>& t) {
  t.fill(T(1));
}
/// Fills t from U(low, high), as torch.nn.init.uniform_.
template <typename T>
void uniform_(Tensor<T>& t, double low = 0, double high = 1, Generator& gen = default_generator()) {
  uniform(t, low, high, gen);
}
/// Fills t from N(mean, std^2), as torch.nn.init.normal_.
template <typename T>
void normal_(Tensor<T>& t, double mean = 0, double std = 1, Generator& gen = default_generator()) {
  for (T& v : t) v = static_cast<T>(mean + std * gen.normal());
}

/// Kaiming (He) uniform initialisation, as torch.nn.init.kaiming_uniform_.
template <typename T>
void kaiming_uniform_(Tensor<T>& t, double a = 0, FanMode mode = FanMode::fan_in,
                      const std::string& nonlinearity = "leaky_relu", Generator& gen = default_generator()) {
  const Fans f = fans(t, "kaiming_uniform_");
  const std::int64_t fan = mode == FanMode::fan_in ? f.in : f.out;
  const double bound = fan > 0 ? calculate_gain(nonlinearity, a) * std::sqrt(3.0 / double(fan)) : 0.0;
  uniform(t, -bound, bound, gen);
}
/// Kaiming (He) normal initialisation, as torch.nn.init.kaiming_normal_.
template <typename T>
void kaiming_normal_(Tensor<T>& t, double a = 0, FanMode mode = FanMode::fan_in,
                     const std::string& nonlinearity = "leaky_relu", Generator& gen = default_generator()) {
  const Fans f = fans(t, "kaiming_normal_");
  const std::int64_t fan = mode == FanMode::fan_in ? f.in : f.out;
  normal_(t, 0.0, fan > 0 ? calculate_gain(nonlinearity, a) / std::sqrt(double(fan)) : 0.0, gen);
}
/// Xavier (Glorot) uniform initialisation, as torch.nn.init.xavier_uniform_.
template <typename T>
void xavier_uniform_(Tensor<T>& t, double gain = 1.0, Generator& gen = default_generator()) {
  const Fans f = fans(t, "xavier_uniform_");
  const double bound = gain * std::sqrt(6.0 / double(std::max<std::int64_t>(1, f.in + f.out)));
  uniform(t, -bound, bound, gen);
}
/// Xavier (Glorot) normal initialisation, as torch.nn.init.xavier_normal_.
template <typename T>
void xavier_normal_(Tensor<T>& t, double gain = 1.0, Generator& gen = default_generator()) {
  const Fans f = fans(t, "xavier_normal_");
  normal_(t, 0.0, gain * std::sqrt(2.0 / double(std::max<std::int64_t>(1, f.in + f.out))), gen);
}

/// The identity convolution: a conv weight (out, in, k, k) that copies input channel i to output
/// channel i of each group (the first min(out / groups, in) of them) through the kernel's centre.
template <typename T>
void dirac_(Tensor<T>& t, int groups = 1) {
  if (t.rank() != 4 || t.size(2) != t.size(3)) {
    throw ShapeError("init::dirac_: needs a square convolution weight (out, in, k, k), got " + t.shape().str());
  }
  if (groups < 1 || t.size(0) % groups) {
    throw ShapeError("init::dirac_: out_channels " + std::to_string(t.size(0)) + " are not divisible by groups " +
                     std::to_string(groups));
  }
  t.zero();
  const std::int64_t out_per_group = t.size(0) / groups, in = t.size(1), k = t.size(2);
  for (int g = 0; g < groups; ++g)
    for (std::int64_t i = 0; i < std::min(out_per_group, in); ++i) t.at(g * out_per_group + i, i, k / 2, k / 2) = T(1);
}

/// A convolution that whitens the k x k patches of `images` (N, C, H, W): with Sigma = P^T P / n the
/// uncentred covariance of all n stride-1 patches (each flattened channel, row, column, as a weight
/// row is) and (lambda_i, v_i) its eigenpairs, largest first, filter i is v_i / sqrt(lambda_i + eps),
/// so the outputs' covariance is diag(lambda / (lambda + eps)), about the identity. weight is
/// (d, C, k, k) or (2d, C, k, k), d = C k k; the second half holds the negated filters (the recipe
/// keeps both signs for the GELU after it). Solved with Eigen's SelfAdjointEigenSolver in double.
template <typename T>
void whitening_(Tensor<T>& weight, const Tensor<float>& images, double eps = 5e-4) {
  if (weight.rank() != 4 || weight.size(2) != weight.size(3)) {
    throw ShapeError("init::whitening_: needs a square convolution weight (out, in, k, k), got " + weight.shape().str());
  }
  const std::int64_t C = weight.size(1), k = weight.size(2), d = C * k * k;
  if (weight.size(0) != d && weight.size(0) != 2 * d) {
    throw ShapeError("init::whitening_: a " + std::to_string(C) + "-channel " + std::to_string(k) + "x" + std::to_string(k) +
                     " patch has " + std::to_string(d) + " values, so the weight needs " + std::to_string(d) + " or " +
                     std::to_string(2 * d) + " output channels, got " + std::to_string(weight.size(0)));
  }
  if (images.rank() != 4 || images.size(1) != C || images.size(2) < k || images.size(3) < k || images.size(0) < 1) {
    throw ShapeError("init::whitening_: needs images (N, " + std::to_string(C) + ", H >= " + std::to_string(k) +
                     ", W >= " + std::to_string(k) + "), got " + images.shape().str());
  }
  const std::int64_t N = images.size(0), H = images.size(2), W = images.size(3);
  Eigen::MatrixXd sigma = Eigen::MatrixXd::Zero(d, d);
  Eigen::VectorXd patch(d);
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t i = 0; i + k <= H; ++i)
      for (std::int64_t j = 0; j + k <= W; ++j) {
        std::int64_t e = 0;
        for (std::int64_t c = 0; c < C; ++c)
          for (std::int64_t r = 0; r < k; ++r)
            for (std::int64_t s = 0; s < k; ++s) patch[e++] = images.data()[((n * C + c) * H + i + r) * W + j + s];
        sigma.selfadjointView<Eigen::Lower>().rankUpdate(patch);
      }
  sigma = sigma.selfadjointView<Eigen::Lower>();
  sigma /= double(N * (H - k + 1) * (W - k + 1));
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(sigma);
  if (solver.info() != Eigen::Success) throw Error("init::whitening_: the eigen-decomposition did not converge");
  for (std::int64_t f = 0; f < d; ++f) {
    const std::int64_t index = d - 1 - f;  // Eigen sorts eigenvalues ascending
    const double scale = 1.0 / std::sqrt(std::max(0.0, solver.eigenvalues()[index]) + eps);
    for (std::int64_t e = 0; e < d; ++e) {
      weight.data()[f * d + e] = T(solver.eigenvectors()(e, index) * scale);
      if (weight.size(0) == 2 * d) weight.data()[(f + d) * d + e] = T(-solver.eigenvectors()(e, index) * scale);
    }
  }
}

}  // namespace init
}  // namespace headnet
