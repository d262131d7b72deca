// headnet/data/augment.hpp: data augmentation for image batches, reproducible image by image.
//
// Augmentation(options, seed) changes one image (C, H, W) in place, from random numbers drawn from a
// stream keyed on (seed, epoch, image index) alone: the same image in the same epoch is always
// changed the same way, whatever the batch, the thread or the order it is drawn in, so a resumed run
// sees exactly the same images and nothing but the epoch needs saving.
//   translate    shift by (dy, dx), each uniform in [-pad, pad]: a random crop of the image padded by
//                `pad`, with reflected (default) or zero borders
//   flip         none; random (each epoch, probability 1/2); or alternating: epoch 0 random, every
//                later epoch the opposite of the one before (the fast CIFAR-10 recipe: each image
//                is seen both ways every two epochs)
//   cutout       a size x size square, centred uniformly in the image and clipped at its borders,
//                set to 0 (the normalised mean)
// Order: translate, flip, cutout. Normalisation happens before (the loader's lookup table), so
// zero borders and cutout fill with the data set's mean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "headnet/core/error.hpp"
#include "headnet/core/random.hpp"

namespace headnet {
namespace data {

/// Horizontal flips: none, a random half of the images, or every image on every other epoch.
enum class Flip { none, random, alternating };

/// What augmentation applies to each training image.
struct AugmentOptions {
  int pad = 0;           ///< translation range: -pad .. pad pixels in each direction
  bool reflect = true;   ///< reflected borders (true) or zeros
  Flip flip = Flip::none;  ///< horizontal flips: none, random, or alternating by epoch
  int cutout = 0;        ///< side of the zeroed square; 0 for none
  /// Whether any augmentation is on.
  bool any() const { return pad > 0 || flip != Flip::none || cutout > 0; }
};

/// Applies AugmentOptions to batches; each image's draw depends on (seed, epoch, image) only.
class Augmentation {
 public:
  Augmentation() = default;
  /// Augmentation with `options`, keyed on `seed`.
  Augmentation(const AugmentOptions& options, std::uint64_t seed) : options_(options), seed_(seed) {
    detail::require_at_least("Augmentation", "pad", options.pad, 0);
    detail::require_at_least("Augmentation", "cutout", options.cutout, 0);
  }

  /// The options.
  const AugmentOptions& options() const { return options_; }
  /// Whether any augmentation is on.
  bool any() const { return options_.any(); }

  /// The stream of image `index` in `epoch`.
  Generator stream(std::int64_t epoch, std::int64_t index) const {
    Generator keyed(seed_, Generator::augmentation);
    Generator g(keyed.next() ^ (std::uint64_t(epoch) * 0x9E3779B97F4A7C15ULL) ^ (std::uint64_t(index) * 0xC2B2AE3D27D4EB4FULL),
                Generator::augmentation);
    return g;
  }
  /// Whether image `index` is mirrored in `epoch`.
  bool flipped(std::int64_t epoch, std::int64_t index) const {
    switch (options_.flip) {
      case Flip::none: return false;
      case Flip::random: return stream(epoch, index).uniform() < 0.5;
      case Flip::alternating: return (stream(0, index).uniform() < 0.5) != (epoch % 2 == 1);
    }
    return false;
  }

  /// Augments image (C, H, W) at `image` in place; `scratch` holds C * H * W floats.
  void apply(float* image, int C, int H, int W, std::int64_t epoch, std::int64_t index, float* scratch) const {
    Generator g = stream(epoch, index);
    // Always draw in the same order, so that each option's numbers do not depend on the others.
    const int dy = int(g.below(std::uint64_t(2 * options_.pad + 1))) - options_.pad;
    const int dx = int(g.below(std::uint64_t(2 * options_.pad + 1))) - options_.pad;
    const int cy = int(g.below(std::uint64_t(H))), cx = int(g.below(std::uint64_t(W)));
    const bool mirror = flipped(epoch, index);
    if (options_.pad > 0 || mirror) {
      std::copy(image, image + std::int64_t(C) * H * W, scratch);
      for (int c = 0; c < C; ++c) {
        const float* src = scratch + std::int64_t(c) * H * W;
        float* dst = image + std::int64_t(c) * H * W;
        for (int i = 0; i < H; ++i) {
          const int si = source(i + dy, H);
          for (int j = 0; j < W; ++j) {
            const int sj = source((mirror ? W - 1 - j : j) + dx, W);
            dst[i * W + j] = si < 0 || sj < 0 ? 0.0f : src[si * W + sj];
          }
        }
      }
    }
    if (options_.cutout > 0) {
      const int top = std::max(0, cy - options_.cutout / 2), bottom = std::min(H, cy - options_.cutout / 2 + options_.cutout);
      const int left = std::max(0, cx - options_.cutout / 2), right = std::min(W, cx - options_.cutout / 2 + options_.cutout);
      for (int c = 0; c < C; ++c)
        for (int i = top; i < bottom; ++i)
          std::fill(image + (std::int64_t(c) * H + i) * W + left, image + (std::int64_t(c) * H + i) * W + right, 0.0f);
    }
  }

 private:
  // The source row or column of padded position p: reflected (…, 2, 1, 0, 1, 2, …) or -1 for zero.
  int source(int p, int size) const {
    if (p >= 0 && p < size) return p;
    if (!options_.reflect || size == 1) return -1;
    const int period = 2 * (size - 1);
    int q = ((p % period) + period) % period;
    return q < size ? q : period - q;
  }

  AugmentOptions options_;
  std::uint64_t seed_ = 0;
};

}  // namespace data
}  // namespace headnet
