// headnet/train/tta.hpp: test-time augmentation, as the fast CIFAR-10 recipe weighs it.
//
// evaluate_tta(model, loader, level) classifies by averaged logits (model in eval mode):
//   level 0   f(x)
//   level 1   1/2 f(x) + 1/2 f(mirror x)
//   level 2   1/4 f(x) + 1/4 f(mirror x) + 1/8 sum over the two one-pixel diagonal translations
//             t (reflect-pad 1, crop at (0, 0) and at (2, 2)) of f(t x) + f(mirror t x)
// i.e. 1, 2 or 6 forward passes per image. Returns the same Evaluation as evaluate().
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "headnet/data/loader.hpp"
#include "headnet/layers/layer.hpp"
#include "headnet/train/evaluate.hpp"

namespace headnet {
namespace train {

namespace detail {
// view = x shifted by (d, d) with reflected borders (d in -1, 0, 1), mirrored when asked.
inline void tta_view(const Tensor<float>& x, int d, bool mirror, Tensor<float>& view) {
  const std::int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  view.resize(x.shape());
  auto reflect = [](std::int64_t p, std::int64_t size) { return p < 0 ? -p : p >= size ? 2 * (size - 1) - p : p; };
  for (std::int64_t plane = 0; plane < N * C; ++plane) {
    const float* src = x.data() + plane * H * W;
    float* dst = view.data() + plane * H * W;
    for (std::int64_t i = 0; i < H; ++i) {
      const std::int64_t si = reflect(i + d, H);
      for (std::int64_t j = 0; j < W; ++j) dst[i * W + j] = src[si * W + reflect((mirror ? W - 1 - j : j) + d, W)];
    }
  }
}
}  // namespace detail

/// evaluate() with test-time augmentation: level 0 (none), 1 (mirror) or 2 (mirror and translations).
inline Evaluation evaluate_tta(Layer<float>& model, data::Loader& loader, int level) {
  if (level < 0 || level > 2) throw Error("evaluate_tta: level must be 0, 1 or 2, got " + std::to_string(level));
  struct View {
    int shift;
    bool mirror;
    float weight;
  };
  std::vector<View> views{{0, false, 1.0f}};
  if (level == 1) views = {{0, false, 0.5f}, {0, true, 0.5f}};
  if (level == 2)
    views = {{0, false, 0.25f}, {0, true, 0.25f}, {-1, false, 0.125f}, {-1, true, 0.125f}, {1, false, 0.125f}, {1, true, 0.125f}};
  const bool was_training = model.is_training();
  model.eval();
  detail::Tally tally;
  loader.start_epoch();
  Tensor<float> images, view, logits;
  std::vector<std::int32_t> labels;
  while (loader.next(images, labels)) {
    if (images.rank() != 4) throw ShapeError("evaluate_tta: expects images (N, C, H, W), got " + images.shape().str());
    for (std::size_t v = 0; v < views.size(); ++v) {
      detail::tta_view(images, views[v].shift, views[v].mirror, view);
      const Tensor<float> out = model.forward(view);
      if (v == 0) logits.resize(out.shape()), logits.zero();
      for (std::int64_t i = 0; i < out.numel(); ++i) logits.data()[i] += views[v].weight * out.data()[i];
    }
    tally.add(logits, labels);
  }
  model.train(was_training);
  return tally.finish();
}

}  // namespace train
}  // namespace headnet
