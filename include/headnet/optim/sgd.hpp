// headnet/optim/sgd.hpp: SGD, stochastic gradient descent with PyTorch's torch.optim.SGD semantics.
//
// For each parameter p with gradient g, one step() is
//   g = g + weight_decay * p
//   if momentum != 0:  v = g on the first step, else v = momentum * v + (1 - dampening) * g
//                      g = g + momentum * v  if nesterov,  else g = v
//   p = p - lr * g
// The optimiser holds handles to the parameters (from Sequential::parameters()), so it updates the
// network in place; its velocity buffers are allocated once, on construction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "headnet/core/error.hpp"
#include "headnet/layers/layer.hpp"

namespace headnet {

// SGDOptions(0.001).momentum(0.9): the learning rate is required, the rest default to 0 / false.
struct SGDOptions {
  explicit SGDOptions(double lr) : lr_(lr) {}
  SGDOptions& lr(double v) { lr_ = v; return *this; }
  SGDOptions& momentum(double v) { momentum_ = v; return *this; }
  SGDOptions& dampening(double v) { dampening_ = v; return *this; }
  SGDOptions& weight_decay(double v) { weight_decay_ = v; return *this; }
  SGDOptions& nesterov(bool v) { nesterov_ = v; return *this; }
  double lr() const { return lr_; }
  double momentum() const { return momentum_; }
  double dampening() const { return dampening_; }
  double weight_decay() const { return weight_decay_; }
  bool nesterov() const { return nesterov_; }

 private:
  double lr_, momentum_ = 0, dampening_ = 0, weight_decay_ = 0;
  bool nesterov_ = false;
};

template <typename T>
class SGD {
 public:
  SGD(std::vector<Parameter<T>> parameters, const SGDOptions& options)
      : parameters_(std::move(parameters)), options_(options) {
    if (!(options.lr() >= 0)) throw Error("SGD: learning rate must be >= 0, got " + std::to_string(options.lr()));
    if (!(options.momentum() >= 0)) throw Error("SGD: momentum must be >= 0, got " + std::to_string(options.momentum()));
    if (!(options.weight_decay() >= 0)) {
      throw Error("SGD: weight_decay must be >= 0, got " + std::to_string(options.weight_decay()));
    }
    if (options.nesterov() && (options.momentum() <= 0 || options.dampening() != 0)) {
      throw Error("SGD: nesterov needs momentum > 0 and dampening = 0");
    }
    for (auto& p : parameters_) {
      if (p.value.shape() != p.grad.shape()) {
        throw ShapeError("SGD: parameter '" + p.name + "' has value " + p.value.shape().str() + " but gradient " +
                         p.grad.shape().str());
      }
      velocity_.push_back(options.momentum() != 0 ? Tensor<T>(p.value.shape()) : Tensor<T>());
    }
  }

  void step() {
    const T lr = T(options_.lr()), momentum = T(options_.momentum()), wd = T(options_.weight_decay());
    const T keep = T(1) - T(options_.dampening());
    const bool nesterov = options_.nesterov();
    for (std::size_t i = 0; i < parameters_.size(); ++i) {
      T* p = parameters_[i].value.data();
      const T* grad = parameters_[i].grad.data();
      T* v = velocity_[i].data();
      const std::int64_t n = parameters_[i].value.numel();
      for (std::int64_t j = 0; j < n; ++j) {
        T g = grad[j];
        if (wd != T(0)) g += wd * p[j];
        if (momentum != T(0)) {
          v[j] = steps_ == 0 ? g : momentum * v[j] + keep * g;
          g = nesterov ? g + momentum * v[j] : v[j];
        }
        p[j] -= lr * g;
      }
    }
    ++steps_;
  }

  void zero_grad() {
    for (auto& p : parameters_) p.grad.zero();
  }

  const SGDOptions& options() const { return options_; }
  void set_lr(double lr) { options_.lr(lr); }

  // The momentum buffers and the step count: what a checkpoint must save to resume exactly.
  std::vector<Tensor<T>>& velocity() { return velocity_; }
  std::int64_t steps() const { return steps_; }
  void set_steps(std::int64_t steps) { steps_ = steps; }
  const std::vector<Parameter<T>>& parameters() const { return parameters_; }

 private:
  std::vector<Parameter<T>> parameters_;
  std::vector<Tensor<T>> velocity_;
  SGDOptions options_;
  std::int64_t steps_ = 0;
};

}  // namespace headnet
