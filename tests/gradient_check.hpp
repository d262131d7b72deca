// tests/gradient_check.hpp: the one numerical gradient checker every layer goes through.
//
// check_gradients(layer, input) compares a layer's hand-written backward with central finite
// differences, in double precision, for the scalar L = sum(forward(x) * r) with a fixed random r:
//   dL/dx_i ~ (L(x + h e_i) - L(x - h e_i)) / (2h)
// for every input element and every parameter element. It reports the worst relative error
// ||analytic - numeric|| / max(||analytic||, ||numeric||) over the input gradient and each parameter
// gradient. A gradient that is zero on both sides is a failure, not a pass: it would hide a backward
// that does nothing.
//
// To add a layer to the suite, add a row to the table in test_layers.cpp.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <headnet/headnet.hpp>

namespace headnet_test {

using headnet::Generator;
using headnet::Layer;
using headnet::Shape;
using headnet::Tensor;

struct GradientReport {
  std::string worst_name;    // "input", "weight", ...
  double worst_error = 0.0;  // relative error of the worst gradient
  bool some_gradient_all_zero = false;
  std::string zero_name;
};

inline double dot(const Tensor<double>& a, const Tensor<double>& b) {
  double s = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) s += a.data()[i] * b.data()[i];
  return s;
}

inline double relative_error(const std::vector<double>& analytic, const std::vector<double>& numeric) {
  double diff = 0, na = 0, nn = 0;
  for (std::size_t i = 0; i < analytic.size(); ++i) {
    diff += (analytic[i] - numeric[i]) * (analytic[i] - numeric[i]);
    na += analytic[i] * analytic[i];
    nn += numeric[i] * numeric[i];
  }
  const double scale = std::sqrt(std::max(na, nn));
  return scale > 0 ? std::sqrt(diff) / scale : 0.0;
}

inline bool all_zero(const std::vector<double>& v) {
  for (double x : v)
    if (x != 0) return false;
  return true;
}

// Inputs for layers with kinks: values whose magnitudes are at least `gap` apart from each other
// and from zero, so that no ReLU or max changes its choice within +-h. Shuffled uniform grid.
inline Tensor<double> kink_free_input(const Shape& shape, Generator& gen, double gap = 1e-2) {
  Tensor<double> x(shape);
  const std::int64_t n = x.numel();
  std::vector<double> values(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    double magnitude = gap * double(i / 2 + 1);
    values[std::size_t(i)] = (i % 2 ? -magnitude : magnitude);
  }
  gen.shuffle(values.begin(), values.end());
  std::copy(values.begin(), values.end(), x.data());
  return x;
}

inline Tensor<double> random_tensor(const Shape& shape, Generator& gen, double low = -1, double high = 1) {
  Tensor<double> t(shape);
  for (double& v : t) v = gen.uniform(low, high);
  return t;
}

// Requires layer.needs_input_grad() (the default; models:: factories turn it off for their root).
inline GradientReport check_gradients(Layer<double>& layer, Tensor<double> x, Generator& gen, double h = 1e-6) {
  GradientReport report;
  const Tensor<double> r = random_tensor(layer.output_shape(x.shape()), gen);
  auto loss = [&]() { return dot(layer.forward(x), r); };

  auto params = layer.parameters();
  for (auto& p : params) p.grad.zero();
  layer.forward(x);
  const Tensor<double> dx = layer.backward(r).clone();

  auto record = [&](const std::string& name, const std::vector<double>& analytic, const std::vector<double>& numeric) {
    const double err = relative_error(analytic, numeric);
    if (err >= report.worst_error) {
      report.worst_error = err;
      report.worst_name = name;
    }
    if (all_zero(analytic) && all_zero(numeric)) {
      report.some_gradient_all_zero = true;
      report.zero_name = name;
    }
  };

  auto numeric_gradient = [&](Tensor<double>& t) {
    std::vector<double> g(static_cast<std::size_t>(t.numel()));
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      const double saved = t.data()[i];
      t.data()[i] = saved + h;
      const double plus = loss();
      t.data()[i] = saved - h;
      const double minus = loss();
      t.data()[i] = saved;
      g[std::size_t(i)] = (plus - minus) / (2 * h);
    }
    return g;
  };

  record("input", std::vector<double>(dx.begin(), dx.end()), numeric_gradient(x));
  for (auto& p : params) {
    std::vector<double> analytic(p.grad.begin(), p.grad.end());
    record(p.name, analytic, numeric_gradient(p.value));
  }
  return report;
}

/// The suite's verdict on a report: no gradient all zero, the worst relative error under 1e-6.
inline void require_good(const GradientReport& report, const std::string& what) {
  INFO(what << ": worst relative error " << report.worst_error << " in " << report.worst_name);
  CHECK_FALSE(report.some_gradient_all_zero);
  CHECK(report.worst_error < 1e-6);
}

}  // namespace headnet_test
