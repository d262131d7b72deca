// headnet/train/evaluate.hpp: accuracy, per-class accuracy and the confusion matrix of a classifier.
//
// evaluate(model, loader) runs the model in eval mode over one epoch of the loader (which should not
// shuffle) and restores the mode the model was in. The number of classes is the logits' width.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "headnet/data/loader.hpp"
#include "headnet/layers/layer.hpp"

namespace headnet {
namespace train {

/// A model's accuracy on a data set, overall, per class and as a confusion matrix.
struct Evaluation {
  double accuracy = 0;                               ///< percent
  std::vector<double> class_accuracy;                ///< percent, per class
  std::vector<std::vector<std::int64_t>> confusion;  ///< [true][predicted]
  std::int64_t samples = 0;  ///< images evaluated
};

namespace detail {
// Counts predictions (the largest logit) against labels into an Evaluation.
struct Tally {
  Evaluation e;
  std::int64_t correct = 0;
  void add(const Tensor<float>& logits, const std::vector<std::int32_t>& labels) {
    const std::int64_t classes = logits.size(1);
    if (e.confusion.empty()) e.confusion.assign(std::size_t(classes), std::vector<std::int64_t>(std::size_t(classes), 0));
    for (std::int64_t i = 0; i < logits.size(0); ++i) {
      const float* row = logits.data() + i * classes;
      const auto predicted = std::size_t(std::max_element(row, row + classes) - row);
      const auto truth = std::size_t(labels[std::size_t(i)]);
      if (truth < e.confusion.size()) ++e.confusion[truth][predicted];
      correct += predicted == truth;
      ++e.samples;
    }
  }
  Evaluation finish() {
    e.accuracy = e.samples ? 100.0 * double(correct) / double(e.samples) : 0;
    for (std::size_t c = 0; c < e.confusion.size(); ++c) {
      std::int64_t total = 0;
      for (auto v : e.confusion[c]) total += v;
      e.class_accuracy.push_back(total ? 100.0 * double(e.confusion[c][c]) / double(total) : 0);
    }
    return e;
  }
};
}  // namespace detail

/// Accuracy, per-class accuracy and confusion matrix of `model` (in eval mode) over one pass of `loader`.
inline Evaluation evaluate(Layer<float>& model, data::Loader& loader) {
  const bool was_training = model.is_training();
  model.eval();
  detail::Tally tally;
  loader.start_epoch();
  Tensor<float> images;
  std::vector<std::int32_t> labels;
  while (loader.next(images, labels)) tally.add(model.forward(images), labels);
  model.train(was_training);
  return tally.finish();
}

}  // namespace train
}  // namespace headnet
