// headnet/train/model_average.hpp: ModelAverage, a running average of a model's whole state, for
// lookahead and exponential moving averages (EMA).
//
//   update(alpha):    average = alpha average + (1 - alpha) model, for every parameter and every
//                     floating-point buffer (BatchNorm's running statistics); whole-number buffers
//                     (num_batches_tracked) are copied
//   copy_to_model():  model = average
// Lookahead (the fast CIFAR-10 recipe, every k steps): update(alpha), then copy_to_model(); at the
// end of the run copy_to_model(). EMA: update(decay) after every step, and evaluate a model that
// copy_to_model() filled (keep the trained state with state_dict().clone() if training goes on).
// average() is a state dict: Trainer::checkpoint_extra("lookahead", average.average()) puts it in
// checkpoints, so a resumed run continues the same average.
#pragma once

#include <algorithm>

#include "headnet/core/state_dict.hpp"
#include "headnet/layers/layer.hpp"

namespace headnet {
namespace train {

/// An exponential moving average of a model's parameters and buffers (lookahead, EMA).
template <typename T>
class ModelAverage {
 public:
  /// An average of `model`'s state, starting from its current values.
  explicit ModelAverage(Layer<T>& model) : model_(model.state_dict()), average_(model_.clone()) {}

  /// average = alpha * average + (1 - alpha) * model (integer buffers copied).
  void update(double alpha) {
    const T a = T(alpha), b = T(1 - alpha);
    auto avg = average_.begin();
    for (auto m = model_.begin(); m != model_.end(); ++m, ++avg) {
      Tensor<T> target = avg->value;
      const T* source = m->value.data();
      T* out = target.data();
      const std::int64_t n = target.numel();
      if (m->integer) {
        std::copy(source, source + n, out);
        continue;
      }
      for (std::int64_t i = 0; i < n; ++i) out[i] = a * out[i] + b * source[i];
    }
  }

  /// Writes the average into the model.
  void copy_to_model() {
    auto avg = average_.begin();
    for (auto m = model_.begin(); m != model_.end(); ++m, ++avg) {
      Tensor<T> target = m->value;
      std::copy(avg->value.begin(), avg->value.end(), target.begin());
    }
  }

  /// The average, as a state dict of the model's keys (its own storage).
  const StateDict<T>& average() const { return average_; }

 private:
  StateDict<T> model_;    // handles to the model's tensors
  StateDict<T> average_;  // the average, in storage of its own
};

}  // namespace train
}  // namespace headnet
