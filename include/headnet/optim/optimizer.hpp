// headnet/optim/optimizer.hpp: Optimizer<T>, what SGD, Adam and AdamW share.
//
// Contract
// - An optimiser holds handles to parameters (from Layer::parameters()) in one or more parameter
//   groups, each with its own options (learning rate, momentum, weight decay, ...), and updates the
//   layers in place on step(). Frozen parameters (requires_grad = false) are left out when it is
//   built, as PyTorch skips parameters without a gradient.
// - zero_grad() zeroes the gradients it holds; step() never allocates.
// - lr(g) / set_lr(g, v) are what learning-rate schedules drive; momentum(g) / set_momentum(g, v)
//   the momentum a one-cycle schedule cycles (SGD's momentum, Adam's beta1).
// - state_dict() / load_state_dict() hold everything a checkpoint needs to continue bit-exactly:
//   the per-parameter buffers ("momentum_buffer.conv1.weight"), the step count and every group's
//   learning rate and momentum. load_state_dict() checks all of it before changing anything.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "headnet/core/error.hpp"
#include "headnet/core/state_dict.hpp"
#include "headnet/layers/layer.hpp"

namespace headnet {

/// A parameter group: parameters and the options they are trained with.
template <typename T, typename Options>
struct ParamGroup {
  std::vector<Parameter<T>> params;  ///< the group's parameters
  Options options;  ///< the options they are trained with
};

/// What an optimiser saves in a checkpoint: its buffers, its step count, and each group's lr and momentum.
template <typename T>
struct OptimizerState {
  StateDict<T> buffers;  ///< momentum buffers, Adam's moments, ...
  std::int64_t steps = 0;  ///< steps taken
  std::vector<double> lr;  ///< each group's learning rate
  std::vector<double> momentum;  ///< each group's momentum
};

/// The base of optimisers: parameter groups, step(), zero_grad(), state dicts.
template <typename T>
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  /// "SGD", "Adam", ...: what checkpoints record, to refuse another optimiser.
  virtual std::string type() const = 0;

  /// Updates every parameter from its gradient.
  virtual void step() = 0;
  /// Sets every gradient to zero.
  void zero_grad() {
    for (auto& group : params_)
      for (auto& p : group) p.grad.zero();
  }

  /// The number of parameter groups.
  std::size_t num_groups() const { return params_.size(); }
  /// The parameters of group g.
  const std::vector<Parameter<T>>& group_parameters(std::size_t g) const { return params_.at(g); }
  /// Every parameter of every group, in order.
  std::vector<Parameter<T>> parameters() const {
    std::vector<Parameter<T>> all;
    for (const auto& group : params_) all.insert(all.end(), group.begin(), group.end());
    return all;
  }

  /// The learning rate of group `group`.
  virtual double lr(std::size_t group) const = 0;
  /// Sets the learning rate of group `group`.
  virtual void set_lr(std::size_t group, double lr) = 0;
  /// Sets the learning rate of every group.
  void set_lr(double lr) {
    for (std::size_t g = 0; g < num_groups(); ++g) set_lr(g, lr);
  }
  /// The momentum of group `group` (Adam: beta1).
  virtual double momentum(std::size_t group) const = 0;
  /// Sets the momentum of group `group` (Adam: beta1).
  virtual void set_momentum(std::size_t group, double momentum) = 0;

  /// Steps taken.
  std::int64_t steps() const { return steps_; }

  /// The optimiser's state, to save.
  OptimizerState<T> state_dict() const {
    OptimizerState<T> s;
    for (const auto& b : buffers_) s.buffers.add(b.name, b.value);
    s.steps = steps_;
    for (std::size_t g = 0; g < num_groups(); ++g) {
      s.lr.push_back(lr(g));
      s.momentum.push_back(momentum(g));
    }
    return s;
  }
  /// Restores a state saved by state_dict(); throws Error naming what does not match.
  void load_state_dict(const OptimizerState<T>& s) {
    const std::string who = type() + ": load_state_dict: ";
    if (s.lr.size() != num_groups() || s.momentum.size() != num_groups()) {
      throw Error(who + "the state has " + std::to_string(s.lr.size()) + " parameter groups, the optimiser " +
                  std::to_string(num_groups()));
    }
    if (s.buffers.size() != buffers_.size()) {
      throw Error(who + "the state has " + std::to_string(s.buffers.size()) + " buffers, the optimiser " +
                  std::to_string(buffers_.size()));
    }
    for (const auto& b : buffers_) {
      const auto* given = s.buffers.find(b.name);
      if (!given) throw Error(who + "missing buffer '" + b.name + "'");
      if (given->value.shape() != b.value.shape()) {
        throw Error(who + "buffer '" + b.name + "' has shape " + given->value.shape().str() + ", expected " +
                    b.value.shape().str());
      }
    }
    for (auto& b : buffers_) {
      const auto& given = s.buffers.at(b.name);
      std::copy(given.begin(), given.end(), b.value.begin());
    }
    steps_ = s.steps;
    for (std::size_t g = 0; g < num_groups(); ++g) {
      set_lr(g, s.lr[g]);
      set_momentum(g, s.momentum[g]);
    }
  }

 protected:
  /// Takes a group's trainable parameters; checks that values and gradients match.
  void add_group(std::vector<Parameter<T>> params) {
    std::vector<Parameter<T>> kept;
    for (auto& p : params) {
      if (!p.requires_grad) continue;
      if (p.value.shape() != p.grad.shape()) {
        throw ShapeError(type() + ": parameter '" + p.name + "' has value " + p.value.shape().str() + " but gradient " +
                         p.grad.shape().str());
      }
      kept.push_back(std::move(p));
    }
    params_.push_back(std::move(kept));
  }
  /// A per-parameter buffer named "<kind>.<parameter name>", zero-initialised, saved in checkpoints.
  Tensor<T> add_buffer(const std::string& kind, const Parameter<T>& p) {
    Tensor<T> t(p.value.shape());
    buffers_.push_back({kind + "." + p.name, t});
    return t;
  }

  std::vector<std::vector<Parameter<T>>> params_;  ///< per group
  std::vector<Buffer<T>> buffers_;  ///< the optimiser's state tensors, named as in its state dict
  std::int64_t steps_ = 0;  ///< steps taken
};

namespace detail {
inline std::string option_value(double v) { return std::to_string(v); }
// "SGD: momentum must be >= 0, got -1.000000"
inline void require_nonnegative(const std::string& who, const char* what, double v) {
  if (!(v >= 0)) throw Error(who + ": " + what + " must be >= 0, got " + option_value(v));
}
}  // namespace detail

}  // namespace headnet
