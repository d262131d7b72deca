// headnet/optim/adam.hpp: Adam and AdamW, with torch.optim's defaults and formulas (1.13).
//
// For each parameter p with gradient g, at step t (1, 2, ...):
//   Adam:   g = g + weight_decay * p                  (L2 penalty in the gradient)
//   AdamW:  p = p * (1 - lr * weight_decay)            (decoupled weight decay)
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
//   v_used = max(v_max, v) with amsgrad (v_max keeps that maximum), else v
//   p = p - (lr / (1 - beta1^t)) * m / (sqrt(v_used) / sqrt(1 - beta2^t) + eps)
// Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0 (Adam) or 1e-2 (AdamW).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "headnet/optim/optimizer.hpp"

namespace headnet {

namespace detail {
// The options both share; setters return the derived type so that chains keep it.
template <typename Derived>
struct AdamOptionsBase {
  Derived& lr(double v) { lr_ = v; return self(); }
  Derived& betas(double beta1, double beta2) { beta1_ = beta1; beta2_ = beta2; return self(); }
  Derived& eps(double v) { eps_ = v; return self(); }
  Derived& weight_decay(double v) { weight_decay_ = v; return self(); }
  Derived& amsgrad(bool v) { amsgrad_ = v; return self(); }
  double lr() const { return lr_; }
  double beta1() const { return beta1_; }
  double beta2() const { return beta2_; }
  double eps() const { return eps_; }
  double weight_decay() const { return weight_decay_; }
  bool amsgrad() const { return amsgrad_; }

 protected:
  AdamOptionsBase(double lr, double weight_decay) : lr_(lr), weight_decay_(weight_decay) {}
  Derived& self() { return static_cast<Derived&>(*this); }
  double lr_, beta1_ = 0.9, beta2_ = 0.999, eps_ = 1e-8, weight_decay_;
  bool amsgrad_ = false;
};
}  // namespace detail

/// AdamOptions(1e-3).betas(0.9, 0.999).eps(1e-8).weight_decay(0).amsgrad(false): PyTorch's defaults.
struct AdamOptions : detail::AdamOptionsBase<AdamOptions> {
  /// Adam's options with learning rate `lr`.
  explicit AdamOptions(double lr = 1e-3) : AdamOptionsBase(lr, 0.0) {}
};

/// AdamWOptions: the same, with weight_decay 1e-2 by default, as torch.optim.AdamW.
struct AdamWOptions : detail::AdamOptionsBase<AdamWOptions> {
  /// AdamW's options with learning rate `lr`.
  explicit AdamWOptions(double lr = 1e-3) : AdamOptionsBase(lr, 1e-2) {}
};

namespace detail {

// Adam when `decoupled` is false, AdamW when true.
template <typename T, typename Options, bool decoupled>
class AdamFamily : public Optimizer<T> {
 public:
  using Group = ParamGroup<T, Options>;

  explicit AdamFamily(std::vector<Parameter<T>> parameters, const Options& options = Options())
      : AdamFamily(std::vector<Group>{{std::move(parameters), options}}) {}
  explicit AdamFamily(std::vector<Group> groups) {
    for (auto& group : groups) {
      check(group.options);
      this->add_group(std::move(group.params));
      options_.push_back(group.options);
      state_.emplace_back();
      for (const auto& p : this->params_.back()) {
        State s{this->add_buffer("exp_avg", p), this->add_buffer("exp_avg_sq", p), Tensor<T>()};
        if (group.options.amsgrad()) s.max_exp_avg_sq = this->add_buffer("max_exp_avg_sq", p);
        state_.back().push_back(s);
      }
    }
  }

  std::string type() const override { return decoupled ? "AdamW" : "Adam"; }

  void step() override {
    const double t = double(this->steps_ + 1);
    for (std::size_t g = 0; g < options_.size(); ++g) {
      const Options& o = options_[g];
      const T beta1 = T(o.beta1()), beta2 = T(o.beta2()), wd = T(o.weight_decay()), eps = T(o.eps());
      const T decay = T(1 - o.lr() * o.weight_decay());
      const T step_size = T(o.lr() / (1 - std::pow(o.beta1(), t)));
      const T correction2_sqrt = T(std::sqrt(1 - std::pow(o.beta2(), t)));
      const bool amsgrad = o.amsgrad();
      for (std::size_t i = 0; i < this->params_[g].size(); ++i) {
        T* p = this->params_[g][i].value.data();
        const T* grad = this->params_[g][i].grad.data();
        T* m = state_[g][i].exp_avg.data();
        T* v = state_[g][i].exp_avg_sq.data();
        T* v_max = state_[g][i].max_exp_avg_sq.data();
        const std::int64_t n = this->params_[g][i].value.numel();
        for (std::int64_t j = 0; j < n; ++j) {
          T g_j = grad[j];
          if (decoupled) {
            p[j] *= decay;
          } else if (wd != T(0)) {
            g_j += wd * p[j];
          }
          m[j] = m[j] * beta1 + (T(1) - beta1) * g_j;
          v[j] = v[j] * beta2 + (T(1) - beta2) * g_j * g_j;
          T second = v[j];
          if (amsgrad) second = v_max[j] = std::max(v_max[j], v[j]);
          p[j] -= step_size * m[j] / (std::sqrt(second) / correction2_sqrt + eps);
        }
      }
    }
    ++this->steps_;
  }

  const Options& options(std::size_t group = 0) const { return options_.at(group); }
  double lr(std::size_t group) const override { return options_.at(group).lr(); }
  void set_lr(std::size_t group, double lr) override { options_.at(group).lr(lr); }
  using Optimizer<T>::set_lr;
  double momentum(std::size_t group) const override { return options_.at(group).beta1(); }
  void set_momentum(std::size_t group, double beta1) override {
    options_.at(group).betas(beta1, options_.at(group).beta2());
  }

 private:
  struct State {
    Tensor<T> exp_avg, exp_avg_sq, max_exp_avg_sq;
  };
  void check(const Options& o) const {
    const std::string who = type();
    detail::require_nonnegative(who, "learning rate", o.lr());
    detail::require_nonnegative(who, "eps", o.eps());
    detail::require_nonnegative(who, "weight_decay", o.weight_decay());
    if (!(o.beta1() >= 0 && o.beta1() < 1)) throw Error(who + ": beta1 must be in [0, 1), got " + option_value(o.beta1()));
    if (!(o.beta2() >= 0 && o.beta2() < 1)) throw Error(who + ": beta2 must be in [0, 1), got " + option_value(o.beta2()));
  }

  std::vector<Options> options_;
  std::vector<std::vector<State>> state_;  // [group][parameter]
};

}  // namespace detail

template <typename T>
class Adam : public detail::AdamFamily<T, AdamOptions, false> {
 public:
  using detail::AdamFamily<T, AdamOptions, false>::AdamFamily;
};

template <typename T>
class AdamW : public detail::AdamFamily<T, AdamWOptions, true> {
 public:
  using detail::AdamFamily<T, AdamWOptions, true>::AdamFamily;
};

}  // namespace headnet
