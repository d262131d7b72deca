// The float max-pool kernels (AVX2 for the 2x2, stride-2 window where the CPU has it) against the
// double ones, which always run the scalar loops: same outputs, same argmax, same input gradient,
// on data full of ties and NaNs, and on sizes whose output rows are not a whole number of 8-window
// vectors or whose input is odd (floor mode: the last row or column belongs to no window).
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <headnet/headnet.hpp>

using namespace headnet;

TEST_CASE("Float max pooling equals the scalar double path, ties and NaNs included", "[maxpool2d]") {
  struct Size {
    int h, w;
  };
  const Size sizes[] = {{28, 28}, {10, 10}, {32, 34}, {6, 18}, {7, 9}, {4, 16}, {5, 33}};
  Generator gen(17);
  for (const auto& size : sizes) {
    for (int k : {2, 3}) {
      const kernels::PoolGeometry g{size.h, size.w, k, k == 2 ? 2 : 1};
      INFO("input " << size.h << "x" << size.w << ", kernel " << k);
      const std::int64_t planes = 5, in_plane = std::int64_t(size.h) * size.w;
      const std::int64_t out_plane = std::int64_t(g.out_height()) * g.out_width();
      std::vector<float> x(std::size_t(planes * in_plane));
      for (float& v : x) {
        const double u = gen.uniform(0, 1);
        v = u < 0.03 ? std::nanf("") : float(std::floor(gen.uniform(-3, 3)));  // few levels: many ties
      }
      std::vector<double> xd(x.begin(), x.end());
      std::vector<float> y(std::size_t(planes * out_plane));
      std::vector<double> yd(y.size());
      std::vector<std::int32_t> arg(y.size()), argd(y.size());
      kernels::maxpool2d_forward(g, planes, x.data(), y.data(), arg.data());
      kernels::maxpool2d_forward(g, planes, xd.data(), yd.data(), argd.data());
      std::size_t nans = 0;
      for (std::size_t i = 0; i < y.size(); ++i) {
        INFO("output " << i);
        REQUIRE(arg[i] == argd[i]);
        if (std::isnan(yd[i])) {
          ++nans;
          REQUIRE(std::isnan(y[i]));
        } else {
          REQUIRE(double(y[i]) == yd[i]);
        }
      }
      CHECK(nans > 0);

      std::vector<float> dy(y.size());
      for (float& v : dy) v = float(gen.uniform(-1, 1));
      std::vector<double> dyd(dy.begin(), dy.end());
      std::vector<float> dx(x.size(), 123.0f);  // garbage: backward must overwrite every element
      std::vector<double> dxd(x.size());
      kernels::maxpool2d_backward(g, planes, dy.data(), arg.data(), dx.data());
      kernels::maxpool2d_backward(g, planes, dyd.data(), argd.data(), dxd.data());
      for (std::size_t i = 0; i < dx.size(); ++i) {
        INFO("input " << i);
        REQUIRE(double(dx[i]) == Approx(dxd[i]).margin(1e-6));
      }
    }
  }
}
