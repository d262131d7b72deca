// Tensor: shapes, views that share storage, deep copies, storage reuse and bounds checks.
#include <catch2/catch.hpp>
#include <algorithm>

#include <headnet/headnet.hpp>

using namespace headnet;

TEST_CASE("Tensor is row-major NCHW", "[tensor]") {
  Tensor<float> t({2, 3, 4, 5});
  CHECK(t.numel() == 120);
  CHECK(t.rank() == 4);
  t(1, 2, 3, 4) = 7;
  CHECK(t.data()[((1 * 3 + 2) * 4 + 3) * 5 + 4] == 7);
  CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  CHECK(t.shape().str() == "(2, 3, 4, 5)");
}

TEST_CASE("reshape and slice are views; clone is a copy", "[tensor]") {
  Tensor<double> t({4, 6});
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data()[i] = double(i);
  Tensor<double> r = t.reshape({2, 2, 3, 2});
  CHECK(r.shares_storage_with(t));
  r(1, 1, 2, 1) = -1;
  CHECK(t(3, 5) == -1);
  Tensor<double> s = t.slice(1, 3);
  CHECK(s.shape() == Shape{2, 6});
  CHECK(s(0, 0) == 6);
  s(1, 0) = 100;
  CHECK(t(2, 0) == 100);
  Tensor<double> c = t.clone();
  CHECK_FALSE(c.shares_storage_with(t));
  c(0, 0) = 55;
  CHECK(t(0, 0) == 0);
  CHECK_THROWS_WITH(t.reshape({5, 5}), "Tensor::reshape: cannot view (4, 6) (24 elements) as (5, 5) (25 elements)");
  CHECK_THROWS_AS(t.slice(3, 5), ShapeError);
}

TEST_CASE("resize keeps storage that is large enough", "[tensor]") {
  Tensor<float> t({4, 10});
  const float* before = t.data();
  t.resize({2, 10});
  CHECK(t.data() == before);
  t.resize({4, 10});
  CHECK(t.data() == before);
  t.resize({5, 10});
  CHECK(t.numel() == 50);
}

TEST_CASE("Eigen maps see the tensor's memory", "[tensor]") {
  Tensor<float> a({2, 3});
  a.matrix() << 1, 2, 3, 4, 5, 6;
  CHECK(a(1, 0) == 4);
  Eigen::MatrixXf product = a.matrix() * a.matrix().transpose();
  CHECK(product(0, 1) == 32);
  CHECK_THROWS_AS(a.matrix(4, 2), ShapeError);
}

TEST_CASE("at() always checks bounds; operator() does in debug builds", "[tensor]") {
  Tensor<float> t({2, 3});
  CHECK_THROWS_WITH(t.at(2, 0), "Tensor: index 2 out of range for dimension 0 of (2, 3)");
  CHECK_THROWS_WITH(t.at(0, 0, 0), "Tensor: 3 indices for a tensor of rank 2 (2, 3)");
#ifndef NDEBUG
  CHECK_THROWS_AS(t(0, 3), std::out_of_range);
#endif
}

TEST_CASE("Generator: same seed, same sequence; shuffle is a permutation", "[random]") {
  Generator a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    auto x = a.next();
    CHECK(x == b.next());
    (void)c.next();
  }
  CHECK(Generator(42).next() != Generator(43).next());
  // The streams of one seed share no numbers: a data order drawn with seed s must not replay the
  // numbers that drew the initial weights with seed s.
  {
    Generator weights(42), order(42, Generator::data_order), augmentation(42, Generator::augmentation);
    CHECK(Generator(42, Generator::weights).next() == Generator(42).next());
    std::vector<std::uint64_t> drawn;
    for (int i = 0; i < 1000; ++i) drawn.push_back(weights.next());
    std::sort(drawn.begin(), drawn.end());
    for (int i = 0; i < 1000; ++i) {
      CHECK_FALSE(std::binary_search(drawn.begin(), drawn.end(), order.next()));
      CHECK_FALSE(std::binary_search(drawn.begin(), drawn.end(), augmentation.next()));
    }
  }
  std::vector<int> v(100);
  for (int i = 0; i < 100; ++i) v[std::size_t(i)] = i;
  Generator g(1);
  g.shuffle(v.begin(), v.end());
  CHECK(v != std::vector<int>(v.size()));
  std::vector<int> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 100; ++i) CHECK(sorted[std::size_t(i)] == i);
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    double u = g.uniform();
    REQUIRE(u >= 0);
    REQUIRE(u < 1);
    sum += u;
  }
  CHECK(sum / 10000 == Approx(0.5).margin(0.02));
}

TEST_CASE("Initialisation follows PyTorch's bounds and the seed", "[init]") {
  manual_seed(3);
  Conv2d<float> a(3, 6, 5);
  manual_seed(3);
  Conv2d<float> b(3, 6, 5);
  CHECK(std::equal(a.weight().begin(), a.weight().end(), b.weight().begin()));
  Conv2d<float> c(3, 6, 5);
  CHECK_FALSE(std::equal(a.weight().begin(), a.weight().end(), c.weight().begin()));
  const float bound = 1.0f / std::sqrt(75.0f);
  float lo = 1, hi = -1;
  for (float w : a.weight()) lo = std::min(lo, w), hi = std::max(hi, w);
  CHECK(lo >= -bound);
  CHECK(hi <= bound);
  CHECK(hi - lo > bound);  // spread over the range, not all zero
  for (float v : a.bias()) CHECK(std::abs(v) <= bound);
}
