// A ReLU fused into the convolution before it (ConvActivation::relu; Sequential fuses by default)
// computes what the two layers compute apart, on every path the convolution can take: direct with
// a scattered input gradient (where the mask is applied while dy is copied), direct with a gathered
// one and im2col + GEMM (where a masked copy of dy is made first), stride 2 (im2col only); with and
// without the input gradient; 1 and 2 threads. In double the fused network is also held to finite
// differences (test_gradients.cpp, "A whole tutorial-shaped network").
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <vector>

#include <headnet/headnet.hpp>

#include "gradient_check.hpp"

using namespace headnet;

namespace {

double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(b[i])));
  }
  REQUIRE(scale > 0);  // all zeros on both sides would hide a pass that does nothing
  return worst / scale;
}

}  // namespace

TEST_CASE("A fused ReLU equals a conv followed by a ReLU, on every kernel path", "[conv2d][fusion]") {
  struct Row {
    int c_in, c_out, k, stride, pad, n, h, w;
  };
  const Row table[] = {
      {6, 16, 5, 1, 0, 3, 12, 12},  // the tutorial's conv2: direct, scattered input gradient
      {32, 16, 5, 1, 0, 2, 12, 12}, // the wide conv2's kind: input gradient by channel (masked dyT)
      {4, 7, 3, 1, 1, 2, 9, 11},    // 3x3 padding 1: direct, gathered input gradient
      {3, 5, 3, 2, 1, 2, 9, 9},     // stride 2: im2col + GEMM only
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& row : table) {
      for (auto algorithm : {kernels::ConvAlgorithm::automatic, kernels::ConvAlgorithm::direct,
                             kernels::ConvAlgorithm::im2col_gemm}) {
        for (bool want_dx : {true, false}) {
          std::ostringstream what;
          what << "Conv2d(" << row.c_in << ", " << row.c_out << ", " << row.k << ", stride " << row.stride
               << ", padding " << row.pad << "), algorithm " << int(algorithm) << ", dx " << want_dx << ", "
               << threads << " threads";
          INFO(what.str());
          const kernels::ConvGeometry g{row.c_in, row.h, row.w, row.k, row.stride, row.pad};
          Generator gen(std::uint64_t(row.c_in * 31 + row.k));
          const std::size_t x_size = std::size_t(row.n * g.image_size()), w_size = std::size_t(row.c_out * g.patch_size());
          const std::size_t y_size = std::size_t(row.n) * std::size_t(row.c_out) * std::size_t(g.out_pixels());
          std::vector<float> x(x_size), weight(w_size), bias(std::size_t(row.c_out)), dy(y_size);
          for (auto* v : {&x, &weight, &bias, &dy})
            for (float& e : *v) e = float(gen.uniform(-1, 1));
          kernels::Conv2dWorkspace<float> ws;

          // Apart: y = conv(x); r = relu(y); the gradient of r is dy, that of y is dy * [r > 0].
          std::vector<float> y(y_size), r(y_size), dy_masked(y_size);
          kernels::conv2d_forward(g, row.n, row.c_out, x.data(), weight.data(), bias.data(), y.data(), ws, algorithm);
          kernels::relu_forward(std::int64_t(y_size), y.data(), r.data());
          kernels::relu_backward(std::int64_t(y_size), r.data(), dy.data(), dy_masked.data());
          std::vector<float> dx(x_size), gw(w_size, 0.f), gb(std::size_t(row.c_out), 0.f);
          kernels::conv2d_backward(g, row.n, row.c_out, x.data(), weight.data(), dy_masked.data(),
                                   want_dx ? dx.data() : nullptr, gw.data(), gb.data(), ws, algorithm);

          // Fused.
          std::vector<float> yf(y_size), dxf(x_size), gwf(w_size, 0.f), gbf(std::size_t(row.c_out), 0.f);
          kernels::conv2d_forward(g, row.n, row.c_out, x.data(), weight.data(), bias.data(), yf.data(), ws, algorithm,
                                  kernels::ConvActivation::relu);
          kernels::conv2d_backward(g, row.n, row.c_out, x.data(), weight.data(), dy.data(),
                                   want_dx ? dxf.data() : nullptr, gwf.data(), gbf.data(), ws, algorithm, yf.data());

          // About half the outputs are clipped, so a missing mask changes every gradient.
          std::size_t clipped = 0;
          for (float v : yf) clipped += v == 0.0f;
          CHECK(clipped > y_size / 4);
          CHECK(clipped < 3 * y_size / 4);
          CHECK(max_relative_difference(yf, r) < 1e-6);
          if (want_dx) CHECK(max_relative_difference(dxf, dx) < 1e-5);
          CHECK(max_relative_difference(gwf, gw) < 1e-5);
          CHECK(max_relative_difference(gbf, gb) < 1e-5);
        }
      }
    }
  }
  set_num_threads(2);
}

TEST_CASE("Sequential fuses a ReLU after a Conv2d and computes the same network", "[sequential][fusion]") {
  auto build = [](bool fusion) {
    Sequential<float> net;
    net.set_fusion(fusion);
    net.add("conv1", Conv2d<float>(3, 8, 5));
    net.add(ReLU<float>());
    net.add(MaxPool2d<float>(2));
    net.add("conv2", Conv2d<float>(8, 16, 5));
    net.add(ReLU<float>());
    net.add(ReLU<float>());  // a second ReLU has nothing to fuse into and runs as a layer
    net.add(Flatten<float>());
    net.add("fc", Linear<float>(16 * 2 * 2, 10));
    net.reset_parameters(3);
    net.set_needs_input_grad(true);
    return net;
  };
  Sequential<float> fused = build(true), apart = build(false);
  CHECK(fused.is_fused(1));
  CHECK(fused.is_fused(4));
  CHECK_FALSE(fused.is_fused(5));
  CHECK_FALSE(apart.is_fused(1));
  CHECK(dynamic_cast<Conv2d<float>&>(fused[0]).activation() == kernels::ConvActivation::relu);
  CHECK(dynamic_cast<Conv2d<float>&>(apart[0]).activation() == kernels::ConvActivation::none);

  Generator gen(5);
  Tensor<float> x({4, 3, 16, 16}), dy({4, 10});
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data()[i] = float(gen.uniform(-1, 1));
  for (std::int64_t i = 0; i < dy.numel(); ++i) dy.data()[i] = float(gen.uniform(-1, 1));
  for (int step = 0; step < 2; ++step) {  // twice: buffers reused, gradients accumulated
    const Tensor<float> yf = fused.forward(x), ya = apart.forward(x);
    for (std::int64_t i = 0; i < yf.numel(); ++i) REQUIRE(yf.data()[i] == Approx(ya.data()[i]).margin(1e-5));
    const Tensor<float> dxf = fused.backward(dy), dxa = apart.backward(dy);
    for (std::int64_t i = 0; i < dxf.numel(); ++i) REQUIRE(dxf.data()[i] == Approx(dxa.data()[i]).margin(1e-5));
  }
  auto pf = fused.parameters(), pa = apart.parameters();
  REQUIRE(pf.size() == pa.size());
  for (std::size_t k = 0; k < pf.size(); ++k) {
    INFO(pf[k].name);
    for (std::int64_t i = 0; i < pf[k].grad.numel(); ++i)
      REQUIRE(pf[k].grad.data()[i] == Approx(pa[k].grad.data()[i]).margin(1e-4));
  }

  // Switching fusion off restores separate layers.
  fused.set_fusion(false);
  CHECK_FALSE(fused.is_fused(1));
  CHECK(dynamic_cast<Conv2d<float>&>(fused[0]).activation() == kernels::ConvActivation::none);
  fused.set_fusion(true);
  CHECK(fused.is_fused(4));
}

namespace {

// conv2d_maxpool_forward against conv2d_forward then maxpool2d_forward: the same bits, argmax
// included (both sides compute each output the same way; only where it goes differs).
template <typename T>
void check_pooled_equals_apart(const kernels::ConvGeometry& g, int N, int C_out, const std::vector<T>& x,
                               const std::vector<T>& weight, const std::vector<T>& bias, kernels::ConvAlgorithm algorithm,
                               kernels::ConvActivation activation = kernels::ConvActivation::none) {
  const std::size_t y_size = std::size_t(N) * std::size_t(C_out) * std::size_t(g.out_pixels());
  const kernels::PoolGeometry pool = kernels::pool_2x2(g.out_height(), g.out_width());
  const std::size_t pooled_size = std::size_t(N) * std::size_t(C_out) * std::size_t(pool.out_height() * pool.out_width());
  kernels::Conv2dWorkspace<T> ws;
  std::vector<T> y(y_size), apart(pooled_size), fused(pooled_size, T(-7));
  std::vector<std::int32_t> arg_apart(pooled_size), arg_fused(pooled_size, -1);
  kernels::conv2d_forward(g, N, C_out, x.data(), weight.data(), bias.data(), y.data(), ws, algorithm, activation);
  kernels::maxpool2d_forward(pool, std::int64_t(N) * C_out, y.data(), apart.data(), arg_apart.data());
  kernels::conv2d_maxpool_forward(g, N, C_out, x.data(), weight.data(), bias.data(),
                                  kernels::PooledOutput<T>{fused.data(), arg_fused.data()}, ws, algorithm, activation);
  CHECK(std::memcmp(fused.data(), apart.data(), pooled_size * sizeof(T)) == 0);
  CHECK(arg_fused == arg_apart);
}

// conv2d_maxpool_backward against maxpool2d_backward into a full-size dy then conv2d_backward: the
// same bits for dx, the weight and the bias gradients (accumulated onto the same starting values),
// for each set of gradients a layer may want: all, dx only, weights without dx, and the bias alone
// under a frozen weight. The pooled gradient has a NaN when `nan`.
template <typename T>
void check_pooled_backward_equals_apart(const kernels::ConvGeometry& g, int N, int C_out, const std::vector<T>& x,
                                        const std::vector<T>& weight, const std::vector<T>& bias,
                                        kernels::ConvAlgorithm algorithm, kernels::ConvActivation activation,
                                        bool nan) {
  const std::size_t y_size = std::size_t(N) * std::size_t(C_out) * std::size_t(g.out_pixels());
  const kernels::PoolGeometry pool = kernels::pool_2x2(g.out_height(), g.out_width());
  const std::size_t pooled_size = std::size_t(N) * std::size_t(C_out) * std::size_t(pool.out_height() * pool.out_width());
  kernels::Conv2dWorkspace<T> ws;
  std::vector<T> pooled_y(pooled_size);
  std::vector<std::int32_t> argmax(pooled_size);
  kernels::conv2d_maxpool_forward(g, N, C_out, x.data(), weight.data(), bias.data(),
                                  kernels::PooledOutput<T>{pooled_y.data(), argmax.data()}, ws, algorithm, activation);
  Generator gen(std::uint64_t(N * 31 + C_out));
  std::vector<T> dy(pooled_size), start_weight(weight.size()), start_bias(bias.size());
  for (auto* v : {&dy, &start_weight, &start_bias})
    for (T& e : *v) e = T(gen.uniform(-1, 1));
  if (nan) dy[pooled_size / 2] = std::numeric_limits<T>::quiet_NaN();
  const bool relu = activation == kernels::ConvActivation::relu;
  const T* relu_output = relu ? pooled_y.data() : nullptr;
  struct Wants {
    bool dx, weight, bias;
  };
  for (const Wants wants : {Wants{true, true, true}, Wants{true, false, false}, Wants{false, true, true},
                            Wants{false, false, true}}) {
    INFO("dx " << wants.dx << ", weight " << wants.weight << ", bias " << wants.bias << (relu ? ", ReLU" : "")
               << (nan ? ", NaN in dy" : ""));
    std::vector<T> full(y_size), dx_apart(x.size(), T(-3)), dx_fused(x.size(), T(-5));
    std::vector<T> gw_apart(start_weight), gw_fused(start_weight), gb_apart(start_bias), gb_fused(start_bias);
    kernels::maxpool2d_backward(pool, std::int64_t(N) * C_out, dy.data(), argmax.data(), full.data(), relu_output);
    kernels::conv2d_backward(g, N, C_out, x.data(), weight.data(), full.data(), wants.dx ? dx_apart.data() : nullptr,
                             wants.weight ? gw_apart.data() : nullptr, wants.bias ? gb_apart.data() : nullptr, ws,
                             algorithm);
    kernels::conv2d_maxpool_backward(g, N, C_out, x.data(), weight.data(), dy.data(), argmax.data(), relu_output,
                                     wants.dx ? dx_fused.data() : nullptr, wants.weight ? gw_fused.data() : nullptr,
                                     wants.bias ? gb_fused.data() : nullptr, ws, algorithm);
    if (wants.dx) CHECK(std::memcmp(dx_fused.data(), dx_apart.data(), x.size() * sizeof(T)) == 0);
    CHECK(std::memcmp(gw_fused.data(), gw_apart.data(), weight.size() * sizeof(T)) == 0);
    CHECK(std::memcmp(gb_fused.data(), gb_apart.data(), bias.size() * sizeof(T)) == 0);
    if (wants.weight) CHECK(gw_fused != start_weight);  // something was computed
  }
}

// The layers both max-pool fusion tests run, each with its inputs, on 1 and 2 threads and every
// algorithm: check(g, row, x, weight, bias, algorithm) is called inside INFO naming them.
struct PooledConvRow {
  int c_in, c_out, k, stride, pad, n, h, w;
};
template <typename Check>
void for_each_pooled_conv(Check&& check) {
  using kernels::ConvAlgorithm;
  const PooledConvRow table[] = {
      {24, 64, 3, 1, 1, 3, 31, 31},  // the fast recipe's first block: odd 31x31, last row and column dropped
      {16, 32, 3, 1, 1, 2, 8, 14},   // even outputs, whole 4x4 tiles
      {8, 20, 3, 1, 1, 5, 7, 9},     // Winograd tiles cut by the edge on both sides
      {9, 16, 3, 1, 0, 2, 11, 13},   // padding 0: dy padded by 2 for the input gradient
      {6, 16, 5, 1, 0, 3, 14, 14},   // 5x5 (the tutorial's conv2 shape): direct or im2col only
      {32, 16, 5, 1, 0, 2, 14, 14},  // the wide conv2's kind: the direct input gradient by channel
      {3, 5, 3, 2, 1, 2, 9, 9},      // stride 2: im2col + GEMM, pooled after the whole output
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& row : table) {
      const kernels::ConvGeometry g{row.c_in, row.h, row.w, row.k, row.stride, row.pad};
      Generator gen(std::uint64_t(row.c_in * 7 + row.h));
      const std::size_t x_size = std::size_t(row.n * g.image_size()), w_size = std::size_t(row.c_out * g.patch_size());
      std::vector<float> x(x_size), weight(w_size), bias(std::size_t(row.c_out));
      for (auto* v : {&x, &weight, &bias})
        for (float& e : *v) e = float(gen.uniform(-1, 1));
      for (auto algorithm : {ConvAlgorithm::automatic, ConvAlgorithm::direct, ConvAlgorithm::im2col_gemm,
                             ConvAlgorithm::winograd_4x4, ConvAlgorithm::winograd_3x3, ConvAlgorithm::winograd_2x2}) {
        INFO("Conv2d(" << row.c_in << ", " << row.c_out << ", " << row.k << ", stride " << row.stride << ", padding "
                       << row.pad << ") on " << row.h << "x" << row.w << ", " << kernels::name(algorithm) << " ("
                       << kernels::select_conv_path<float>(g, row.c_out, kernels::ConvPass::forward, algorithm,
                                                           simd::active_isa(), row.n).name()
                       << "), " << threads << " threads");
        check(g, row, x, weight, bias, algorithm);
      }
    }
  }
  set_num_threads(2);
}

}  // namespace

TEST_CASE("The backward of a max-pool fused into the convolution equals the pool's then the conv's, on every path",
          "[conv2d][fusion][maxpool2d]") {
  for_each_pooled_conv([](const kernels::ConvGeometry& g, const PooledConvRow& row, const std::vector<float>& x,
                          const std::vector<float>& weight, const std::vector<float>& bias,
                          kernels::ConvAlgorithm algorithm) {
    for (auto activation : {kernels::ConvActivation::none, kernels::ConvActivation::relu})
      for (bool nan : {false, true})
        check_pooled_backward_equals_apart(g, row.n, row.c_out, x, weight, bias, algorithm, activation, nan);
    // Ties (zero weights: each window's first element wins).
    check_pooled_backward_equals_apart(g, row.n, row.c_out, x, std::vector<float>(weight.size(), 0.0f), bias, algorithm,
                                       kernels::ConvActivation::none, false);
    if (algorithm == kernels::ConvAlgorithm::automatic || algorithm == kernels::ConvAlgorithm::winograd_4x4) {
      std::vector<double> xd(x.begin(), x.end()), wd(weight.begin(), weight.end()), bd(bias.begin(), bias.end());
      check_pooled_backward_equals_apart(g, row.n, row.c_out, xd, wd, bd, algorithm, kernels::ConvActivation::relu, false);
    }
  });
}

TEST_CASE("A max-pool fused into the convolution equals the conv then the pool, on every kernel path",
          "[conv2d][fusion][maxpool2d]") {
  for_each_pooled_conv([](const kernels::ConvGeometry& g, const PooledConvRow& row, const std::vector<float>& x,
                          const std::vector<float>& weight, const std::vector<float>& bias,
                          kernels::ConvAlgorithm algorithm) {
    check_pooled_equals_apart(g, row.n, row.c_out, x, weight, bias, algorithm);
    check_pooled_equals_apart(g, row.n, row.c_out, x, weight, bias, algorithm, kernels::ConvActivation::relu);
    // Ties (zero weights: every output is its bias) go to the first of a window, and a NaN
    // wins over numbers, as in MaxPool2d.
    check_pooled_equals_apart(g, row.n, row.c_out, x, std::vector<float>(weight.size(), 0.0f), bias, algorithm);
    std::vector<float> with_nan(x);
    with_nan[x.size() / 3] = std::nanf("");
    check_pooled_equals_apart(g, row.n, row.c_out, with_nan, weight, bias, algorithm);
    check_pooled_equals_apart(g, row.n, row.c_out, with_nan, weight, bias, algorithm, kernels::ConvActivation::relu);
    if (algorithm == kernels::ConvAlgorithm::automatic || algorithm == kernels::ConvAlgorithm::winograd_4x4) {
      std::vector<double> xd(x.begin(), x.end()), wd(weight.begin(), weight.end()), bd(bias.begin(), bias.end());
      check_pooled_equals_apart(g, row.n, row.c_out, xd, wd, bd, algorithm);  // double: im2col, or Winograd on the GEMM
      check_pooled_equals_apart(g, row.n, row.c_out, xd, wd, bd, algorithm, kernels::ConvActivation::relu);
    }
  });
}

TEST_CASE("Sequential fuses a MaxPool2d(2) into the Conv2d before it (and its ReLU) and computes the same network",
          "[sequential][fusion][maxpool2d]") {
  // The fast recipe's block: conv -> pool -> BatchNorm -> GELU, then a conv whose 15x15 output pools
  // to 7x7 (an odd size: the last row and column dropped).
  // The first conv has a ReLU between it and its pool (the tutorial's blocks): both are fused, and
  // its even 30x30 output takes the vector backward of the pool; the second's 15x15 the scalar one.
  auto build = [](bool fusion, kernels::ConvAlgorithm algorithm) {
    Sequential<float> net;
    net.set_fusion(fusion);
    net.add("conv1", Conv2d<float>(3, 24, 3, 1, 1));
    net.add(ReLU<float>());
    net.add(MaxPool2d<float>(2));
    net.add("norm1", BatchNorm2d<float>(24));
    net.add(GELU<float>());
    net.add("conv2", Conv2d<float>(24, 32, 3, 1, 1, false));
    net.add(MaxPool2d<float>(2));
    net.add(Flatten<float>());
    net.add("fc", Linear<float>(32 * 7 * 7, 10));
    net.reset_parameters(9);
    net.set_needs_input_grad(true);
    set_conv_algorithm(net, algorithm);
    return net;
  };
  for (auto algorithm : {kernels::ConvAlgorithm::automatic, kernels::ConvAlgorithm::direct,
                         kernels::ConvAlgorithm::winograd_4x4, kernels::ConvAlgorithm::im2col_gemm}) {
    INFO(kernels::name(algorithm));
    Sequential<float> fused = build(true, algorithm), apart = build(false, algorithm);
    CHECK(fused.is_fused(1));
    CHECK(fused.is_fused(2));
    CHECK(fused.is_fused(4));  // the GELU, into the BatchNorm
    CHECK(fused.is_fused(6));
    CHECK(dynamic_cast<Conv2d<float>&>(fused[0]).pooled());
    CHECK(dynamic_cast<Conv2d<float>&>(fused[0]).activation() == kernels::ConvActivation::relu);
    CHECK(dynamic_cast<Conv2d<float>&>(fused[5]).pooled());
    CHECK_FALSE(apart.is_fused(1));
    CHECK_FALSE(dynamic_cast<Conv2d<float>&>(apart[0]).pooled());

    Generator gen(6);
    Tensor<float> x({4, 3, 30, 30}), dy({4, 10});
    for (std::int64_t i = 0; i < x.numel(); ++i) x.data()[i] = float(gen.uniform(-1, 1));
    for (std::int64_t i = 0; i < dy.numel(); ++i) dy.data()[i] = float(gen.uniform(-1, 1));
    for (int step = 0; step < 2; ++step) {  // twice: buffers reused, gradients accumulated
      const Tensor<float> yf = fused.forward(x), ya = apart.forward(x);
      REQUIRE(yf.shape() == ya.shape());
      for (std::int64_t i = 0; i < yf.numel(); ++i) REQUIRE(yf.data()[i] == ya.data()[i]);
      const Tensor<float> dxf = fused.backward(dy), dxa = apart.backward(dy);
      for (std::int64_t i = 0; i < dxf.numel(); ++i) REQUIRE(dxf.data()[i] == dxa.data()[i]);
    }
    auto pf = fused.parameters(), pa = apart.parameters();
    REQUIRE(pf.size() == pa.size());
    for (std::size_t k = 0; k < pf.size(); ++k) {
      INFO(pf[k].name);
      for (std::int64_t i = 0; i < pf[k].grad.numel(); ++i) REQUIRE(pf[k].grad.data()[i] == pa[k].grad.data()[i]);
    }
    fused.set_fusion(false);  // the ReLU and the pool both go back to their own layers
    CHECK_FALSE(dynamic_cast<Conv2d<float>&>(fused[0]).pooled());
    CHECK(dynamic_cast<Conv2d<float>&>(fused[0]).activation() == kernels::ConvActivation::none);
  }

  // What is not fused: other windows, ceil mode, a second pool, a pool after a layer between.
  Sequential<float> other;
  other.add(Conv2d<float>(3, 4, 3));
  other.add(MaxPool2d<float>(3, 2));
  other.add(Conv2d<float>(4, 4, 3));
  other.add(MaxPool2d<float>(2, 2, 0, true));
  other.add(Conv2d<float>(4, 4, 3));
  other.add(MaxPool2d<float>(2));
  other.add(MaxPool2d<float>(2));
  other.add(Conv2d<float>(4, 4, 3));
  other.add(GELU<float>());
  other.add(MaxPool2d<float>(2));
  CHECK_FALSE(other.is_fused(1));
  CHECK_FALSE(other.is_fused(3));
  CHECK(other.is_fused(5));
  CHECK_FALSE(other.is_fused(6));
  CHECK_FALSE(other.is_fused(8));
  CHECK_FALSE(other.is_fused(9));
  // Switching fusion off and on again.
  Sequential<float> net;
  net.add(Conv2d<float>(3, 4, 3));
  net.add(MaxPool2d<float>(2));
  CHECK(net.is_fused(1));
  net.set_fusion(false);
  CHECK_FALSE(dynamic_cast<Conv2d<float>&>(net[0]).pooled());
  net.set_fusion(true);
  CHECK(dynamic_cast<Conv2d<float>&>(net[0]).pooled());
}

namespace {

// BatchNorm (1d or 2d) followed by an activation, fused or apart, parameters and buffers from `seed`.
Sequential<float> batchnorm_then(const std::string& activation, int rank, int features, bool fusion, std::uint64_t seed) {
  Sequential<float> net;
  net.set_fusion(fusion);
  if (rank == 4)
    net.add("norm", BatchNorm2d<float>(features, 1e-5, 0.4));
  else
    net.add("norm", BatchNorm1d<float>(features, 1e-5, 0.4));
  if (activation == "relu")
    net.add("act", ReLU<float>());
  else
    net.add("act", GELU<float>(activation == "gelu_tanh" ? "tanh" : "none"));
  Generator gen(seed);
  for (auto& p : net.parameters())
    for (float& v : p.value) v = float(p.name == "norm.weight" ? gen.uniform(0.5, 1.5) : gen.uniform(-0.5, 0.5));
  for (auto& b : net.buffers())
    if (!b.integer)
      for (float& v : b.value) v = float(b.name == "norm.running_var" ? gen.uniform(0.5, 1.5) : gen.uniform(-0.5, 0.5));
  return net;
}

}  // namespace

TEST_CASE("A GELU or ReLU fused into the BatchNorm before it computes the two layers apart", "[batchnorm][fusion]") {
  const Shape shapes[] = {{3, 5, 7, 9}, {2, 4, 15, 15}, {1, 3, 3, 5}, {6, 4}, {3, 2, 7}};
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const Shape& shape : shapes) {
      for (const std::string activation : {"gelu", "gelu_tanh", "relu"}) {
        for (bool eval : {false, true}) {
          for (bool want_dx : {true, false}) {
            for (int variant : {0, 1, 2}) {  // 1: the fast recipe's frozen weight; 2: SyncBatchNorm's code path
              const bool frozen_weight = variant == 1, synced = variant == 2;
              std::ostringstream what;
              what << "BatchNorm on " << shape.str() << " then " << activation << (eval ? ", eval" : ", train")
                   << ", dx " << want_dx << (frozen_weight ? ", frozen weight" : "") << (synced ? ", synced" : "")
                   << ", " << threads << " threads";
              INFO(what.str());
              const int rank = shape.rank(), features = int(shape[1]);
              const std::uint64_t seed = std::uint64_t(shape.numel() * 7 + rank);
              Sequential<float> fused = batchnorm_then(activation, rank, features, true, seed);
              Sequential<float> apart = batchnorm_then(activation, rank, features, false, seed);
              REQUIRE(fused.is_fused(1));
              REQUIRE_FALSE(apart.is_fused(1));
              for (auto* net : {&fused, &apart}) {
                net->set_needs_input_grad(want_dx);
                if (eval) net->eval();
                if (frozen_weight) (*net)[0].set_requires_grad("weight", false);
                // One process: the sum over processes is the identity, but the sums take the synced path.
                if (synced) dynamic_cast<BatchNorm<float>&>((*net)[0]).set_statistics_reducer([](double*, std::size_t) {});
              }
              Generator gen(seed + 1);
              Tensor<float> x(shape), dz(shape);
              for (float& v : x) v = float(gen.uniform(-2, 3));
              for (float& v : dz) v = float(gen.uniform(-1, 1));
              for (int step = 0; step < 2; ++step) {  // twice: buffers reused, gradients accumulated
                const Tensor<float> zf = fused.forward(x), za = apart.forward(x);
                CHECK(max_relative_difference(std::vector<float>(zf.begin(), zf.end()),
                                              std::vector<float>(za.begin(), za.end())) < 1e-6);
                if (activation == "relu") {  // about half the outputs clipped: a missing mask would show
                  std::int64_t clipped = 0;
                  for (float v : zf) clipped += v == 0.0f;
                  CHECK(clipped > zf.numel() / 5);
                  CHECK(clipped < 4 * zf.numel() / 5);
                }
                const Tensor<float> dxf = fused.backward(dz), dxa = apart.backward(dz);
                REQUIRE(dxf.shape() == dxa.shape());
                if (want_dx) REQUIRE(dxf.shape() == x.shape());
                if (want_dx)
                  CHECK(max_relative_difference(std::vector<float>(dxf.begin(), dxf.end()),
                                                std::vector<float>(dxa.begin(), dxa.end())) < 1e-5);
              }
              auto pf = fused.parameters(), pa = apart.parameters();
              REQUIRE(pf.size() == pa.size());
              for (std::size_t k = 0; k < pf.size(); ++k) {
                INFO(pf[k].name);
                if (frozen_weight && pf[k].name == "norm.weight") {
                  for (float v : pf[k].grad) CHECK(v == 0.0f);
                  continue;
                }
                CHECK(max_relative_difference(std::vector<float>(pf[k].grad.begin(), pf[k].grad.end()),
                                              std::vector<float>(pa[k].grad.begin(), pa[k].grad.end())) < 1e-5);
              }
              auto bf = fused.buffers(), ba = apart.buffers();
              REQUIRE(bf.size() == ba.size());
              for (std::size_t k = 0; k < bf.size(); ++k)
                for (std::int64_t i = 0; i < bf[k].value.numel(); ++i) CHECK(bf[k].value.data()[i] == ba[k].value.data()[i]);
            }
          }
        }
      }
    }
  }
  set_num_threads(2);
}

TEST_CASE("BatchNorm with a fused GELU or ReLU matches finite differences", "[gradient][batchnorm][fusion]") {
  struct Row {
    Shape shape;
    const char* activation;
    bool eval;
  };
  const Row table[] = {
      {{3, 4, 5, 6}, "gelu", false}, {{2, 3, 7, 7}, "gelu_tanh", false}, {{2, 3, 5, 5}, "relu", false},
      {{2, 3, 5, 5}, "gelu", true},  {{5, 4}, "gelu", false},            {{3, 2, 7}, "relu", true},
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& row : table) {
      Sequential<double> net;
      if (row.shape.rank() == 4)
        net.add("norm", BatchNorm2d<double>(int(row.shape[1])));
      else
        net.add("norm", BatchNorm1d<double>(int(row.shape[1])));
      if (std::string(row.activation) == "relu")
        net.add("act", ReLU<double>());
      else
        net.add("act", GELU<double>(std::string(row.activation) == "gelu_tanh" ? "tanh" : "none"));
      REQUIRE(net.is_fused(1));
      net.set_needs_input_grad(true);
      Generator gen(std::uint64_t(row.shape.numel()) * 3 + row.eval);
      for (auto& p : net.parameters())
        for (double& v : p.value) v = gen.uniform(0.5, 1.5);
      for (auto& b : net.buffers())
        if (!b.integer)
          for (double& v : b.value) v = gen.uniform(0.5, 1.5);
      if (row.eval) net.eval();
      std::ostringstream what;
      what << "BatchNorm on " << row.shape.str() << " then " << row.activation << (row.eval ? ", eval" : ", train")
           << ", " << threads << " threads";
      INFO(what.str());
      const auto report = headnet_test::check_gradients(net, headnet_test::random_tensor(row.shape, gen, -2, 3), gen);
      INFO("worst relative error " << report.worst_error << " in " << report.worst_name);
      CHECK_FALSE(report.some_gradient_all_zero);
      CHECK(report.worst_error < 1e-6);
    }
  }
  set_num_threads(2);
}
