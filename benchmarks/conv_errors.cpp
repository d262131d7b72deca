// headnet-conv-errors: how far each convolution path's float results are from the exact ones.
//
// For the fast recipe's 3x3 layers (and one shape with odd sizes and channels), random inputs in
// [-1, 1], it computes the forward, the input gradient and the weight gradient in float on every
// path (direct, im2col_gemm, winograd_2x2, winograd_3x3, winograd_4x4) and prints, as a Markdown table, the
// relative error of each against the same computation in double: |float - exact| / |exact| (norms
// over the whole tensor). docs/benchmarks.md ("Winograd") holds its output; tests/test_conv_winograd.cpp
// bounds the same quantity.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <headnet/headnet.hpp>

using namespace headnet;

namespace {

template <typename A, typename B>
double relative_error(const std::vector<A>& a, const std::vector<B>& b) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    norm += double(b[i]) * double(b[i]);
  }
  return std::sqrt(diff / norm);
}

}  // namespace

int main() {
  struct Layer {
    int c_in, c_out, size, batch;
  };
  const Layer layers[] = {{24, 64, 31, 2}, {64, 64, 15, 2}, {64, 256, 15, 1}, {256, 256, 7, 2}, {256, 256, 3, 4}, {17, 33, 9, 3}};
  using kernels::ConvAlgorithm;
  const ConvAlgorithm paths[] = {ConvAlgorithm::direct, ConvAlgorithm::im2col_gemm, ConvAlgorithm::winograd_2x2,
                                 ConvAlgorithm::winograd_3x3, ConvAlgorithm::winograd_4x4};
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> uniform(-1, 1);
  std::printf("Relative error of float results, forward / input gradient / weight gradient (instruction set %s)\n\n",
              simd::name(simd::active_isa()));
  std::printf("| layer |");
  for (auto path : paths) std::printf(" %s |", kernels::name(path));
  std::printf("\n|---|---|---|---|---|---|\n");
  for (const Layer& l : layers) {
    const kernels::ConvGeometry g{l.c_in, l.size, l.size, 3, 1, 1};
    const std::size_t x_size = std::size_t(l.batch) * g.image_size(), w_size = std::size_t(l.c_out) * g.patch_size();
    const std::size_t y_size = std::size_t(l.batch) * l.c_out * g.out_pixels();
    std::vector<float> x(x_size), w(w_size), dy(y_size);
    for (auto* v : {&x, &w, &dy})
      for (float& e : *v) e = float(uniform(rng));
    // The exact results: the same inputs in double (im2col + GEMM; double rounding is 1e-16).
    const std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end()), dyd(dy.begin(), dy.end());
    std::vector<double> y_exact(y_size), dx_exact(x_size), dw_exact(w_size, 0.0);
    kernels::Conv2dWorkspace<double> ws_double;
    kernels::conv2d_forward(g, l.batch, l.c_out, xd.data(), wd.data(), static_cast<const double*>(nullptr),
                            y_exact.data(), ws_double, ConvAlgorithm::im2col_gemm);
    kernels::conv2d_backward(g, l.batch, l.c_out, xd.data(), wd.data(), dyd.data(), dx_exact.data(), dw_exact.data(),
                             static_cast<double*>(nullptr), ws_double, ConvAlgorithm::im2col_gemm);
    std::printf("| %d->%d at %dx%d, batch %d |", l.c_in, l.c_out, l.size, l.size, l.batch);
    for (auto path : paths) {
      kernels::Conv2dWorkspace<float> ws;
      std::vector<float> y(y_size), dx(x_size), dw(w_size, 0.0f);
      kernels::conv2d_forward(g, l.batch, l.c_out, x.data(), w.data(), static_cast<const float*>(nullptr), y.data(), ws,
                              path);
      kernels::conv2d_backward(g, l.batch, l.c_out, x.data(), w.data(), dy.data(), dx.data(), dw.data(),
                               static_cast<float*>(nullptr), ws, path);
      std::printf(" %.1e / %.1e / %.1e |", relative_error(y, y_exact), relative_error(dx, dx_exact),
                  relative_error(dw, dw_exact));
    }
    std::printf("\n");
  }
}
