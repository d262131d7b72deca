// Augmentation (data/augment.hpp) and the loader's use of it: translations against an independent
// padded-crop reference (reflect and zero borders), flips (random, alternating), cutout, streams
// keyed on (seed, epoch, image) so that batches, threads and resumes see the same images, and
// drop_last.
#include <catch2/catch.hpp>

#include <set>

#include <headnet/data/cifar10.hpp>
#include <headnet/headnet.hpp>

#include "fake_images.hpp"

using namespace headnet;
using namespace headnet::data;

namespace {

std::vector<float> ramp(int C, int H, int W) {
  std::vector<float> v(std::size_t(C * H * W));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(i) + 1.0f;  // every value distinct and non-zero
  return v;
}

// The reference: pad by `pad` (numpy's "reflect" or zeros), then crop H x W at (pad + dy, pad + dx).
float reference_pixel(const std::vector<float>& x, int C, int H, int W, int c, int i, int j, int dy, int dx, bool reflect) {
  (void)C;
  auto at = [&](int r, int s) -> float {
    if (reflect) {
      while (r < 0 || r >= H) r = r < 0 ? -r : 2 * (H - 1) - r;
      while (s < 0 || s >= W) s = s < 0 ? -s : 2 * (W - 1) - s;
    } else if (r < 0 || r >= H || s < 0 || s >= W) {
      return 0.0f;
    }
    return x[std::size_t((c * H + r) * W + s)];
  };
  return at(i + dy, j + dx);
}

data::ImageSet augment_images(int count) { return headnet_test::fake_images(count, 21); }

}  // namespace

TEST_CASE("Translation is a padded random crop, reflected or zero-bordered", "[augment]") {
  const int C = 2, H = 5, W = 7;
  const std::vector<float> x = ramp(C, H, W);
  std::vector<float> scratch(x.size());
  for (bool reflect : {true, false}) {
    AugmentOptions o;
    o.pad = 3;
    o.reflect = reflect;
    Augmentation a(o, 4);
    std::set<std::pair<int, int>> seen;
    for (std::int64_t index = 0; index < 200; ++index) {
      std::vector<float> y = x;
      a.apply(y.data(), C, H, W, 1, index, scratch.data());
      // Find the shift that explains the output: exactly one must.
      int matches = 0;
      for (int dy = -3; dy <= 3; ++dy)
        for (int dx = -3; dx <= 3; ++dx) {
          bool all = true;
          for (int c = 0; c < C && all; ++c)
            for (int i = 0; i < H && all; ++i)
              for (int j = 0; j < W && all; ++j)
                all = y[std::size_t((c * H + i) * W + j)] == reference_pixel(x, C, H, W, c, i, j, dy, dx, reflect);
          if (all) ++matches, seen.insert({dy, dx});
        }
      CHECK(matches == 1);
    }
    CHECK(seen.size() == 49);  // every shift in [-3, 3]^2 occurs
  }
}

TEST_CASE("Flips: random about half the time, alternating every epoch; cutout zeroes one square", "[augment]") {
  const int C = 3, H = 6, W = 6;
  const std::vector<float> x = ramp(C, H, W);
  std::vector<float> scratch(x.size());
  AugmentOptions random_flip;
  random_flip.flip = Flip::random;
  Augmentation r(random_flip, 1);
  int flipped = 0;
  for (std::int64_t i = 0; i < 4000; ++i) flipped += r.flipped(0, i);
  CHECK(std::abs(flipped - 2000) < 130);  // 4 sd
  std::vector<float> y = x;
  std::int64_t mirrored_image = 0;
  while (!r.flipped(0, mirrored_image)) ++mirrored_image;
  r.apply(y.data(), C, H, W, 0, mirrored_image, scratch.data());
  for (int c = 0; c < C; ++c)
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < W; ++j) CHECK(y[std::size_t((c * H + i) * W + j)] == x[std::size_t((c * H + i) * W + W - 1 - j)]);

  AugmentOptions alternating;
  alternating.flip = Flip::alternating;
  Augmentation a(alternating, 1);
  int first = 0;
  for (std::int64_t i = 0; i < 500; ++i) {
    first += a.flipped(0, i);
    for (int epoch = 1; epoch < 5; ++epoch) CHECK(a.flipped(epoch, i) != a.flipped(epoch - 1, i));
  }
  CHECK(std::abs(first - 250) < 50);

  AugmentOptions cut;
  cut.cutout = 3;
  Augmentation cutout(cut, 2);
  for (std::int64_t i = 0; i < 50; ++i) {
    std::vector<float> z = x;
    cutout.apply(z.data(), C, H, W, 0, i, scratch.data());
    int zeros = 0;
    for (float v : z) zeros += v == 0.0f;
    CHECK(zeros % C == 0);
    CHECK(zeros >= C * 2 * 2);  // a 3x3 square clipped by at most one row and one column
    CHECK(zeros <= C * 3 * 3);
  }
  CHECK_THROWS_WITH(Augmentation(AugmentOptions{-1}, 0), "Augmentation: pad must be at least 0, got -1");
}

TEST_CASE("Augmented batches depend on seed, epoch and image only; resume sees the same images", "[augment][loader]") {
  const ImageSet set = augment_images(300);
  AugmentOptions o;
  o.pad = 2;
  o.flip = Flip::alternating;
  o.cutout = 8;
  auto make = [&](int batch) {
    BatchLoader loader(set, batch, true, 3);
    loader.set_augmentation(o, 3);
    return loader;
  };
  // The same epoch through different batch sizes and thread counts: the same images.
  std::vector<float> a, b;
  Tensor<float> images;
  std::vector<std::int32_t> labels;
  set_num_threads(1);
  BatchLoader small = make(7);
  small.start_epoch();  // epoch 1
  while (small.next(images, labels)) a.insert(a.end(), images.begin(), images.end());
  set_num_threads(2);
  BatchLoader large = make(100);  // batches of 64 or more convert in parallel
  large.start_epoch();
  while (large.next(images, labels)) b.insert(b.end(), images.begin(), images.end());
  CHECK(a == b);
  // Another epoch: other shifts and flipped flips.
  large.start_epoch();
  large.next(images, labels);
  CHECK(!std::equal(images.begin(), images.end(), b.begin()));

  // Resume mid-epoch from the state: the rest of the epoch is the same.
  BatchLoader first = make(32);
  first.start_epoch();
  first.start_epoch();
  first.next(images, labels);
  const LoaderState saved = first.state();
  std::vector<float> rest_a, rest_b;
  while (first.next(images, labels)) rest_a.insert(rest_a.end(), images.begin(), images.end());
  BatchLoader second = make(32);
  second.set_state(saved);
  CHECK(second.epoch() == 2);
  while (second.next(images, labels)) rest_b.insert(rest_b.end(), images.begin(), images.end());
  CHECK(rest_a == rest_b);
  CHECK(rest_a.size() == std::size_t(300 - 32) * 3072);
}

TEST_CASE("drop_last leaves out the last partial batch", "[loader]") {
  const ImageSet set = augment_images(70);
  BatchLoader loader(set, 32, true, 1);
  CHECK(loader.batches_per_epoch() == 3);
  loader.set_drop_last(true);
  CHECK(loader.batches_per_epoch() == 2);
  CHECK(loader.size() == 64);
  Tensor<float> images;
  std::vector<std::int32_t> labels;
  int batches = 0;
  while (loader.next(images, labels)) {
    ++batches;
    CHECK(labels.size() == 32);
  }
  CHECK(batches == 2);
}
