// Every layer and the loss against central finite differences (see gradient_check.hpp).
//
// The tables cover kernel 1, 3 and 5, stride 1 and 2, padding 0, 1 and 2, odd spatial sizes,
// batch 1 and 3 and one or several channels. Each row runs on one thread and on two, because the
// convolution kernel takes different paths (one image per GEMM with Eigen threading, or the batch
// split across threads with partial weight gradients).
#include <catch2/catch.hpp>

#include <sstream>

#include "gradient_check.hpp"

using namespace headnet;
using namespace headnet_test;

namespace {

constexpr double tolerance = 1e-6;

struct ConvRow {
  int c_in, c_out, kernel, stride, padding, n, h, w;
  bool bias;
};

}  // namespace

TEST_CASE("Conv2d backward matches finite differences", "[gradient][conv2d]") {
  const ConvRow table[] = {
      // c_in c_out  K  S  P  N   H   W  bias
      {1, 1, 1, 1, 0, 1, 5, 5, true},    {1, 2, 1, 2, 0, 3, 7, 6, true},  {3, 2, 3, 1, 1, 3, 7, 6, true},
      {2, 4, 3, 2, 1, 1, 9, 7, true},    {3, 3, 3, 1, 0, 3, 5, 5, false}, {2, 3, 5, 1, 2, 3, 7, 9, true},
      {4, 2, 5, 2, 2, 1, 11, 8, true},   {3, 6, 5, 1, 0, 3, 9, 9, true},  {1, 3, 3, 2, 2, 3, 5, 7, true},
      {2, 2, 5, 2, 0, 4, 11, 11, true},  {5, 1, 3, 1, 2, 3, 4, 3, true},
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& row : table) {
      Generator gen(row.c_in * 1000 + row.kernel * 100 + row.stride * 10 + row.padding);
      Conv2d<double> conv(row.c_in, row.c_out, row.kernel, row.stride, row.padding, row.bias);
      conv.reset_parameters(gen);
      std::ostringstream what;
      what << conv.describe() << " on (" << row.n << ", " << row.c_in << ", " << row.h << ", " << row.w << "), "
           << threads << " threads";
      require_good(check_gradients(conv, random_tensor({row.n, row.c_in, row.h, row.w}, gen), gen), what.str());
    }
  }
  set_num_threads(2);
}

TEST_CASE("A Conv2d whose weight is frozen still trains its bias", "[gradient][conv2d][requires_grad]") {
  // The fast recipe's whitening convolution: its weight is fixed, its bias trained. The kernels
  // once summed the bias gradient only beside the weight gradient, so such a bias got none.
  struct Row {
    int c_in, c_out, kernel, padding, n, h, w;
  };
  const Row rows[] = {{3, 24, 2, 0, 3, 9, 9}, {4, 8, 3, 1, 2, 10, 10}, {2, 3, 3, 1, 1, 6, 5}};
  SECTION("finite differences in double") {
    for (const Row& row : rows) {
      Generator gen(row.c_out * 10 + row.kernel);
      Conv2d<double> conv(row.c_in, row.c_out, row.kernel, 1, row.padding, true);
      conv.reset_parameters(gen);
      conv.set_requires_grad("weight", false);
      const Tensor<double> x = random_tensor({row.n, row.c_in, row.h, row.w}, gen);
      const Tensor<double> r = random_tensor(conv.output_shape(x.shape()), gen);
      conv.grad_bias().zero();
      conv.forward(x);
      conv.backward(r);
      for (std::int64_t c = 0; c < row.c_out; ++c) {
        const double saved = conv.bias().data()[c], h = 1e-6;
        conv.bias().data()[c] = saved + h;
        const double plus = dot(conv.forward(x), r);
        conv.bias().data()[c] = saved - h;
        const double minus = dot(conv.forward(x), r);
        conv.bias().data()[c] = saved;
        INFO(conv.describe() << ", channel " << c);
        CHECK(conv.grad_bias().data()[c] == Approx((plus - minus) / (2 * h)).epsilon(1e-6));
      }
      for (double g : conv.grad_weight()) CHECK(g == 0.0);  // frozen: not computed
    }
  }
  SECTION("every kernel path and a fused ReLU, against the same layer with its weight trained") {
    using kernels::ConvAlgorithm;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      for (const Row& row : rows)
        for (ConvAlgorithm algorithm : {ConvAlgorithm::automatic, ConvAlgorithm::im2col_gemm, ConvAlgorithm::direct,
                                        ConvAlgorithm::winograd_4x4})
          for (bool relu : {false, true}) {
            Generator gen(row.c_out * 10 + row.kernel);
            Conv2d<float> trained(row.c_in, row.c_out, row.kernel, 1, row.padding, true);
            trained.reset_parameters(gen);
            Conv2d<float> frozen(row.c_in, row.c_out, row.kernel, 1, row.padding, true);
            frozen.load_state_dict(trained.state_dict());
            frozen.set_requires_grad("weight", false);
            Tensor<float> x({row.n, row.c_in, row.h, row.w}), dy(trained.output_shape(x.shape()));
            for (float& v : x) v = float(gen.uniform(-1, 1));
            for (float& v : dy) v = float(gen.uniform(-1, 1));
            float largest = 0;
            for (Conv2d<float>* conv : {&trained, &frozen}) {
              conv->set_algorithm(algorithm);
              if (relu) conv->set_activation(kernels::ConvActivation::relu);
              conv->grad_bias().zero();
              conv->grad_weight().zero();
              conv->forward(x);
              conv->backward(dy);
            }
            INFO(frozen.describe() << ", " << threads << " threads, algorithm " << int(algorithm) << (relu ? ", ReLU" : ""));
            for (std::int64_t c = 0; c < row.c_out; ++c) {
              CHECK(frozen.grad_bias().data()[c] == Approx(trained.grad_bias().data()[c]).margin(1e-4));
              largest = std::max(largest, std::abs(frozen.grad_bias().data()[c]));
            }
            CHECK(largest > 0.1f);
            for (float g : frozen.grad_weight()) CHECK(g == 0.0f);
          }
    }
    set_num_threads(2);
  }
}

TEST_CASE("MaxPool2d backward matches finite differences", "[gradient][maxpool2d]") {
  struct Row {
    int kernel, stride, n, c, h, w;
  };
  const Row table[] = {{2, 2, 1, 1, 4, 4}, {2, 2, 3, 2, 7, 5}, {3, 2, 3, 3, 9, 9},
                       {3, 1, 1, 2, 5, 6}, {1, 1, 3, 1, 3, 3}, {2, 1, 3, 2, 5, 5}};
  for (const auto& row : table) {
    Generator gen(row.kernel * 10 + row.stride);
    MaxPool2d<double> pool(row.kernel, row.stride);
    std::ostringstream what;
    what << pool.describe() << " on (" << row.n << ", " << row.c << ", " << row.h << ", " << row.w << ")";
    require_good(check_gradients(pool, kink_free_input({row.n, row.c, row.h, row.w}, gen), gen), what.str());
  }
}

TEST_CASE("Linear backward matches finite differences", "[gradient][linear]") {
  struct Row {
    int in, out, n;
    bool bias;
  };
  const Row table[] = {{1, 1, 1, true}, {5, 3, 1, true}, {7, 4, 3, true}, {20, 10, 3, true}, {6, 5, 3, false}};
  for (const auto& row : table) {
    Generator gen(row.in * 100 + row.out);
    Linear<double> linear(row.in, row.out, row.bias);
    linear.reset_parameters(gen);
    require_good(check_gradients(linear, random_tensor({row.n, row.in}, gen), gen), linear.describe());
  }
}

TEST_CASE("ReLU and Flatten backward match finite differences", "[gradient][relu][flatten]") {
  Generator gen(7);
  for (Shape shape : {Shape{1, 7}, Shape{3, 2, 5, 5}, Shape{3, 1, 3, 4}}) {
    ReLU<double> relu;
    require_good(check_gradients(relu, kink_free_input(shape, gen), gen), "ReLU on " + shape.str());
    Flatten<double> flatten;
    require_good(check_gradients(flatten, random_tensor(shape, gen), gen), "Flatten on " + shape.str());
  }
}

TEST_CASE("A whole tutorial-shaped network backpropagates correctly", "[gradient][sequential]") {
  // With the ReLUs fused into the convs (Sequential's default) and without.
  for (bool fusion : {true, false}) {
  INFO("fusion " << fusion);
  Generator gen(11);
  Sequential<double> net;
  net.set_fusion(fusion);
  net.add("conv1", Conv2d<double>(3, 4, 3, 1, 1));
  net.add(ReLU<double>());
  net.add(MaxPool2d<double>(2));
  net.add("conv2", Conv2d<double>(4, 5, 3, 2, 0));
  net.add(ReLU<double>());
  net.add(Flatten<double>());
  net.add("fc1", Linear<double>(5 * 2 * 2, 6));
  net.add(ReLU<double>());
  net.add("fc2", Linear<double>(6, 3));
  net.reset_parameters(gen);
  net.set_needs_input_grad(true);
  CHECK(net.is_fused(1) == fusion);
  CHECK(net.is_fused(4) == fusion);
  CHECK_FALSE(net.is_fused(7));  // a ReLU after a Linear stays a layer of its own
  require_good(check_gradients(net, random_tensor({3, 3, 10, 10}, gen), gen), "Sequential");
  }
}

TEST_CASE("Max-pools fused into the Conv2d before them backpropagate correctly", "[gradient][sequential][maxpool2d]") {
  Generator gen(12);
  Sequential<double> net;
  net.add("conv1", Conv2d<double>(3, 4, 3, 1, 1));
  net.add(MaxPool2d<double>(2));  // 10x10 -> 5x5
  net.add("conv2", Conv2d<double>(4, 5, 3, 1, 1));
  net.add(MaxPool2d<double>(2));  // 5x5 -> 2x2: the last row and column get no gradient
  net.add(Flatten<double>());
  net.add("fc", Linear<double>(5 * 2 * 2, 3));
  net.reset_parameters(gen);
  net.set_needs_input_grad(true);
  CHECK(net.is_fused(1));
  CHECK(net.is_fused(3));
  require_good(check_gradients(net, random_tensor({3, 3, 10, 10}, gen), gen), "conv -> pool, fused");
}

TEST_CASE("CrossEntropyLoss gradient matches finite differences", "[gradient][loss]") {
  Generator gen(3);
  for (int classes : {2, 10}) {
    for (int n : {1, 3}) {
      Tensor<double> logits = random_tensor({n, classes}, gen, -3, 3);
      std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
      for (auto& l : labels) l = static_cast<std::int32_t>(gen.below(std::uint64_t(classes)));
      CrossEntropyLoss<double> loss;
      loss.forward(logits, labels);
      const Tensor<double> analytic = loss.backward().clone();
      std::vector<double> numeric;
      const double h = 1e-6;
      for (std::int64_t i = 0; i < logits.numel(); ++i) {
        const double saved = logits.data()[i];
        logits.data()[i] = saved + h;
        const double plus = loss.forward(logits, labels);
        logits.data()[i] = saved - h;
        const double minus = loss.forward(logits, labels);
        logits.data()[i] = saved;
        numeric.push_back((plus - minus) / (2 * h));
      }
      std::vector<double> a(analytic.begin(), analytic.end());
      INFO("classes " << classes << ", batch " << n);
      CHECK_FALSE(all_zero(a));
      CHECK(relative_error(a, numeric) < tolerance);
    }
  }
}

TEST_CASE("The checker itself fails a wrong or empty backward", "[gradient][checker]") {
  // A layer that claims y = 2x but back-propagates dx = dy: the checker must reject it.
  struct WrongDouble : Layer<double> {
    Tensor<double> out;
    std::string type() const override { return "WrongDouble"; }
    Shape output_shape(const Shape& s) const override { return s; }
    Tensor<double> forward(const Tensor<double>& x) override {
      out = x.clone();
      for (double& v : out) v *= 2;
      return out;
    }
    Tensor<double> backward(const Tensor<double>& dy) override { return dy.clone(); }
  };
  // A layer that outputs a constant: both gradients are zero, which must not count as a pass.
  struct Constant : Layer<double> {
    Tensor<double> out;
    std::string type() const override { return "Constant"; }
    Shape output_shape(const Shape& s) const override { return s; }
    Tensor<double> forward(const Tensor<double>& x) override {
      out = Tensor<double>(x.shape(), 1.0);
      return out;
    }
    Tensor<double> backward(const Tensor<double>& dy) override { return Tensor<double>(dy.shape()); }
  };
  Generator gen(5);
  WrongDouble wrong;
  CHECK(check_gradients(wrong, random_tensor({2, 3}, gen), gen).worst_error > 0.1);
  Constant constant;
  CHECK(check_gradients(constant, random_tensor({2, 3}, gen), gen).some_gradient_all_zero);
}
