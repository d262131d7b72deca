// Winograd convolutions (kernels/conv2d_winograd.hpp), F(4x4, 3x3), F(3x3, 3x3) and F(2x2, 3x3), over a table of
// shapes: channels that are not multiples of a vector width, odd sizes, padding 0 to 2, output
// sizes that are not multiples of the tile, batch 1 and > 1, 1 and 2 threads.
//   - In double, where rounding is negligible: the forward against the seven-loop definition, and
//     the input, weight and bias gradients against central finite differences of
//     L = sum(r * conv(x)) (sampled entries: L is linear in x and in the weights, so the
//     differences are exact up to double rounding) and against the im2col path in full.
//   - In float: the worst relative error of each variant against the definition computed in double,
//     bounded (docs/benchmarks.md states the measured values); the same bits from run to run on 1
//     and on 2 threads (the chunks of tiles depend on the thread count, so 1 and 2 threads may
//     differ in the last bits); the fused ReLU; the choice through select_conv_path and
//     Conv2d::set_algorithm.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <sstream>
#include <vector>

#include <headnet/headnet.hpp>

using namespace headnet;

namespace {

struct WinogradRow {
  int c_in, c_out, p, n, h, w;
};

const WinogradRow table[] = {
    // c_in c_out P  N   H   W
    {1, 1, 1, 1, 6, 5},    // one channel, odd width
    {3, 5, 0, 2, 7, 9},    // no padding: 5x7 output, not a multiple of the tile
    {5, 7, 2, 2, 5, 6},    // padding 2 (the input gradient then pads dy by 0)
    {17, 33, 1, 3, 9, 11},  // channels past a vector width
    {16, 16, 1, 1, 4, 4},  // one 4x4 tile per image
    {8, 12, 1, 2, 3, 3},   // 3x3 images: one partial tile (the fast recipe's last layer shape)
    {6, 4, 1, 5, 15, 15},  // 15x15: 4x4 tiles with a remainder, many tiles (several chunks)
};

template <typename T>
std::vector<T> random_vector(std::size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<T> v(n);
  for (auto& e : v) e = static_cast<T>(u(rng));
  return v;
}

// Norm-wise relative error |a - b| / |b|.
template <typename A, typename B>
double relative_distance(const std::vector<A>& a, const std::vector<B>& b) {
  double diff = 0, nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    nb += double(b[i]) * double(b[i]);
  }
  REQUIRE(nb > 0);  // an all-zero reference would hide a kernel that does nothing
  return std::sqrt(diff / nb);
}

double loss(const kernels::ConvGeometry& g, int N, int C_out, const std::vector<double>& x,
            const std::vector<double>& weight, const std::vector<double>& bias, const std::vector<double>& r) {
  std::vector<double> y(r.size());
  kernels::conv2d_forward_reference(g, N, C_out, x.data(), weight.data(), bias.data(), y.data());
  double sum = 0;
  for (std::size_t i = 0; i < y.size(); ++i) sum += r[i] * y[i];
  return sum;
}

std::string describe(const WinogradRow& row, kernels::ConvAlgorithm algorithm, int threads) {
  std::ostringstream s;
  s << kernels::name(algorithm) << " Conv2d(" << row.c_in << ", " << row.c_out << ", 3, padding " << row.p << ") on ("
    << row.n << ", " << row.c_in << ", " << row.h << ", " << row.w << "), " << threads << " threads";
  return s.str();
}

const kernels::ConvAlgorithm variants[] = {kernels::ConvAlgorithm::winograd_4x4, kernels::ConvAlgorithm::winograd_3x3,
                                           kernels::ConvAlgorithm::winograd_2x2};

}  // namespace

TEST_CASE("Winograd in double: forward against the definition, gradients against finite differences",
          "[conv2d][winograd]") {
  std::mt19937 rng(7);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& row : table) {
      for (auto algorithm : variants) {
        INFO(describe(row, algorithm, threads));
        const kernels::ConvGeometry g{row.c_in, row.h, row.w, 3, 1, row.p};
        REQUIRE(kernels::select_conv_path<double>(g, row.c_out, kernels::ConvPass::forward, algorithm).algorithm ==
                algorithm);
        const int N = row.n, C_out = row.c_out;
        const std::size_t x_size = std::size_t(N) * g.image_size(), w_size = std::size_t(C_out) * g.patch_size();
        const std::size_t y_size = std::size_t(N) * C_out * g.out_pixels();
        auto x = random_vector<double>(x_size, rng), weight = random_vector<double>(w_size, rng);
        auto bias = random_vector<double>(std::size_t(C_out), rng), r = random_vector<double>(y_size, rng);

        kernels::Conv2dWorkspace<double> ws;
        std::vector<double> y(y_size), y_ref(y_size);
        kernels::conv2d_forward(g, N, C_out, x.data(), weight.data(), bias.data(), y.data(), ws, algorithm);
        kernels::conv2d_forward_reference(g, N, C_out, x.data(), weight.data(), bias.data(), y_ref.data());
        CHECK(relative_distance(y, y_ref) < 1e-13);

        std::vector<double> dx(x_size, 7.0), dw(w_size, 0.0), db(std::size_t(C_out), 0.0);
        kernels::conv2d_backward(g, N, C_out, x.data(), weight.data(), r.data(), dx.data(), dw.data(), db.data(), ws,
                                 algorithm);
        std::vector<double> dx_gemm(x_size), dw_gemm(w_size, 0.0), db_gemm(std::size_t(C_out), 0.0);
        kernels::conv2d_backward(g, N, C_out, x.data(), weight.data(), r.data(), dx_gemm.data(), dw_gemm.data(),
                                 db_gemm.data(), ws, kernels::ConvAlgorithm::im2col_gemm);
        CHECK(relative_distance(dx, dx_gemm) < 1e-13);
        CHECK(relative_distance(dw, dw_gemm) < 1e-13);
        CHECK(relative_distance(db, db_gemm) < 1e-13);

        // Central differences at sampled entries of x, the weights and the bias.
        const double h = 1e-3;
        auto check_entries = [&](std::vector<double>& v, const std::vector<double>& grad, const char* what) {
          std::uniform_int_distribution<std::size_t> pick(0, v.size() - 1);
          for (int s = 0; s < 12; ++s) {
            const std::size_t i = pick(rng);
            const double saved = v[i];
            v[i] = saved + h;
            const double up = loss(g, N, C_out, x, weight, bias, r);
            v[i] = saved - h;
            const double down = loss(g, N, C_out, x, weight, bias, r);
            v[i] = saved;
            const double numeric = (up - down) / (2 * h);
            INFO(what << "[" << i << "]: finite difference " << numeric << ", Winograd " << grad[i]);
            CHECK(std::abs(numeric - grad[i]) <= 1e-8 * (1 + std::abs(numeric)));
          }
        };
        check_entries(x, dx, "dx");
        check_entries(weight, dw, "dW");
        check_entries(bias, db, "db");
      }
    }
  }
  set_num_threads(2);
}

TEST_CASE("Winograd in float: errors against the definition in double are bounded", "[conv2d][winograd]") {
  // The fast recipe's layer shapes at a small batch, and the table. Bounds: about 4x the worst
  // value measured (docs/benchmarks.md, "Winograd"); a transform with a wrong coefficient is off by
  // 1e-1 or more, so the bounds still catch it.
  struct Bound {
    kernels::ConvAlgorithm algorithm;
    double forward, input_gradient, weight_gradient;
  };
  const Bound bounds[] = {{kernels::ConvAlgorithm::winograd_4x4, 8e-6, 8e-6, 8e-6},
                          {kernels::ConvAlgorithm::winograd_3x3, 4e-6, 4e-6, 4e-6},
                          {kernels::ConvAlgorithm::winograd_2x2, 2e-6, 2e-6, 2e-6}};
  std::vector<WinogradRow> rows(std::begin(table), std::end(table));
  rows.push_back({24, 64, 1, 2, 31, 31});
  rows.push_back({64, 64, 1, 2, 15, 15});
  rows.push_back({64, 256, 1, 1, 15, 15});
  rows.push_back({256, 256, 1, 2, 7, 7});
  rows.push_back({256, 256, 1, 4, 3, 3});
  std::mt19937 rng(11);
  set_num_threads(2);
  for (const auto& row : rows) {
    const kernels::ConvGeometry g{row.c_in, row.h, row.w, 3, 1, row.p};
    const int N = row.n, C_out = row.c_out;
    const std::size_t x_size = std::size_t(N) * g.image_size(), w_size = std::size_t(C_out) * g.patch_size();
    const std::size_t y_size = std::size_t(N) * C_out * g.out_pixels();
    auto x = random_vector<float>(x_size, rng), weight = random_vector<float>(w_size, rng);
    auto r = random_vector<float>(y_size, rng);
    std::vector<double> xd(x.begin(), x.end()), wd(weight.begin(), weight.end()), rd(r.begin(), r.end());
    kernels::Conv2dWorkspace<double> wsd;
    std::vector<double> y_ref(y_size), dx_ref(x_size), dw_ref(w_size, 0.0);
    kernels::conv2d_forward(g, N, C_out, xd.data(), wd.data(), static_cast<const double*>(nullptr), y_ref.data(), wsd,
                            kernels::ConvAlgorithm::im2col_gemm);
    kernels::conv2d_backward(g, N, C_out, xd.data(), wd.data(), rd.data(), dx_ref.data(), dw_ref.data(), static_cast<double*>(nullptr), wsd,
                             kernels::ConvAlgorithm::im2col_gemm);
    for (const auto& bound : bounds) {
      INFO(describe(row, bound.algorithm, 2));
      kernels::Conv2dWorkspace<float> ws;
      std::vector<float> y(y_size), dx(x_size), dw(w_size, 0.0f);
      kernels::conv2d_forward(g, N, C_out, x.data(), weight.data(), static_cast<const float*>(nullptr), y.data(), ws, bound.algorithm);
      kernels::conv2d_backward(g, N, C_out, x.data(), weight.data(), r.data(), dx.data(), dw.data(), static_cast<float*>(nullptr), ws,
                               bound.algorithm);
      const double e_forward = relative_distance(y, y_ref), e_input = relative_distance(dx, dx_ref),
                   e_weight = relative_distance(dw, dw_ref);
      INFO("relative errors: forward " << e_forward << ", input gradient " << e_input << ", weight gradient "
                                       << e_weight);
      CHECK(e_forward < bound.forward);
      CHECK(e_input < bound.input_gradient);
      CHECK(e_weight < bound.weight_gradient);
    }
  }
}

TEST_CASE("Winograd in float: same bits run to run for a thread count; fused ReLU", "[conv2d][winograd]") {
  std::mt19937 rng(3);
  for (const auto& row : {WinogradRow{17, 33, 1, 3, 9, 11}, WinogradRow{64, 64, 1, 16, 15, 15}}) {
    const kernels::ConvGeometry g{row.c_in, row.h, row.w, 3, 1, row.p};
    const int N = row.n, C_out = row.c_out;
    const std::size_t x_size = std::size_t(N) * g.image_size(), w_size = std::size_t(C_out) * g.patch_size();
    const std::size_t y_size = std::size_t(N) * C_out * g.out_pixels();
    auto x = random_vector<float>(x_size, rng), weight = random_vector<float>(w_size, rng);
    auto bias = random_vector<float>(std::size_t(C_out), rng), dy = random_vector<float>(y_size, rng);
    for (auto algorithm : variants) {
      INFO(describe(row, algorithm, 0));
      std::vector<std::vector<float>> results;
      for (int threads : {1, 1, 2, 2}) {
        set_num_threads(threads);
        kernels::Conv2dWorkspace<float> ws;
        std::vector<float> y(y_size), dx(x_size), dw(w_size, 0.0f), db(std::size_t(C_out), 0.0f);
        kernels::conv2d_forward(g, N, C_out, x.data(), weight.data(), bias.data(), y.data(), ws, algorithm);
        kernels::conv2d_backward(g, N, C_out, x.data(), weight.data(), dy.data(), dx.data(), dw.data(), db.data(), ws,
                                 algorithm);
        std::vector<float> all(y);
        all.insert(all.end(), dx.begin(), dx.end());
        all.insert(all.end(), dw.begin(), dw.end());
        all.insert(all.end(), db.begin(), db.end());
        results.push_back(all);
      }
      CHECK(results[0] == results[1]);
      CHECK(results[2] == results[3]);
      CHECK(relative_distance(results[0], results[2]) < 1e-5);  // and 1 thread agrees with 2 up to rounding

      // Fused ReLU: max(conv + b, 0) and its backward, against the unfused Winograd result.
      set_num_threads(2);
      kernels::Conv2dWorkspace<float> ws;
      std::vector<float> y(y_size), y_relu(y_size);
      kernels::conv2d_forward(g, N, C_out, x.data(), weight.data(), bias.data(), y.data(), ws, algorithm);
      kernels::conv2d_forward(g, N, C_out, x.data(), weight.data(), bias.data(), y_relu.data(), ws, algorithm,
                              kernels::ConvActivation::relu);
      std::vector<float> masked(dy);
      int positive = 0;
      for (std::size_t i = 0; i < y_size; ++i) {
        REQUIRE(y_relu[i] == std::max(y[i], 0.0f));
        positive += y[i] > 0;
        if (!(y[i] > 0)) masked[i] = 0;
      }
      CHECK(positive > 0);
      CHECK(positive < int(y_size));
      std::vector<float> dx1(x_size), dw1(w_size, 0.0f), dx2(x_size), dw2(w_size, 0.0f);
      kernels::conv2d_backward(g, N, C_out, x.data(), weight.data(), dy.data(), dx1.data(), dw1.data(), static_cast<float*>(nullptr), ws,
                               algorithm, y_relu.data());
      kernels::conv2d_backward(g, N, C_out, x.data(), weight.data(), masked.data(), dx2.data(), dw2.data(), static_cast<float*>(nullptr), ws,
                               algorithm);
      CHECK(dx1 == dx2);
      CHECK(dw1 == dw2);
    }
  }
}

TEST_CASE("Winograd: chosen where it can run, forced per layer, reported", "[conv2d][winograd]") {
  using kernels::ConvAlgorithm;
  using kernels::ConvPass;
  const kernels::ConvGeometry three{64, 15, 15, 3, 1, 1}, five{64, 15, 15, 5, 1, 2}, strided{64, 15, 15, 3, 2, 1},
      wide_pad{64, 15, 15, 3, 1, 3};
  for (auto algorithm : variants) {
    CHECK(kernels::select_conv_path<float>(three, 64, ConvPass::weight_gradient, algorithm).algorithm == algorithm);
    // Where it cannot run, a forced Winograd gives the automatic choice among the others.
    for (const auto& g : {five, strided, wide_pad}) {
      INFO("K " << g.kernel_size << " stride " << g.stride << " padding " << g.padding);
      const auto forced = kernels::select_conv_path<float>(g, 64, ConvPass::forward, algorithm).algorithm;
      CHECK(forced == kernels::select_conv_path<float>(g, 64, ConvPass::forward).algorithm);
      CHECK(forced != ConvAlgorithm::winograd_4x4);
      CHECK(forced != ConvAlgorithm::winograd_2x2);
    }
  }
  CHECK(kernels::parse_conv_algorithm("winograd_2x2") == ConvAlgorithm::winograd_2x2);
  CHECK(kernels::parse_conv_algorithm("winograd_3x3") == ConvAlgorithm::winograd_3x3);
  // The automatic tile: F(3x3, 3x3) where it makes fewer products (3x3 images), F(4x4, 3x3) elsewhere.
  const kernels::ConvGeometry tiny{256, 3, 3, 3, 1, 1}, seven{256, 7, 7, 3, 1, 1};
  CHECK(kernels::select_conv_path<float>(tiny, 256, ConvPass::forward).algorithm == ConvAlgorithm::winograd_3x3);
  CHECK(kernels::select_conv_path<float>(seven, 256, ConvPass::forward).algorithm == ConvAlgorithm::winograd_4x4);
  CHECK_THROWS_WITH(kernels::parse_conv_algorithm("winograd"), Catch::Contains("winograd_4x4"));

  // A layer forced to Winograd says so and computes what the definition computes.
  Conv2d<float> conv(16, 24, 3, 1, 1);
  conv.set_algorithm(ConvAlgorithm::winograd_2x2);
  Tensor<float> x({2, 16, 9, 9});
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data()[i] = u(rng);
  const Tensor<float>& y = conv.forward(x);
  const std::string isa = simd::name(simd::active_isa());
  CHECK(conv.kernel_paths() == "forward=winograd_2x2/" + isa + " input_gradient=winograd_2x2/" + isa +
                                   " weight_gradient=winograd_2x2/" + isa);
  std::vector<float> y_ref(std::size_t(y.numel()));
  kernels::conv2d_forward_reference(kernels::ConvGeometry{16, 9, 9, 3, 1, 1}, 2, 24, x.data(), conv.weight().data(),
                                    conv.bias().data(), y_ref.data());
  CHECK(relative_distance(std::vector<float>(y.data(), y.data() + y.numel()), y_ref) < 1e-6);
}
