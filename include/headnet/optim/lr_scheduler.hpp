// headnet/optim/lr_scheduler.hpp: learning-rate schedules, as torch.optim.lr_scheduler.
//
// Contract
// - A schedule drives an optimiser's learning rate (and, for OneCycleLR, its momentum) as a
//   function of its position t = last_epoch(): 0 on construction, +1 on every step(). Call step()
//   after optimizer.step(), once per batch or once per epoch (the Trainer's `schedule_per` says
//   which); t counts whichever you chose.
// - Every schedule is a closed form of t and each group's base learning rate (the group's lr when
//   the schedule was built), so set_last_epoch(t) puts a resumed run exactly where it was. Values
//   match PyTorch's (its recursive forms differ only by rounding).
// - LambdaLR: base * f(t).  StepLR: base * gamma^floor(t / step_size).  MultiStepLR: base *
//   gamma^(milestones passed).  CosineAnnealingLR: eta_min + (base - eta_min)(1 + cos(pi t / T_max))/2.
//   OneCycleLR: PyTorch's one-cycle (warm-up to max_lr, anneal to max_lr / div / final_div, momentum
//   cycled the other way).  PiecewiseLinearLR: base * the factor interpolated linearly between
//   (step, factor) knots, flat beyond the ends (numpy.interp; the fast CIFAR-10 recipe's warm-up
//   then linear decay).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "headnet/core/error.hpp"
#include "headnet/optim/optimizer.hpp"

namespace headnet {

/// The base of learning-rate schedules: a closed form lr_at(group, t), so resuming at any t is exact.
template <typename T>
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  /// "StepLR", ...: what checkpoints record, to refuse another schedule.
  virtual std::string type() const = 0;

  /// Advances one position and sets the optimiser's learning rates.
  void step() { set_last_epoch(last_epoch_ + 1); }
  /// The position t (PyTorch's last_epoch).
  std::int64_t last_epoch() const { return last_epoch_; }
  /// Moves to position t (resume) and sets the optimiser's learning rates.
  void set_last_epoch(std::int64_t t) {
    last_epoch_ = t;
    apply();
  }
  /// The learning rate of group g at position t.
  virtual double lr_at(std::size_t group, std::int64_t t) const = 0;
  /// The learning rate group g started from.
  double base_lr(std::size_t group) const { return base_lrs_.at(group); }
  /// Changes what group g's factor multiplies (0 stops the group training from the next step on).
  void set_base_lr(std::size_t group, double lr) {
    base_lrs_.at(group) = lr;
    apply();
  }

 protected:
  /// A schedule of `optimizer`'s groups, from their current learning rates.
  explicit LRScheduler(Optimizer<T>& optimizer) : optimizer_(optimizer) {
    for (std::size_t g = 0; g < optimizer.num_groups(); ++g) base_lrs_.push_back(optimizer.lr(g));
  }
  /// Writes lr_at(g, t) into every group of the optimiser.
  virtual void apply() {
    for (std::size_t g = 0; g < optimizer_.num_groups(); ++g) optimizer_.set_lr(g, lr_at(g, last_epoch_));
  }
  /// Derived constructors call this last: PyTorch's constructors take the initial step to t = 0.
  void start() { set_last_epoch(0); }

  Optimizer<T>& optimizer_;  ///< the optimiser whose learning rates the schedule sets
  std::vector<double> base_lrs_;  ///< each group's starting learning rate
  std::int64_t last_epoch_ = 0;  ///< the position t
};

/// lr = base_lr * factor(t), as torch.optim.lr_scheduler.LambdaLR.
template <typename T>
class LambdaLR : public LRScheduler<T> {
 public:
  /// A schedule multiplying each base learning rate by factor(t).
  LambdaLR(Optimizer<T>& optimizer, std::function<double(std::int64_t)> factor)
      : LRScheduler<T>(optimizer), factor_(std::move(factor)) {
    if (!factor_) throw Error("LambdaLR: the factor function is empty");
    this->start();
  }
  std::string type() const override { return "LambdaLR"; }
  double lr_at(std::size_t g, std::int64_t t) const override { return this->base_lrs_.at(g) * factor_(t); }

 private:
  std::function<double(std::int64_t)> factor_;
};

/// lr = base_lr * gamma^(t / step_size), as torch.optim.lr_scheduler.StepLR.
template <typename T>
class StepLR : public LRScheduler<T> {
 public:
  /// Decays by gamma every step_size positions.
  StepLR(Optimizer<T>& optimizer, std::int64_t step_size, double gamma = 0.1)
      : LRScheduler<T>(optimizer), step_size_(step_size), gamma_(gamma) {
    if (step_size < 1) throw Error("StepLR: step_size must be at least 1, got " + std::to_string(step_size));
    this->start();
  }
  std::string type() const override { return "StepLR"; }
  double lr_at(std::size_t g, std::int64_t t) const override {
    return this->base_lrs_.at(g) * std::pow(gamma_, double(t / step_size_));
  }

 private:
  std::int64_t step_size_;
  double gamma_;
};

/// lr = base_lr * gamma^(milestones passed), as torch.optim.lr_scheduler.MultiStepLR.
template <typename T>
class MultiStepLR : public LRScheduler<T> {
 public:
  /// Decays by gamma at each milestone.
  MultiStepLR(Optimizer<T>& optimizer, std::vector<std::int64_t> milestones, double gamma = 0.1)
      : LRScheduler<T>(optimizer), milestones_(std::move(milestones)), gamma_(gamma) {
    if (!std::is_sorted(milestones_.begin(), milestones_.end())) throw Error("MultiStepLR: milestones must be increasing");
    this->start();
  }
  std::string type() const override { return "MultiStepLR"; }
  double lr_at(std::size_t g, std::int64_t t) const override {
    const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), t) - milestones_.begin();
    return this->base_lrs_.at(g) * std::pow(gamma_, double(passed));
  }

 private:
  std::vector<std::int64_t> milestones_;
  double gamma_;
};

/// Cosine annealing from base_lr to eta_min over T_max positions, as torch.optim.lr_scheduler.CosineAnnealingLR.
template <typename T>
class CosineAnnealingLR : public LRScheduler<T> {
 public:
  /// Anneals to eta_min over T_max positions.
  CosineAnnealingLR(Optimizer<T>& optimizer, std::int64_t T_max, double eta_min = 0)
      : LRScheduler<T>(optimizer), T_max_(T_max), eta_min_(eta_min) {
    if (T_max < 1) throw Error("CosineAnnealingLR: T_max must be at least 1, got " + std::to_string(T_max));
    this->start();
  }
  std::string type() const override { return "CosineAnnealingLR"; }
  double lr_at(std::size_t g, std::int64_t t) const override {
    const double pi = 3.14159265358979323846;
    return eta_min_ + (this->base_lrs_.at(g) - eta_min_) * (1 + std::cos(pi * double(t) / double(T_max_))) / 2;
  }

 private:
  std::int64_t T_max_;
  double eta_min_;
};

/// OneCycleLR's options, with PyTorch's defaults.
struct OneCycleOptions {
  double pct_start = 0.3;  ///< fraction of the cycle spent increasing the learning rate
  bool cosine = true;  ///< anneal_strategy: "cos" (true) or "linear"
  bool cycle_momentum = true;  ///< cycle the momentum (or Adam's beta1) inversely to the learning rate
  double base_momentum = 0.85;  ///< the momentum at the learning rate's peak
  double max_momentum = 0.95;  ///< the momentum at the cycle's ends
  double div_factor = 25;  ///< initial lr = max_lr / div_factor
  double final_div_factor = 1e4;  ///< final lr = initial lr / final_div_factor
  bool three_phase = false;  ///< warm up, anneal back to the initial lr, then to the final one
};

/// One learning rate per group: max_lr; the group's lr on construction is replaced (PyTorch sets
/// initial_lr = max_lr / div_factor). The cycle ends at t = total_steps - 1; as in PyTorch, t may
/// reach total_steps (one step() after every one of total_steps optimiser steps), not beyond.
template <typename T>
class OneCycleLR : public LRScheduler<T> {
 public:
  /// A one-cycle schedule peaking at max_lr over total_steps steps.
  OneCycleLR(Optimizer<T>& optimizer, double max_lr, std::int64_t total_steps, OneCycleOptions o = OneCycleOptions())
      : LRScheduler<T>(optimizer), o_(o), total_steps_(total_steps) {
    if (total_steps < 2) throw Error("OneCycleLR: total_steps must be at least 2, got " + std::to_string(total_steps));
    if (!(o.pct_start >= 0 && o.pct_start <= 1)) throw Error("OneCycleLR: pct_start must be in [0, 1]");
    const double initial = max_lr / o.div_factor, min_lr = initial / o.final_div_factor;
    const double total = double(total_steps);
    if (o.three_phase) {
      phases_ = {{o.pct_start * total - 1, initial, max_lr, o.max_momentum, o.base_momentum},
                 {2 * o.pct_start * total - 2, max_lr, initial, o.base_momentum, o.max_momentum},
                 {total - 1, initial, min_lr, o.max_momentum, o.max_momentum}};
    } else {
      phases_ = {{o.pct_start * total - 1, initial, max_lr, o.max_momentum, o.base_momentum},
                 {total - 1, max_lr, min_lr, o.base_momentum, o.max_momentum}};
    }
    for (auto& lr : this->base_lrs_) lr = initial;
    this->start();
  }
  std::string type() const override { return "OneCycleLR"; }

  double lr_at(std::size_t, std::int64_t t) const override { return value(t, true); }
  /// The momentum at position t.
  double momentum_at(std::int64_t t) const { return value(t, false); }

 protected:
  /// Sets the learning rates and, with cycle_momentum, the momenta.
  void apply() override {
    if (this->last_epoch_ > total_steps_) {
      throw Error("OneCycleLR: tried to step " + std::to_string(this->last_epoch_ + 1) +
                  " times; the specified number of total steps is " + std::to_string(total_steps_));
    }
    LRScheduler<T>::apply();
    if (o_.cycle_momentum)
      for (std::size_t g = 0; g < this->optimizer_.num_groups(); ++g) this->optimizer_.set_momentum(g, momentum_at(this->last_epoch_));
  }

 private:
  struct Phase {
    double end_step, start_lr, end_lr, start_momentum, end_momentum;
  };
  double anneal(double start, double end, double pct) const {
    if (o_.cosine) return end + (start - end) / 2.0 * (std::cos(3.14159265358979323846 * pct) + 1);
    return (end - start) * pct + start;
  }
  double value(std::int64_t t, bool lr) const {
    double start_step = 0;
    for (std::size_t i = 0; i < phases_.size(); ++i) {
      const Phase& p = phases_[i];
      if (double(t) <= p.end_step || i + 1 == phases_.size()) {
        const double pct = (double(t) - start_step) / (p.end_step - start_step);
        return lr ? anneal(p.start_lr, p.end_lr, pct) : anneal(p.start_momentum, p.end_momentum, pct);
      }
      start_step = p.end_step;
    }
    return 0;
  }

  OneCycleOptions o_;
  std::int64_t total_steps_;
  std::vector<Phase> phases_;
};

/// Linear interpolation between (step, factor) points, constant outside them; lr = base_lr * factor(t).
template <typename T>
class PiecewiseLinearLR : public LRScheduler<T> {
 public:
  /// steps increasing; factors multiply each group's base learning rate.
  PiecewiseLinearLR(Optimizer<T>& optimizer, std::vector<double> steps, std::vector<double> factors)
      : LRScheduler<T>(optimizer), steps_(std::move(steps)), factors_(std::move(factors)) {
    if (steps_.empty() || steps_.size() != factors_.size()) {
      throw Error("PiecewiseLinearLR: needs as many factors as steps, at least one (got " + std::to_string(steps_.size()) +
                  " steps and " + std::to_string(factors_.size()) + " factors)");
    }
    for (std::size_t i = 1; i < steps_.size(); ++i)
      if (!(steps_[i] >= steps_[i - 1])) throw Error("PiecewiseLinearLR: steps must be increasing");
    this->start();
  }
  std::string type() const override { return "PiecewiseLinearLR"; }
  double lr_at(std::size_t g, std::int64_t t) const override { return this->base_lrs_.at(g) * factor(double(t)); }
  /// The factor at position t.
  double factor(double t) const {
    if (t <= steps_.front()) return factors_.front();
    if (t >= steps_.back()) return factors_.back();
    const std::size_t i = std::size_t(std::upper_bound(steps_.begin(), steps_.end(), t) - steps_.begin());
    const double x0 = steps_[i - 1], x1 = steps_[i];
    return factors_[i - 1] + (factors_[i] - factors_[i - 1]) * (t - x0) / (x1 - x0);
  }

 private:
  std::vector<double> steps_, factors_;
};

}  // namespace headnet
