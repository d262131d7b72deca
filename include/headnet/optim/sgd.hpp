// headnet/optim/sgd.hpp: SGD, stochastic gradient descent with PyTorch's torch.optim.SGD semantics.
//
// For each parameter p with gradient g, one step() is
//   g = g + weight_decay * p
//   if momentum != 0:  v = g on the first step, else v = momentum * v + (1 - dampening) * g
//                      g = g + momentum * v  if nesterov,  else g = v
//   p = p - lr * g
// with each parameter group's own options. Momentum buffers are allocated once, on construction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "headnet/optim/optimizer.hpp"

namespace headnet {

/// SGDOptions(0.001).momentum(0.9): the learning rate is required, the rest default to 0 / false.
struct SGDOptions {
  /// SGD's options with learning rate `lr` and PyTorch's defaults.
  explicit SGDOptions(double lr) : lr_(lr) {}
  /// The learning rate.
  SGDOptions& lr(double v) { lr_ = v; return *this; }
  /// The momentum (0: none).
  SGDOptions& momentum(double v) { momentum_ = v; return *this; }
  /// The momentum's dampening.
  SGDOptions& dampening(double v) { dampening_ = v; return *this; }
  /// L2 weight decay added to the gradient.
  SGDOptions& weight_decay(double v) { weight_decay_ = v; return *this; }
  /// Nesterov momentum.
  SGDOptions& nesterov(bool v) { nesterov_ = v; return *this; }
  /// The learning rate.
  double lr() const { return lr_; }
  /// The momentum.
  double momentum() const { return momentum_; }
  /// The dampening.
  double dampening() const { return dampening_; }
  /// The weight decay.
  double weight_decay() const { return weight_decay_; }
  /// Whether the momentum is Nesterov's.
  bool nesterov() const { return nesterov_; }

 private:
  double lr_, momentum_ = 0, dampening_ = 0, weight_decay_ = 0;
  bool nesterov_ = false;
};

/// Stochastic gradient descent with momentum, as torch.optim.SGD (same arithmetic).
template <typename T>
class SGD : public Optimizer<T> {
 public:
  /// A parameter group with its options.
  using Group = ParamGroup<T, SGDOptions>;

  /// SGD over `parameters`, one group.
  SGD(std::vector<Parameter<T>> parameters, const SGDOptions& options) : SGD(std::vector<Group>{{std::move(parameters), options}}) {}
  /// SGD over parameter groups, each with its options.
  explicit SGD(std::vector<Group> groups) {
    for (auto& group : groups) {
      check(group.options);
      this->add_group(std::move(group.params));
      options_.push_back(group.options);
      velocity_.emplace_back();
      for (const auto& p : this->params_.back())
        velocity_.back().push_back(group.options.momentum() != 0 ? this->add_buffer("momentum_buffer", p) : Tensor<T>());
    }
  }

  std::string type() const override { return "SGD"; }

  void step() override {
    for (std::size_t g = 0; g < options_.size(); ++g) {
      const SGDOptions& o = options_[g];
      const T lr = T(o.lr()), momentum = T(o.momentum()), wd = T(o.weight_decay());
      const T keep = T(1) - T(o.dampening());
      const bool nesterov = o.nesterov();
      for (std::size_t i = 0; i < this->params_[g].size(); ++i) {
        T* p = this->params_[g][i].value.data();
        const T* grad = this->params_[g][i].grad.data();
        T* v = velocity_[g][i].data();
        const std::int64_t n = this->params_[g][i].value.numel();
        for (std::int64_t j = 0; j < n; ++j) {
          T g_j = grad[j];
          if (wd != T(0)) g_j += wd * p[j];
          if (momentum != T(0)) {
            v[j] = this->steps_ == 0 ? g_j : momentum * v[j] + keep * g_j;
            g_j = nesterov ? g_j + momentum * v[j] : v[j];
          }
          p[j] -= lr * g_j;
        }
      }
    }
    ++this->steps_;
  }

  /// The options of group `group`.
  const SGDOptions& options(std::size_t group = 0) const { return options_.at(group); }
  double lr(std::size_t group) const override { return options_.at(group).lr(); }
  void set_lr(std::size_t group, double lr) override { options_.at(group).lr(lr); }
  using Optimizer<T>::set_lr;
  double momentum(std::size_t group) const override { return options_.at(group).momentum(); }
  /// Momentum can change (a one-cycle schedule) but not from or to 0: the buffers exist or not.
  void set_momentum(std::size_t group, double momentum) override {
    if ((momentum != 0) != (options_.at(group).momentum() != 0)) {
      throw Error("SGD: cannot change momentum between zero and non-zero after construction (group " +
                  std::to_string(group) + ")");
    }
    options_.at(group).momentum(momentum);
  }

 private:
  static void check(const SGDOptions& o) {
    if (!(o.lr() >= 0)) throw Error("SGD: learning rate must be >= 0, got " + std::to_string(o.lr()));
    detail::require_nonnegative("SGD", "momentum", o.momentum());
    detail::require_nonnegative("SGD", "weight_decay", o.weight_decay());
    if (o.nesterov() && (o.momentum() <= 0 || o.dampening() != 0)) {
      throw Error("SGD: nesterov needs momentum > 0 and dampening = 0");
    }
  }

  std::vector<SGDOptions> options_;
  std::vector<std::vector<Tensor<T>>> velocity_;  // [group][parameter], empty without momentum
};

}  // namespace headnet
