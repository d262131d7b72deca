// init:: functions with torch.nn.init's names: bounds and spreads of the random ones (they cannot
// match PyTorch's generator, so their distributions are checked), the gains, dirac_ as an identity
// convolution, and the whitening convolution's output covariance.
#include <catch2/catch.hpp>

#include <cmath>

#include <headnet/headnet.hpp>

using namespace headnet;

namespace {
struct Moments {
  double mean = 0, sd = 0, largest = 0;
};
Moments moments(const Tensor<double>& t) {
  Moments m;
  for (double v : t) m.mean += v, m.largest = std::max(m.largest, std::abs(v));
  m.mean /= double(t.numel());
  for (double v : t) m.sd += (v - m.mean) * (v - m.mean);
  m.sd = std::sqrt(m.sd / double(t.numel() - 1));
  return m;
}
}  // namespace

TEST_CASE("init:: fills, gains and the spreads of kaiming and xavier", "[init]") {
  Tensor<double> w({64, 32, 3, 3});  // fan_in 288, fan_out 576
  init::ones_(w);
  CHECK(moments(w).mean == 1.0);
  init::zeros_(w);
  CHECK(moments(w).largest == 0.0);
  init::constant_(w, 0.25);
  CHECK(w.at(3, 2, 1, 0) == 0.25);
  CHECK(init::calculate_gain("relu") == Approx(std::sqrt(2.0)));
  CHECK(init::calculate_gain("tanh") == Approx(5.0 / 3));
  CHECK(init::calculate_gain("leaky_relu", 0.2) == Approx(std::sqrt(2.0 / 1.04)));
  CHECK_THROWS_WITH(init::calculate_gain("swish"), Catch::StartsWith("init::calculate_gain: unsupported nonlinearity 'swish'"));

  Generator gen(1);
  init::kaiming_uniform_(w, 0.0, init::FanMode::fan_in, "relu", gen);
  const double bound = std::sqrt(2.0) * std::sqrt(3.0 / 288);
  Moments m = moments(w);
  CHECK(m.largest <= bound);
  CHECK(m.largest > 0.99 * bound);
  CHECK(m.sd == Approx(bound / std::sqrt(3.0)).epsilon(0.02));
  init::kaiming_normal_(w, 0.0, init::FanMode::fan_out, "relu", gen);
  m = moments(w);
  CHECK(std::abs(m.mean) < 0.003);
  CHECK(m.sd == Approx(std::sqrt(2.0 / 576)).epsilon(0.02));
  init::xavier_uniform_(w, 1.0, gen);
  CHECK(moments(w).largest <= std::sqrt(6.0 / (288 + 576)));
  CHECK(moments(w).sd == Approx(std::sqrt(6.0 / 864) / std::sqrt(3.0)).epsilon(0.02));
  init::xavier_normal_(w, 2.0, gen);
  CHECK(moments(w).sd == Approx(2.0 * std::sqrt(2.0 / 864)).epsilon(0.02));
  init::normal_(w, 3.0, 0.5, gen);
  CHECK(moments(w).mean == Approx(3.0).epsilon(0.001));
  CHECK(moments(w).sd == Approx(0.5).epsilon(0.02));
  Tensor<double> vector({5});
  CHECK_THROWS_WITH(init::kaiming_uniform_(vector), "init::kaiming_uniform_: needs a tensor with at least 2 dimensions, got (5)");
  // manual_seed fixes the default generator's draws.
  Tensor<double> a({8, 4}), b({8, 4});
  manual_seed(5);
  init::kaiming_normal_(a);
  manual_seed(5);
  init::kaiming_normal_(b);
  CHECK(std::equal(a.begin(), a.end(), b.begin()));
}

TEST_CASE("dirac_ makes a convolution the identity on its first channels", "[init]") {
  Conv2d<double> conv(3, 5, 3, 1, 1, false);
  init::dirac_(conv.weight());
  Generator gen(2);
  Tensor<double> x({2, 3, 6, 7});
  for (double& v : x) v = gen.uniform(-1, 1);
  const Tensor<double> y = conv.forward(x);
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 5; ++c)
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 7; ++j) CHECK(y.at(n, c, i, j) == (c < 3 ? x.at(n, c, i, j) : 0.0));
  Tensor<double> grouped({4, 2, 3, 3});
  init::dirac_(grouped, 2);  // outputs 0, 1 copy inputs 0, 1 of group 0; outputs 2, 3 those of group 1
  CHECK(grouped.at(0, 0, 1, 1) == 1.0);
  CHECK(grouped.at(3, 1, 1, 1) == 1.0);
  CHECK(moments(grouped).mean == Approx(4.0 / 72));
  Tensor<double> flat({4, 4});
  CHECK_THROWS_WITH(init::dirac_(flat), "init::dirac_: needs a square convolution weight (out, in, k, k), got (4, 4)");
}

TEST_CASE("whitening_ makes the patch covariance the identity, within eps", "[init][whitening]") {
  // Images whose neighbouring pixels and channels are strongly correlated, as photographs are.
  Generator gen(3);
  Tensor<float> images({40, 3, 12, 10});
  for (std::int64_t n = 0; n < 40; ++n)
    for (int i = 0; i < 12; ++i)
      for (int j = 0; j < 10; ++j) {
        const double base = gen.uniform(-1, 1) + 0.1 * (i + j);
        for (int c = 0; c < 3; ++c) images.at(n, c, i, j) = float(base * (1 + 0.3 * c) + 0.2 * gen.uniform(-1, 1));
      }
  const double eps = 5e-4;
  Conv2d<double> white(3, 24, 2, 1, 0, false);
  init::whitening_(white.weight(), images, eps);
  Tensor<double> x(images.shape());
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data()[i] = images.data()[i];
  const Tensor<double> y = white.forward(x);  // (40, 24, 11, 9)
  const std::int64_t plane = 11 * 9, count = 40 * plane;
  double worst_off_diagonal = 0, smallest_diagonal = 1, largest_diagonal = 0;
  for (int a = 0; a < 12; ++a)
    for (int b = 0; b < 12; ++b) {
      double sum = 0;
      for (std::int64_t n = 0; n < 40; ++n)
        for (std::int64_t p = 0; p < plane; ++p) sum += y.data()[(n * 24 + a) * plane + p] * y.data()[(n * 24 + b) * plane + p];
      const double cov = sum / double(count);  // uncentred, as the recipe's Sigma
      if (a == b) smallest_diagonal = std::min(smallest_diagonal, cov), largest_diagonal = std::max(largest_diagonal, cov);
      else worst_off_diagonal = std::max(worst_off_diagonal, std::abs(cov));
    }
  INFO("diagonal " << smallest_diagonal << " .. " << largest_diagonal << ", off-diagonal up to " << worst_off_diagonal);
  CHECK(worst_off_diagonal < 1e-9);
  CHECK(largest_diagonal < 1.0);           // lambda / (lambda + eps)
  CHECK(smallest_diagonal > 0.5);          // every direction has variance well above eps here
  for (std::int64_t i = 0; i < 12 * 12; ++i) CHECK(white.weight().data()[12 * 12 + i] == -white.weight().data()[i]);
  Tensor<double> wrong({10, 3, 2, 2});
  CHECK_THROWS_WITH(init::whitening_(wrong, images),
                    "init::whitening_: a 3-channel 2x2 patch has 12 values, so the weight needs 12 or 24 output channels, got 10");
}
