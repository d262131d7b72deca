// Forward values (and the backward values PyTorch computes for the same data) against independent
// references: small cases computed by hand, the direct-loop convolution, and PyTorch 1.13's outputs
// stored in tests/data/pytorch_reference.json by tests/reference/make_pytorch_reference.py.
#include <catch2/catch.hpp>

#include <cmath>

#include "gradient_check.hpp"
#include "reference_data.hpp"

using namespace headnet;
using namespace headnet_test;

constexpr double tight = 1e-10;

TEST_CASE("Conv2d forward by hand", "[forward][conv2d]") {
  // x = 1..9 as a 3x3 image, 2x2 kernel of ones: each output is the sum of a 2x2 window.
  Conv2d<double> conv(1, 1, 2);
  conv.weight().fill(1);
  conv.bias().fill(0.5);
  auto x = Tensor<double>::from_vector({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  auto y = conv.forward(x);
  REQUIRE(y.shape() == Shape{1, 1, 2, 2});
  CHECK(y(0, 0, 0, 0) == 12.5);
  CHECK(y(0, 0, 0, 1) == 16.5);
  CHECK(y(0, 0, 1, 0) == 24.5);
  CHECK(y(0, 0, 1, 1) == 28.5);

  // Padding 1, stride 2, 3x3 kernel with a single 1 in the centre: picks x at (0,0),(0,2),(2,0),(2,2).
  Conv2d<double> centre(1, 1, 3, 2, 1, false);
  centre.weight().zero();
  centre.weight()(0, 0, 1, 1) = 1;
  auto z = centre.forward(x);
  REQUIRE(z.shape() == Shape{1, 1, 2, 2});
  CHECK(z(0, 0, 0, 0) == 1);
  CHECK(z(0, 0, 0, 1) == 3);
  CHECK(z(0, 0, 1, 0) == 7);
  CHECK(z(0, 0, 1, 1) == 9);
  // Corner of the kernel: (0,0) tap reads the padding for the first output, x(1,1)=5 for the last.
  centre.weight().zero();
  centre.weight()(0, 0, 0, 0) = 1;
  z = centre.forward(x);
  CHECK(z(0, 0, 0, 0) == 0);
  CHECK(z(0, 0, 1, 1) == 5);
}

TEST_CASE("Conv2d fast kernel equals the direct loops", "[forward][conv2d]") {
  struct Row {
    int c_in, c_out, k, s, p, n, h, w;
  };
  for (Row r : {Row{3, 6, 5, 1, 0, 4, 32, 32}, Row{6, 16, 5, 1, 0, 5, 14, 14}, Row{8, 8, 3, 1, 1, 3, 16, 16},
                Row{3, 4, 3, 2, 2, 2, 9, 13}, Row{2, 3, 1, 2, 0, 7, 5, 5}}) {
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      Generator gen(r.c_in + r.k);
      Conv2d<float> conv(r.c_in, r.c_out, r.k, r.s, r.p);
      conv.reset_parameters(gen);
      Tensor<float> x({r.n, r.c_in, r.h, r.w});
      for (float& v : x) v = float(gen.uniform(-1, 1));
      Tensor<float> y = conv.forward(x);
      Tensor<float> expected(y.shape());
      kernels::ConvGeometry g{r.c_in, r.h, r.w, r.k, r.s, r.p};
      kernels::conv2d_forward_reference(g, r.n, r.c_out, x.data(), conv.weight().data(), conv.bias().data(),
                                        expected.data());
      double worst = 0;
      for (std::int64_t i = 0; i < y.numel(); ++i)
        worst = std::max(worst, double(std::abs(y.data()[i] - expected.data()[i])));
      INFO(conv.describe() << " batch " << r.n << ", " << threads << " threads");
      CHECK(worst < 1e-4);
    }
  }
  set_num_threads(2);
}

TEST_CASE("MaxPool2d, Linear, ReLU and the loss by hand", "[forward]") {
  MaxPool2d<double> pool(2);
  auto x = Tensor<double>::from_vector({1, 1, 3, 4}, {1, 5, 2, 0, 3, 4, 8, 7, 9, 9, 9, 9});
  auto y = pool.forward(x);  // floor mode: the third row is dropped
  REQUIRE(y.shape() == Shape{1, 1, 1, 2});
  CHECK(y(0, 0, 0, 0) == 5);
  CHECK(y(0, 0, 0, 1) == 8);
  auto dx = pool.backward(Tensor<double>::from_vector({1, 1, 1, 2}, {10, 20}));
  CHECK(dx(0, 0, 0, 1) == 10);
  CHECK(dx(0, 0, 1, 2) == 20);
  CHECK(dx(0, 0, 0, 0) == 0);

  Linear<double> linear(2, 2);
  linear.weight() = Tensor<double>::from_vector({2, 2}, {1, 2, 3, 4}).clone();
  std::copy_n(std::vector<double>{1, 2, 3, 4}.begin(), 4, linear.weight().data());
  linear.bias().data()[0] = 0.5;
  linear.bias().data()[1] = -1;
  auto out = linear.forward(Tensor<double>::from_vector({1, 2}, {1, 1}));
  CHECK(out(0, 0) == 3.5);
  CHECK(out(0, 1) == 6);

  ReLU<double> relu;
  auto r = relu.forward(Tensor<double>::from_vector({4}, {-1, 0, 2, -0.5}));
  CHECK(std::vector<double>(r.begin(), r.end()) == std::vector<double>{0, 0, 2, 0});

  CrossEntropyLoss<double> loss;
  CHECK(loss.forward(Tensor<double>::from_vector({1, 2}, {0, 0}), std::vector<std::int32_t>{0}) ==
        Approx(std::log(2.0)).epsilon(1e-15));
  // Logits of magnitude 1000: log-sum-exp of (1000, -1000) is 1000 + log(1 + e^-2000) = 1000.
  CHECK(loss.forward(Tensor<double>::from_vector({1, 2}, {1000, -1000}), std::vector<std::int32_t>{1}) ==
        Approx(2000.0));
  auto g = loss.backward();
  CHECK(g(0, 0) == Approx(1.0));
  CHECK(g(0, 1) == Approx(-1.0));
  float big = CrossEntropyLoss<float>().forward(Tensor<float>::from_vector({2, 3}, {1000, 999, -1000, 0, 0, 0}),
                                                std::vector<std::int32_t>{1, 2});
  CHECK(std::isfinite(big));
  CHECK(big == Approx((1.0 + std::log(1 + std::exp(-1.0)) + std::log(3.0)) / 2).epsilon(1e-5));
}

TEST_CASE("Conv2d matches PyTorch", "[forward][pytorch][conv2d]") {
  for (const auto& c : pytorch_reference()["conv"]) {
    const bool bias = c["bias"].get<bool>();
    Conv2d<double> conv(c["in_channels"], c["out_channels"], c["kernel_size"], c["stride"], c["padding"], bias);
    copy_into(conv.weight(), c["weight"]);
    if (bias) copy_into(conv.bias(), c["bias_values"]);
    conv.grad_weight().zero();
    if (bias) conv.grad_bias().zero();
    INFO(conv.describe());
    auto x = tensor_from(c["x"], shape_from(c["input_shape"]));
    CHECK(max_difference(conv.forward(x), c["y"]) < tight);
    CHECK(max_difference(conv.backward(tensor_from(c["dy"], shape_from(c["output_shape"]))), c["dx"]) < tight);
    CHECK(max_difference(conv.grad_weight(), c["grad_weight"]) < tight);
    if (bias) CHECK(max_difference(conv.grad_bias(), c["grad_bias"]) < tight);
  }
}

TEST_CASE("MaxPool2d, Linear and CrossEntropyLoss match PyTorch", "[forward][pytorch]") {
  for (const auto& c : pytorch_reference()["pool"]) {
    MaxPool2d<double> pool(c["kernel_size"], c["stride"]);
    INFO(pool.describe());
    CHECK(max_difference(pool.forward(tensor_from(c["x"], shape_from(c["input_shape"]))), c["y"]) < tight);
    CHECK(max_difference(pool.backward(tensor_from(c["dy"], shape_from(c["output_shape"]))), c["dx"]) < tight);
  }
  for (const auto& c : pytorch_reference()["linear"]) {
    const int n = c["n"], in = c["in_features"], out = c["out_features"];
    Linear<double> linear(in, out);
    copy_into(linear.weight(), c["weight"]);
    copy_into(linear.bias(), c["bias_values"]);
    linear.grad_weight().zero();
    linear.grad_bias().zero();
    INFO(linear.describe());
    CHECK(max_difference(linear.forward(tensor_from(c["x"], {n, in})), c["y"]) < tight);
    CHECK(max_difference(linear.backward(tensor_from(c["dy"], {n, out})), c["dx"]) < tight);
    CHECK(max_difference(linear.grad_weight(), c["grad_weight"]) < tight);
    CHECK(max_difference(linear.grad_bias(), c["grad_bias"]) < tight);
  }
  for (const auto& c : pytorch_reference()["cross_entropy"]) {
    const int n = c["n"], classes = c["classes"];
    CrossEntropyLoss<double> loss;
    auto labels = c["labels"].get<std::vector<std::int32_t>>();
    double value = loss.forward(tensor_from(c["logits"], {n, classes}), labels);
    CHECK(value == Approx(c["loss"].get<double>()).epsilon(1e-12));
    CHECK(max_difference(loss.backward(), c["grad_logits"]) < tight);
  }
}

TEST_CASE("Three SGD steps of a tutorial-shaped network match PyTorch", "[forward][pytorch][network]") {
  const auto& ref = pytorch_reference()["network"];
  Sequential<double> net;
  net.add("conv1", Conv2d<double>(3, 6, 5));
  net.add(ReLU<double>());
  net.add(MaxPool2d<double>(2));
  net.add("conv2", Conv2d<double>(6, 16, 5));
  net.add(ReLU<double>());
  net.add(MaxPool2d<double>(2));
  net.add(Flatten<double>());
  net.add("fc1", Linear<double>(16, 12));
  net.add(ReLU<double>());
  net.add("fc2", Linear<double>(12, 11));
  net.add(ReLU<double>());
  net.add("fc3", Linear<double>(11, 10));
  for (auto& p : net.parameters()) copy_into(p.value, ref["initial"][p.name]);

  SGD<double> sgd(net.parameters(), SGDOptions(ref["lr"].get<double>()).momentum(ref["momentum"].get<double>()));
  CrossEntropyLoss<double> loss;
  int step = 0;
  for (const auto& s : ref["steps"]) {
    INFO("step " << step++);
    sgd.zero_grad();
    auto logits = net.forward(tensor_from(s["x"], {4, 3, 16, 16}));
    CHECK(max_difference(logits, s["logits"]) < tight);
    auto labels = s["labels"].get<std::vector<std::int32_t>>();
    CHECK(loss.forward(logits, labels) == Approx(s["loss"].get<double>()).epsilon(1e-12));
    net.backward(loss.backward());
    for (auto& p : net.parameters()) {
      INFO(p.name);
      CHECK(max_difference(p.grad, s["grads"][p.name]) < tight);
    }
    sgd.step();
    for (auto& p : net.parameters()) {
      INFO(p.name);
      CHECK(max_difference(p.value, s["after"][p.name]) < tight);
    }
  }
}
