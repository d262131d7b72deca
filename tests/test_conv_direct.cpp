// The direct (im2col-free) convolution kernels of kernels/conv2d_direct.hpp, on the instruction set
// the process runs (simd::active_isa(): the widest the CPU has, or HEADNET_ISA). CTest runs these
// cases once per instruction set (kernels_on_portable, kernels_on_avx2, kernels_on_avx512; a set the
// CPU lacks is reported as skipped, by name), so every path is checked on every machine that can
// run it.
//
// They exist for float only, so the double-precision gradient table of test_gradients.cpp, which
// runs the im2col path, does not reach them. Here, in float, on shapes chosen to hit every tile
// remainder (output channels and taps mod 6 and mod 12, the tile rows of AVX2 and AVX-512; channel
// blocks of 16 and 32; widths that are not multiples of 8 or 16), with padding, odd sizes, batch > 1 and 1 or 2 threads:
//   - the forward against the seven-loop definition (conv2d_forward_reference);
//   - the input, weight and bias gradients against central finite differences of
//     L = sum(r * conv(x)) computed in double with that same definition (L is linear in x and in
//     the weights, so the differences are exact up to double rounding);
//   - the same gradients against the im2col + GEMM path.
// The table holds shapes whose input gradient scatters and shapes whose input gradient gathers
// and shapes whose forward and weight gradient run by channel and by pixel (direct::plan), a
// by-channel forward with more than one chunk of taps, and the test checks that it does.
#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>
#include <utility>
#include <vector>

#include <headnet/headnet.hpp>

using namespace headnet;

namespace {

struct DirectRow {
  int c_in, c_out, k, p, n, h, w;
};

// L = sum(r * conv(x, weight) + r * bias) in double, from float parameters.
double loss_in_double(const kernels::ConvGeometry& g, int N, int C_out, const std::vector<double>& x,
                      const std::vector<double>& weight, const std::vector<double>& bias,
                      const std::vector<double>& r) {
  std::vector<double> y(r.size());
  kernels::conv2d_forward_reference(g, N, C_out, x.data(), weight.data(), bias.data(), y.data());
  double sum = 0;
  for (std::size_t i = 0; i < y.size(); ++i) sum += r[i] * y[i];
  return sum;
}

double relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double diff = 0, na = 0, nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  const double scale = std::sqrt(std::max(na, nb));
  REQUIRE(scale > 0);  // an all-zero gradient on both sides would hide a backward that does nothing
  return std::sqrt(diff) / scale;
}

template <typename V>
std::vector<double> to_double(const V& v) {
  return std::vector<double>(v.begin(), v.end());
}

}  // namespace

TEST_CASE("Direct conv kernels: forward, finite differences and the im2col path agree", "[conv2d][direct]") {
  const DirectRow table[] = {
      // c_in c_out K  P  N   H   W
      {3, 6, 5, 0, 2, 12, 12},  // the tutorial's conv1 shape, smaller image
      {6, 16, 5, 0, 2, 12, 12},  // the tutorial's conv2 shape, smaller image
      {1, 1, 3, 1, 1, 6, 5},     // one channel, odd width, padding
      {2, 5, 3, 2, 2, 7, 9},     // padding K-1
      {3, 7, 5, 1, 3, 9, 11},    // 7 = 6 + 1 output channels
      {4, 13, 3, 0, 2, 10, 8},   // 13 = 2*6 + 1 and 4*3 + 1
      {5, 2, 1, 0, 4, 5, 7},     // 1x1 kernel, 5 taps = 4 + 1
      {2, 4, 4, 1, 2, 8, 8},     // even kernel
      {5, 24, 3, 0, 2, 7, 9},    // 24 = 16 + 8 channels, 45 = 7*6 + 3 taps: weight gradient by channel (AVX2)
      {11, 16, 5, 0, 1, 9, 9},   // 275 taps: the by-channel forward's second chunk of taps
      {3, 25, 3, 1, 2, 9, 13},   // 25 = 2*12 + 1 channels, 27 = 2*12 + 3 taps
      {4, 48, 3, 1, 2, 8, 8},    // 48 = 32 + 16 channels: by channel with a half block on AVX-512
      {7, 11, 3, 1, 3, 6, 6},    // 11 channels, 63 = 5*12 + 3 taps, padding on a small image
      {8, 32, 3, 1, 2, 7, 7},    // 49 pixels by channel: half tiles of 6 pixels on AVX-512
      {16, 8, 5, 0, 2, 12, 12},  // input gradient by channel (the wide conv2's kind), one channel block
      {48, 20, 3, 0, 1, 7, 9},   // ... 48 = 32 + 16 input channels (a half block on AVX-512), 35 pixels
  };
  const simd::Isa isa = simd::active_isa();
  INFO("instruction set " << simd::name(isa));
  int scattered = 0, gathered = 0, by_channel = 0, by_pixel = 0, forward_by_channel = 0, half_tiles = 0;
  int dx_by_channel = 0;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& row : table) {
      const kernels::ConvGeometry g{row.c_in, row.h, row.w, row.k, 1, row.p};
      const kernels::direct::DirectPlan plan = kernels::direct::plan(isa, g, row.c_out);
      ++(plan.input_gradient_scatters ? scattered : gathered);
      dx_by_channel += plan.input_gradient_by_channel;
      forward_by_channel += plan.forward_by_channel && row.c_in * row.k * row.k > plan.forward_chunk_taps;
      half_tiles += plan.forward_by_channel && plan.forward_tile_pixels < plan.tile_rows;
      ++(plan.weight_gradient_by_channel ? by_channel : by_pixel);
      std::ostringstream what;
      what << "Conv2d(" << row.c_in << ", " << row.c_out << ", " << row.k << ", padding " << row.p << ") on ("
           << row.n << ", " << row.c_in << ", " << row.h << ", " << row.w << "), " << threads << " threads";
      INFO(what.str());
      REQUIRE(kernels::direct_conv_supported<float>(g, row.c_out));

      Generator gen(std::uint64_t(row.c_in * 100 + row.c_out * 10 + row.k));
      const std::int64_t x_size = row.n * g.image_size(), w_size = row.c_out * g.patch_size();
      const std::int64_t y_size = std::int64_t(row.n) * row.c_out * g.out_pixels();
      std::vector<float> x(static_cast<std::size_t>(x_size)), weight(static_cast<std::size_t>(w_size)), bias(static_cast<std::size_t>(row.c_out)),
          r(static_cast<std::size_t>(y_size));
      for (auto* v : {&x, &weight, &bias, &r})
        for (float& e : *v) e = float(gen.uniform(-1, 1));

      // Forward against the definition.
      kernels::Conv2dWorkspace<float> ws;
      std::vector<float> y(static_cast<std::size_t>(y_size));
      kernels::conv2d_forward(g, row.n, row.c_out, x.data(), weight.data(), bias.data(), y.data(), ws,
                              kernels::ConvAlgorithm::direct);
      std::vector<double> expected(static_cast<std::size_t>(y_size));
      const auto xd = to_double(x), wd = to_double(weight), bd = to_double(bias), rd = to_double(r);
      kernels::conv2d_forward_reference(g, row.n, row.c_out, xd.data(), wd.data(), bd.data(), expected.data());
      CHECK(relative_difference(to_double(y), expected) < 1e-6);

      // Backward with dy = r, so that the gradients are those of L = sum(r * y).
      std::vector<float> dx(static_cast<std::size_t>(x_size)), gw(static_cast<std::size_t>(w_size), 0.f), gb(static_cast<std::size_t>(row.c_out), 0.f);
      kernels::conv2d_backward(g, row.n, row.c_out, x.data(), weight.data(), r.data(), dx.data(), gw.data(), gb.data(),
                               ws, kernels::ConvAlgorithm::direct);

      // Central differences in double (on one thread: they are the slow part, and the two-thread
      // gradients are held to the im2col path below).
      auto numeric = [&](std::vector<double> v, auto&& loss_of) {
        std::vector<double> grad(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) {
          const double keep = v[i];
          v[i] = keep + 0.5;
          const double up = loss_of(v);
          v[i] = keep - 0.5;
          grad[i] = (up - loss_of(v)) / 1.0;
          v[i] = keep;
        }
        return grad;
      };
      if (threads == 1) {
        const auto dx_numeric = numeric(xd, [&](const std::vector<double>& v) { return loss_in_double(g, row.n, row.c_out, v, wd, bd, rd); });
        const auto gw_numeric = numeric(wd, [&](const std::vector<double>& v) { return loss_in_double(g, row.n, row.c_out, xd, v, bd, rd); });
        const auto gb_numeric = numeric(bd, [&](const std::vector<double>& v) { return loss_in_double(g, row.n, row.c_out, xd, wd, v, rd); });
        CHECK(relative_difference(to_double(dx), dx_numeric) < 1e-5);
        CHECK(relative_difference(to_double(gw), gw_numeric) < 1e-5);
        CHECK(relative_difference(to_double(gb), gb_numeric) < 1e-5);
      }

      // The im2col + GEMM path on the same data, accumulating onto the same starting gradients.
      std::vector<float> dx2(static_cast<std::size_t>(x_size)), gw2(static_cast<std::size_t>(w_size), 0.f), gb2(static_cast<std::size_t>(row.c_out), 0.f);
      kernels::conv2d_backward(g, row.n, row.c_out, x.data(), weight.data(), r.data(), dx2.data(), gw2.data(),
                               gb2.data(), ws, kernels::ConvAlgorithm::im2col_gemm);
      CHECK(relative_difference(to_double(dx), to_double(dx2)) < 1e-5);
      CHECK(relative_difference(to_double(gw), to_double(gw2)) < 1e-5);

      // Accumulation: a second backward adds the same weight gradient again.
      kernels::conv2d_backward(g, row.n, row.c_out, x.data(), weight.data(), r.data(), static_cast<float*>(nullptr), gw.data(), gb.data(), ws,
                               kernels::ConvAlgorithm::direct);
      for (auto& v : gw2) v *= 2;
      CHECK(relative_difference(to_double(gw), to_double(gw2)) < 1e-5);
    }
  }
  CHECK(scattered > dx_by_channel);
  CHECK(dx_by_channel >= 4);  // both rows, on 1 and 2 threads
  CHECK(gathered > 0);
  CHECK(by_channel >= 2);
  CHECK(by_pixel > 0);
  CHECK(forward_by_channel > 0);
  if (kernels::direct::plan(isa, {8, 7, 7, 3, 1, 1}, 32).tile_rows >= 12) CHECK(half_tiles > 0);
  set_num_threads(2);
}

TEST_CASE("The automatic choice mixes paths pass by pass and gets the same gradients", "[conv2d][direct]") {
  // (128 -> 130, 3x3): input gradient direct, weight gradient by im2col + GEMM (130 channels do not
  // fill registers of 8 or 16, so the direct weight gradient would run by pixel);
  // (3 -> 32, 3x3): input gradient by im2col + GEMM, weight gradient direct.
  struct Row {
    int c_in, c_out, h;
  };
  for (Row row : {Row{128, 130, 6}, Row{3, 32, 9}}) {
    const kernels::ConvGeometry g{row.c_in, row.h, row.h, 3, 1, 1};
    INFO("Conv2d(" << row.c_in << ", " << row.c_out << ", 3, padding 1) on " << row.h << "x" << row.h);
    REQUIRE(kernels::direct_conv_supported<float>(g, row.c_out));
    const int n = 3;
    auto direct = [&](kernels::ConvPass pass) {
      return kernels::select_conv_path<float>(g, row.c_out, pass, kernels::ConvAlgorithm::automatic,
                                              simd::active_isa(), n)
                 .algorithm == kernels::ConvAlgorithm::direct;
    };
    const bool direct_input = direct(kernels::ConvPass::input_gradient);
    const bool direct_weight = direct(kernels::ConvPass::weight_gradient);
    CHECK(direct_input != direct_weight);  // the rows above are chosen so that the two passes differ
    Generator gen(5);
    std::vector<float> x(static_cast<std::size_t>(n * g.image_size())), w(static_cast<std::size_t>(row.c_out * g.patch_size())),
        dy(static_cast<std::size_t>(std::int64_t(n) * row.c_out * g.out_pixels()));
    for (auto* v : {&x, &w, &dy})
      for (float& e : *v) e = float(gen.uniform(-1, 1));
    kernels::Conv2dWorkspace<float> ws;
    std::vector<std::vector<float>> dx(3, std::vector<float>(x.size())), gw(3, std::vector<float>(w.size(), 0.f)),
        gb(3, std::vector<float>(static_cast<std::size_t>(row.c_out), 0.f));
    const kernels::ConvAlgorithm algorithms[] = {kernels::ConvAlgorithm::automatic, kernels::ConvAlgorithm::direct,
                                                 kernels::ConvAlgorithm::im2col_gemm};
    for (int a = 0; a < 3; ++a)
      kernels::conv2d_backward(g, n, row.c_out, x.data(), w.data(), dy.data(), dx[std::size_t(a)].data(),
                               gw[std::size_t(a)].data(), gb[std::size_t(a)].data(), ws, algorithms[a]);
    for (int a = 1; a < 3; ++a) {
      CHECK(relative_difference(to_double(dx[0]), to_double(dx[std::size_t(a)])) < 1e-5);
      CHECK(relative_difference(to_double(gw[0]), to_double(gw[std::size_t(a)])) < 1e-5);
      CHECK(relative_difference(to_double(gb[0]), to_double(gb[std::size_t(a)])) < 1e-5);
    }
  }
}

TEST_CASE("Direct gradients are the same bits on 1 and 2 threads and on every run", "[conv2d][direct]") {
  // The batch is cut into fixed chunks whose partial sums are added in chunk order, whichever
  // thread ran them (detail::for_each_image_chunk), and the threads share that sum's rows only
  // where it is large (add_chunk_partials: the 64 -> 16 and 64 -> 12 layers; 6 -> 16 stays on one
  // thread). 16 output channels take the weight gradient by channel, 12 by pixel (on AVX2 and
  // AVX-512 alike), so both layouts of the sum are cut.
  struct Layer {
    kernels::ConvGeometry g;
    int c_out;
  };
  for (const Layer& layer : {Layer{{6, 12, 12, 5, 1, 0}, 16}, Layer{{64, 10, 10, 5, 1, 0}, 16}, Layer{{64, 10, 10, 5, 1, 0}, 12}}) {
    const kernels::ConvGeometry& g = layer.g;
    const int n = 11, c_out = layer.c_out;
    INFO("layer " << g.channels << " -> " << c_out << " at " << g.height << "x" << g.width);
    Generator gen(9);
    std::vector<float> x(static_cast<std::size_t>(n * g.image_size())),
        w(static_cast<std::size_t>(c_out * g.patch_size())),
        dy(static_cast<std::size_t>(std::int64_t(n) * c_out * g.out_pixels()));
    for (auto* v : {&x, &w, &dy})
      for (float& e : *v) e = float(gen.uniform(-1, 1));
    std::vector<std::vector<float>> gw, gb, dx;
    for (int threads : {1, 2, 2}) {
      set_num_threads(threads);
      kernels::Conv2dWorkspace<float> ws;
      gw.emplace_back(w.size(), 0.5f);  // the backward adds to what is there
      gb.emplace_back(static_cast<std::size_t>(c_out), 0.25f);
      dx.emplace_back(x.size(), 0.0f);
      kernels::conv2d_backward(g, n, c_out, x.data(), w.data(), dy.data(), dx.back().data(), gw.back().data(),
                               gb.back().data(), ws, kernels::ConvAlgorithm::direct);
    }
    set_num_threads(2);
    CHECK(gw[0] == gw[1]);
    CHECK(gw[1] == gw[2]);
    CHECK(gb[0] == gb[1]);
    CHECK(gb[1] == gb[2]);
    CHECK(dx[0] == dx[1]);
  }
}

TEST_CASE("Direct conv kernels are used where they apply and not elsewhere", "[conv2d][direct]") {
  CHECK(kernels::direct_conv_supported<float>({3, 32, 32, 5, 1, 0}, 6));
  CHECK_FALSE(kernels::direct_conv_supported<double>({3, 32, 32, 5, 1, 0}, 6));  // float only
  CHECK_FALSE(kernels::direct_conv_supported<float>({3, 32, 32, 5, 2, 0}, 6));   // stride 2
  CHECK_FALSE(kernels::direct_conv_supported<float>({3, 32, 32, 3, 1, 3}, 6));   // padding > K - 1
  CHECK_FALSE(kernels::direct_conv_supported<float>({3, 3, 3, 3, 1, 0}, 6));     // smaller than one tile
  // The input gradient scatters for the 5x5 valid convs (wide conv2: 144 vs 256 pixels per row of
  // work) and gathers for 3x3 padding-1 layers (equal work, plainer loads).
  for (simd::Isa isa : simd::all_isas()) {
    if (!simd::compiled(isa)) continue;  // plans are arithmetic: any compiled set can be asked, run or not
    INFO(simd::name(isa));
    CHECK(kernels::direct::plan(isa, {128, 14, 14, 5, 1, 0}, 16).input_gradient_scatters);
    CHECK(kernels::direct::plan(isa, {128, 14, 14, 5, 1, 0}, 16).input_gradient_by_channel);  // 100 pixels, not 144-160
    CHECK_FALSE(kernels::direct::plan(isa, {6, 14, 14, 5, 1, 0}, 16).input_gradient_by_channel);  // the tutorial's
    CHECK_FALSE(kernels::direct::plan(isa, {64, 32, 32, 3, 1, 1}, 64).input_gradient_scatters);
  }
}


TEST_CASE("Conv2d says which kernels it ran, and set_isa forces another instruction set", "[conv2d][direct]") {
  Sequential<float> net;
  net.add(Conv2d<float>(3, 16, 3, 1, 1));
  net.add(ReLU<float>());
  net.add(Conv2d<float>(16, 8, 3, 2, 1));
  CHECK(net.kernel_report().empty());  // nothing ran yet
  Tensor<float> x({2, 3, 12, 12});
  Generator gen(4);
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data()[i] = float(gen.uniform(-1, 1));
  const Tensor<float> y = net.forward(x).clone();
  const std::string report = net.kernel_report();
  INFO(report);
  const std::string active = std::string("direct/") + simd::name(simd::active_isa());
  CHECK(report.find("0: forward=" + active) != std::string::npos);        // stride 1: the direct kernels
  CHECK(report.find("2: forward=im2col_gemm") != std::string::npos);      // stride 2: im2col + GEMM
  auto& conv = dynamic_cast<Conv2d<float>&>(net[0]);
  for (simd::Isa isa : simd::all_isas()) {
    if (!simd::available(isa)) {
      CHECK_THROWS_WITH(conv.set_isa(isa), Catch::Contains(simd::name(isa)));
      continue;
    }
    conv.set_isa(isa);
    const Tensor<float> y_isa = net.forward(x);
    CHECK(net.kernel_report().find(std::string("0: forward=direct/") + simd::name(isa)) != std::string::npos);
    double worst = 0;
    for (std::int64_t i = 0; i < y.numel(); ++i)
      worst = std::max(worst, double(std::fabs(y.data()[i] - y_isa.data()[i])) / (1.0 + std::fabs(y.data()[i])));
    CHECK(worst < 1e-5);
  }
  conv.use_default_isa();
  CHECK(conv.isa() == simd::active_isa());
  CHECK_THROWS_WITH(simd::parse_isa("sse9"), Catch::Contains("portable, avx2 or avx512"));
}

TEST_CASE("With fewer images than threads the direct kernels share out channels, to the same bits",
          "[conv2d][direct]") {
  // detail::channel_parts cuts each image (forward, input gradient) or chunk (weight gradient) into
  // parts of whole register tiles of channels when the batch alone cannot feed the threads; each
  // output is then computed exactly as on one thread. Every kernel variant is on the list (direct::plan):
  // forward by pixel and by channel, input gradient gathered, scattered and by channel, weight
  // gradient by pixel (an odd channel count: a last tile of one) and by channel; and the fused ReLU
  // and max-pool, forward and backward.
  struct Row {
    int c_in, c_out, k, p, h, w;
  };
  const Row table[] = {
      {25, 13, 3, 1, 9, 13},  // gathered input gradient, weight gradient by pixel with a last single channel
      {13, 16, 5, 0, 14, 14}, // the tutorial's conv2 shape, wider: scattered input gradient, forward by channel
      {16, 8, 5, 0, 12, 12},  // input gradient by channel, one channel block
      {48, 32, 3, 0, 7, 9},   // ... several channel blocks; weight gradient by channel
      {5, 48, 3, 1, 8, 8},    // forward and weight gradient by channel over several blocks
  };
  const simd::Isa isa = simd::active_isa();
  INFO("instruction set " << simd::name(isa));
  using kernels::ConvActivation;
  // These layers are far smaller than the least work worth a part; let every tile be one here.
  struct LeastPartWork {
    std::int64_t keep = kernels::detail::part_multiply_adds();
    LeastPartWork() { kernels::detail::part_multiply_adds() = 1; }
    ~LeastPartWork() { kernels::detail::part_multiply_adds() = keep; }
  } least_part_work;
  int split = 0;
  for (const auto& row : table) {
    const kernels::ConvGeometry g{row.c_in, row.h, row.w, row.k, 1, row.p};
    const kernels::PoolGeometry pool = kernels::pool_2x2(g.out_height(), g.out_width());
    for (int n : {1, 3}) {
      INFO("Conv2d(" << row.c_in << ", " << row.c_out << ", " << row.k << ", padding " << row.p << ") on (" << n
                     << ", " << row.c_in << ", " << row.h << ", " << row.w << ")");
      Generator gen(std::uint64_t(row.c_in * 13 + row.c_out + n));
      const std::size_t x_size = std::size_t(n * g.image_size()), w_size = std::size_t(row.c_out * g.patch_size());
      const std::size_t y_size = std::size_t(n) * std::size_t(row.c_out * g.out_pixels());
      const std::size_t pooled_size = std::size_t(n) * std::size_t(row.c_out * pool.out_height() * pool.out_width());
      std::vector<float> x(x_size), weight(w_size), bias(std::size_t(row.c_out)), dy(y_size), pooled_dy(pooled_size);
      for (auto* v : {&x, &weight, &bias, &dy, &pooled_dy})
        for (float& e : *v) e = float(gen.uniform(-1, 1));
      // Everything the kernels compute for this batch on `threads` threads.
      struct Results {
        std::vector<float> y, relu_y, dx, gw, gb, relu_dx, relu_gw, pooled_y, pooled_dx, pooled_gw, pooled_gb;
        std::vector<std::int32_t> argmax;
        std::vector<std::pair<const char*, const std::vector<float>*>> named() const {
          return {{"y", &y},           {"relu_y", &relu_y},       {"dx", &dx},
                  {"gw", &gw},         {"gb", &gb},               {"relu_dx", &relu_dx},
                  {"relu_gw", &relu_gw}, {"pooled_y", &pooled_y}, {"pooled_dx", &pooled_dx},
                  {"pooled_gw", &pooled_gw}, {"pooled_gb", &pooled_gb}};
        }
      };
      auto run = [&](int threads) {
        set_num_threads(threads);
        kernels::Conv2dWorkspace<float> ws;
        Results r{std::vector<float>(y_size), std::vector<float>(y_size), std::vector<float>(x_size, -1.0f),
                  std::vector<float>(w_size, 0.5f), std::vector<float>(bias.size(), 0.5f),
                  std::vector<float>(x_size, -1.0f), std::vector<float>(w_size, 0.0f),
                  std::vector<float>(pooled_size), std::vector<float>(x_size, -1.0f),
                  std::vector<float>(w_size, 0.0f), std::vector<float>(bias.size(), 0.0f),
                  std::vector<std::int32_t>(pooled_size)};
        const auto direct = kernels::ConvAlgorithm::direct;
        kernels::conv2d_forward(g, n, row.c_out, x.data(), weight.data(), bias.data(), r.y.data(), ws, direct);
        kernels::conv2d_forward(g, n, row.c_out, x.data(), weight.data(), bias.data(), r.relu_y.data(), ws, direct,
                                ConvActivation::relu);
        kernels::conv2d_backward(g, n, row.c_out, x.data(), weight.data(), dy.data(), r.dx.data(), r.gw.data(),
                                 r.gb.data(), ws, direct);
        kernels::conv2d_backward(g, n, row.c_out, x.data(), weight.data(), dy.data(), r.relu_dx.data(),
                                 r.relu_gw.data(), static_cast<float*>(nullptr), ws, direct, r.relu_y.data());
        kernels::conv2d_maxpool_forward(g, n, row.c_out, x.data(), weight.data(), bias.data(),
                                        kernels::PooledOutput<float>{r.pooled_y.data(), r.argmax.data()}, ws, direct,
                                        ConvActivation::relu);
        kernels::conv2d_maxpool_backward(g, n, row.c_out, x.data(), weight.data(), pooled_dy.data(), r.argmax.data(),
                                         r.pooled_y.data(), r.pooled_dx.data(), r.pooled_gw.data(), r.pooled_gb.data(),
                                         ws, direct);
        return r;
      };
      const Results one = run(1);
      {  // one thread's results hold to the im2col path (the table above checks more)
        kernels::Conv2dWorkspace<float> ws;
        std::vector<float> y(y_size), dx(x_size), gw(w_size, 0.5f), gb(bias.size(), 0.5f);
        const auto im2col = kernels::ConvAlgorithm::im2col_gemm;
        kernels::conv2d_forward(g, n, row.c_out, x.data(), weight.data(), bias.data(), y.data(), ws, im2col);
        kernels::conv2d_backward(g, n, row.c_out, x.data(), weight.data(), dy.data(), dx.data(), gw.data(), gb.data(),
                                 ws, im2col);
        CHECK(relative_difference(to_double(one.y), to_double(y)) < 1e-5);
        CHECK(relative_difference(to_double(one.dx), to_double(dx)) < 1e-5);
        CHECK(relative_difference(to_double(one.gw), to_double(gw)) < 1e-5);
        CHECK(relative_difference(to_double(one.gb), to_double(gb)) < 1e-5);
      }
      for (int threads : {2, 3, 8}) {
        INFO(threads << " threads");
        // Parts are cut where the images (forward) or the weight gradient's chunks are fewer than
        // the threads: all but 3 images on 2 or 3 threads.
        split += kernels::detail::channel_parts(n, row.c_out, threads, 1 << 30) > 1;
        const Results many = run(threads);
        const auto expected = one.named(), got = many.named();
        for (std::size_t i = 0; i < expected.size(); ++i) {
          INFO(expected[i].first);
          CHECK(*got[i].second == *expected[i].second);
        }
        CHECK(many.argmax == one.argmax);
      }
    }
  }
  set_num_threads(2);
  CHECK(split == 20);  // 1 image on 2, 3 and 8 threads, 3 images on 8, for each of the 5 rows
}

TEST_CASE("channel_parts and block_range cut channels into whole tiles that cover them once", "[conv2d][direct]") {
  using kernels::detail::channel_parts;
  using kernels::detail::block_range;
  const std::int64_t large = std::int64_t(1) << 40, least = kernels::detail::part_multiply_adds();
  CHECK(channel_parts(4, 10, 2, large) == 1);   // the batch feeds 2 threads
  CHECK(channel_parts(1, 10, 2, large) == 2);   // one image: its channels in 2 parts
  CHECK(channel_parts(4, 10, 16, large) == 4);  // batch 4 on 16 threads: 4 parts each, 16 units
  CHECK(channel_parts(3, 10, 16, large) == 6);
  CHECK(channel_parts(1, 3, 16, large) == 3);       // no more parts than tiles
  CHECK(channel_parts(1, 10, 16, 3 * least) == 3);  // nor than the work pays for
  CHECK(channel_parts(1, 10, 16, least - 1) == 1);
  for (int channels : {1, 5, 16, 25, 128})
    for (int block : {2, 6, 16})
      for (int parts = 1; parts <= 9; ++parts) {
        INFO(channels << " channels, blocks of " << block << ", " << parts << " parts");
        int next = 0;
        for (int part = 0; part < parts; ++part) {
          const auto range = block_range(channels, block, part, parts);
          CHECK(range.begin == (range.empty() ? range.begin : next));
          if (range.empty()) continue;
          CHECK(range.begin % block == 0);
          CHECK((range.end == channels || range.end % block == 0));
          next = range.end;
        }
        CHECK(next == channels);
      }
}
