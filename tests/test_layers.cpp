// The layers of modern CNNs: each against PyTorch 1.13's values (tests/data/module_reference.json,
// made by tests/reference/make_module_reference.py), each backward against finite differences in
// double on 1 and 2 threads, the losses with every reduction and label smoothing, Dropout's
// statistics and exact replay, and the errors a user can meet.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <sstream>
#include <vector>

#include "gradient_check.hpp"
#include "module_reference.hpp"
#include "reference_data.hpp"

using namespace headnet;
using namespace headnet_test;

namespace {

// The layer a recorded case describes.
std::unique_ptr<Layer<double>> make_layer(const nlohmann::json& c) {
  const std::string name = c["layer"];
  const auto& a = c["args"];
  if (name == "GELU") return std::make_unique<GELU<double>>(a["approximate"].get<std::string>());
  if (name == "LeakyReLU") return std::make_unique<LeakyReLU<double>>(a["negative_slope"].get<double>());
  if (name == "SiLU") return std::make_unique<SiLU<double>>();
  if (name == "Sigmoid") return std::make_unique<Sigmoid<double>>();
  if (name == "Tanh") return std::make_unique<Tanh<double>>();
  if (name == "Softmax") return std::make_unique<Softmax<double>>();
  if (name == "LogSoftmax") return std::make_unique<LogSoftmax<double>>();
  if (name == "Identity") return std::make_unique<Identity<double>>();
  if (name == "Mul") return std::make_unique<Mul<double>>(a["scale"].get<double>());
  if (name == "MaxPool2d")
    return std::make_unique<MaxPool2d<double>>(a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"]);
  if (name == "AvgPool2d")
    return std::make_unique<AvgPool2d<double>>(a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"],
                                               a["count_include_pad"]);
  if (name == "AdaptiveAvgPool2d") return std::make_unique<AdaptiveAvgPool2d<double>>(a["output_size"][0], a["output_size"][1]);
  if (name == "Flatten") return std::make_unique<Flatten<double>>(a["start_dim"], a["end_dim"]);
  if (name == "Conv2d") {
    Conv2dOptions o(a["in_channels"], a["out_channels"], a["kernel_size"]);
    o.stride(a["stride"]).groups(a["groups"]).bias(a["bias"]);
    if (a["padding"].is_string()) o.padding(a["padding"].get<std::string>());
    else o.padding(a["padding"].get<int>());
    return std::make_unique<Conv2d<double>>(o);
  }
  FAIL("no factory for " << name);
  return nullptr;
}

}  // namespace

TEST_CASE("Every layer matches PyTorch: outputs, input gradients and parameter gradients", "[layers][pytorch]") {
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& c : module_reference()["layers"]) {
      auto layer = make_layer(c);
      INFO(layer->describe() << " on " << c["x_shape"].dump() << ", " << threads << " threads");
      for (auto& p : layer->parameters()) copy_into(p.value, c["params"][p.name]);
      const Tensor<double> x = tensor_from(c["x"], shape_from(c["x_shape"]));
      const Tensor<double> y = layer->forward(x);
      CHECK(y.shape() == shape_from(c["y_shape"]));
      CHECK(max_difference(y, c["y"]) < 1e-10);
      const Tensor<double> dx = layer->backward(tensor_from(c["dy"], shape_from(c["y_shape"])));
      CHECK(max_difference(dx, c["dx"]) < 1e-10);
      for (auto& p : layer->parameters()) {
        INFO(p.name);
        CHECK(max_difference(p.grad, c["grads"][p.name]) < 1e-10);
      }
    }
  }
  set_num_threads(2);
}

TEST_CASE("Every new layer's backward matches finite differences", "[gradient][layers]") {
  struct Row {
    std::function<std::unique_ptr<Layer<double>>()> make;
    Shape shape;
    bool kinks;  // max, or a ReLU-like corner: inputs kept away from ties and zero
  };
  const std::vector<Row> table = {
      {[] { return std::make_unique<GELU<double>>(); }, {3, 2, 5, 4}, false},
      {[] { return std::make_unique<GELU<double>>("tanh"); }, {1, 7}, false},
      {[] { return std::make_unique<LeakyReLU<double>>(0.1); }, {2, 3, 5}, true},
      {[] { return std::make_unique<SiLU<double>>(); }, {3, 2, 3, 5}, false},
      {[] { return std::make_unique<Sigmoid<double>>(); }, {4, 3}, false},
      {[] { return std::make_unique<Tanh<double>>(); }, {1, 2, 3, 3}, false},
      {[] { return std::make_unique<Softmax<double>>(); }, {3, 6}, false},
      {[] { return std::make_unique<LogSoftmax<double>>(); }, {2, 4, 3, 2}, false},
      {[] { return std::make_unique<Mul<double>>(1.0 / 9); }, {2, 5}, false},
      {[] { return std::make_unique<Identity<double>>(); }, {2, 3, 2}, false},
      {[] { return std::make_unique<Flatten<double>>(2); }, {2, 3, 2, 2}, false},
      {[] { return std::make_unique<MaxPool2d<double>>(3); }, {2, 2, 9, 7}, true},
      {[] { return std::make_unique<MaxPool2d<double>>(3, 2, 1); }, {1, 3, 8, 9}, true},
      {[] { return std::make_unique<MaxPool2d<double>>(2, 2, 0, true); }, {3, 1, 7, 5}, true},
      {[] { return std::make_unique<MaxPool2d<double>>(3, 2, 1, true); }, {2, 2, 6, 11}, true},
      {[] { return std::make_unique<AvgPool2d<double>>(2); }, {2, 2, 6, 5}, false},
      {[] { return std::make_unique<AvgPool2d<double>>(3, 2, 1, true, false); }, {1, 2, 8, 7}, false},
      {[] { return std::make_unique<AvgPool2d<double>>(3, 1, 1); }, {3, 1, 5, 6}, false},
      {[] { return std::make_unique<AdaptiveAvgPool2d<double>>(1); }, {3, 4, 5, 3}, false},
      {[] { return std::make_unique<AdaptiveAvgPool2d<double>>(3, 2); }, {2, 2, 7, 5}, false},
      {[] { return std::make_unique<Conv2d<double>>(Conv2dOptions(4, 4, 3).padding("same").groups(4)); }, {2, 4, 5, 7}, false},
      {[] { return std::make_unique<Conv2d<double>>(Conv2dOptions(4, 6, 3).stride(2).padding(1).groups(2).bias(false)); },
       {3, 4, 7, 6}, false},
      {[] { return std::make_unique<Conv2d<double>>(Conv2dOptions(3, 6, 5).padding("same").groups(3)); }, {1, 3, 6, 5}, false},
      {[] { return std::make_unique<Conv2d<double>>(Conv2dOptions(2, 3, 3).padding("same")); }, {2, 2, 4, 9}, false},
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    std::uint64_t seed = 0;
    for (const auto& row : table) {
      auto layer = row.make();
      Generator gen(++seed);
      layer->reset_parameters(gen);
      const Tensor<double> x = row.kinks ? kink_free_input(row.shape, gen) : random_tensor(row.shape, gen, -2, 2);
      std::ostringstream what;
      what << layer->describe() << " on " << row.shape.str() << ", " << threads << " threads";
      require_good(check_gradients(*layer, x, gen), what.str());
    }
  }
  set_num_threads(2);
}

TEST_CASE("Losses match PyTorch for every reduction and label smoothing", "[loss][pytorch]") {
  for (const auto& c : module_reference()["losses"]) {
    const std::string name = c["loss"], r = c["reduction"];
    const Reduction reduction = r == "mean" ? Reduction::mean : r == "sum" ? Reduction::sum : Reduction::none;
    INFO(name << " reduction " << r << (c.contains("label_smoothing") ? " smoothing " + c["label_smoothing"].dump() : ""));
    const Shape shape = shape_from(c["x_shape"]);
    const Tensor<double> x = tensor_from(c["x"], shape);
    const Tensor<double> weights = tensor_from(c["grad_weights"], name == "MSELoss" ? shape : Shape{shape[0]});
    Tensor<double> grad, per_sample;
    double value = 0;
    if (name == "CrossEntropyLoss") {
      CrossEntropyLoss<double> loss(reduction, c["label_smoothing"].get<double>());
      value = loss.forward(x, c["labels"].get<std::vector<std::int32_t>>());
      grad = (reduction == Reduction::none ? loss.backward(weights) : loss.backward()).clone();
      per_sample = loss.losses().clone();
    } else if (name == "NLLLoss") {
      NLLLoss<double> loss(reduction);
      value = loss.forward(x, c["labels"].get<std::vector<std::int32_t>>());
      grad = (reduction == Reduction::none ? loss.backward(weights) : loss.backward()).clone();
      per_sample = loss.losses().clone();
    } else {
      MSELoss<double> loss(reduction);
      value = loss.forward(x, tensor_from(c["target"], shape));
      grad = (reduction == Reduction::none ? loss.backward(weights) : loss.backward()).clone();
      per_sample = loss.losses().clone();
    }
    if (reduction == Reduction::none) {
      CHECK(max_difference(per_sample, c["value"]) < 1e-12);
    } else {
      CHECK(std::abs(value - c["value"][0].get<double>()) < 1e-12);
    }
    CHECK(max_difference(grad, c["grad"]) < 1e-12);
  }
}

TEST_CASE("CrossEntropyLoss with label smoothing matches finite differences", "[gradient][loss]") {
  Generator gen(31);
  Tensor<double> logits = random_tensor({4, 6}, gen, -3, 3);
  const std::vector<std::int32_t> labels{0, 5, 2, 2};
  for (auto reduction : {Reduction::mean, Reduction::sum}) {
    CrossEntropyLoss<double> loss(reduction, 0.2);
    loss.forward(logits, labels);
    const Tensor<double> analytic = loss.backward().clone();
    std::vector<double> a(analytic.begin(), analytic.end()), numeric;
    for (std::int64_t i = 0; i < logits.numel(); ++i) {
      const double saved = logits.data()[i], h = 1e-6;
      logits.data()[i] = saved + h;
      const double plus = loss.forward(logits, labels);
      logits.data()[i] = saved - h;
      const double minus = loss.forward(logits, labels);
      logits.data()[i] = saved;
      numeric.push_back((plus - minus) / (2 * h));
    }
    CHECK(relative_error(a, numeric) < 1e-7);
  }
}

TEST_CASE("Dropout: inverted scaling, identity in eval, a seeded stream that replays exactly", "[layers][dropout]") {
  manual_seed(4);
  Dropout<double> drop(0.3);
  Tensor<double> x({8, 1000}, 2.0);
  const auto start = drop.generator().state();
  const Tensor<double> y = drop.forward(x).clone();
  std::int64_t zeros = 0;
  for (double v : y) {
    CHECK((v == 0.0 || std::abs(v - 2.0 / 0.7) < 1e-12));
    zeros += v == 0.0;
  }
  CHECK(std::abs(double(zeros) / 8000.0 - 0.3) < 0.02);  // 4 sd of a binomial count
  const Tensor<double> dx = drop.backward(Tensor<double>(x.shape(), 1.0));
  for (std::int64_t i = 0; i < x.numel(); ++i) CHECK(dx.data()[i] == y.data()[i] / 2.0);
  // The same generator state drops the same elements (what a resumed run relies on).
  drop.generator().set_state(start);
  const Tensor<double> again = drop.forward(x);
  CHECK(std::equal(again.begin(), again.end(), y.begin()));
  CHECK(drop.generators().size() == 1);
  drop.eval();
  const Tensor<double> same = drop.forward(x);
  CHECK(same.shares_storage_with(x));
  // Two layers built after the same manual_seed drop alike; another seed does not.
  manual_seed(9);
  Dropout<double> a(0.5);
  manual_seed(9);
  Dropout<double> b(0.5);
  const Tensor<double> ya = a.forward(x).clone();
  CHECK(std::equal(ya.begin(), ya.end(), b.forward(x).begin()));
}

TEST_CASE("New layers refuse bad arguments, naming the layer and the argument", "[layers][errors]") {
  CHECK_THROWS_WITH(Dropout<float>(-0.1), "Dropout: p must be in [0, 1], got -0.1");
  CHECK_THROWS_WITH(Dropout<float>(1.5), "Dropout: p must be in [0, 1], got 1.5");
  CHECK_THROWS_WITH(Conv2d<float>(Conv2dOptions(3, 8, 4).padding("same")),
                    "Conv2d: padding \"same\" needs an odd kernel_size, got 4");
  CHECK_THROWS_WITH(Conv2d<float>(Conv2dOptions(3, 8, 3).padding("same").stride(2)),
                    "Conv2d: padding \"same\" is not supported for strided convolutions (stride 2)");
  CHECK_THROWS_WITH(Conv2d<float>(Conv2dOptions(3, 8, 3).padding("full")),
                    "Conv2d: padding must be a number, \"same\" or \"valid\", got \"full\"");
  CHECK_THROWS_WITH(Conv2d<float>(Conv2dOptions(6, 8, 3).groups(4)),
                    "Conv2d: in_channels (6) and out_channels (8) must both be divisible by groups (4)");
  CHECK_THROWS_WITH(Conv2d<float>(Conv2dOptions(6, 8, 3).groups(0)), "Conv2d: groups must be at least 1, got 0");
  CHECK_THROWS_WITH(MaxPool2d<float>(3, 2, 2), "MaxPool2d: padding must be at most half of kernel_size, got padding 2 for kernel_size 3");
  CHECK_THROWS_WITH(AvgPool2d<float>(2, 2, -1), "AvgPool2d: padding must be at least 0, got -1");
  CHECK_THROWS_WITH(AdaptiveAvgPool2d<float>(0), "AdaptiveAvgPool2d: output_size must be at least 1, got 0");
  CHECK_THROWS_WITH(GELU<float>("fast"), "GELU: approximate must be \"none\" or \"tanh\", got \"fast\"");
  CHECK_THROWS_WITH(CrossEntropyLoss<float>(Reduction::mean, 1.5), "CrossEntropyLoss: label_smoothing must be in [0, 1], got 1.5");
  CHECK_THROWS_WITH(Flatten<float>(3).forward(Tensor<float>({2, 3, 4})),
                    "Flatten: start_dim 3 and end_dim -1 do not fit input (2, 3, 4)");
  CHECK_THROWS_WITH(MSELoss<float>().forward(Tensor<float>({2, 3}), Tensor<float>({3, 2})),
                    "MSELoss: input (2, 3) and target (3, 2) differ in shape");
  CHECK_THROWS_WITH(NLLLoss<float>().forward(Tensor<float>({2, 3}), {0, 3}), "NLLLoss: label 3 of sample 1 is outside [0, 3)");
  // Non-square inputs through a whole stack.
  Sequential<float> net;
  net.add(Conv2d<float>(Conv2dOptions(3, 6, 3).padding("same")));
  net.add(MaxPool2d<float>(3, 2, 1));
  net.add(AdaptiveAvgPool2d<float>(1));
  net.add(Flatten<float>());
  CHECK(net.forward(Tensor<float>({2, 3, 9, 17})).shape() == Shape{2, 6});
}

TEST_CASE("GELU in float: erf and exp computed inline stay within a few ulp of the definition",
          "[layers][gelu]") {
  // Float GELU uses kernels::detail::erf_float and exp_nonpositive_float (vectorisable) instead of
  // libm; measured worst errors over [-10, 10] in steps of 1e-4: erf 3.3e-7 absolute, exp 8.3e-8
  // relative, GELU' 2.0e-7 absolute. A wrong coefficient moves them by orders of magnitude.
  double worst_erf = 0, worst_exp = 0, worst_value = 0, worst_derivative = 0;
  const kernels::GeluErf gelu;
  for (int i = -100000; i <= 100000; ++i) {
    const float x = float(i) * 1e-4f;
    const double xd = x;
    worst_erf = std::max(worst_erf, std::abs(double(kernels::detail::erf_float(x)) - std::erf(xd)));
    if (x <= 0 && x >= -80)
      worst_exp = std::max(worst_exp, std::abs(double(kernels::detail::exp_nonpositive_float(x)) / std::exp(xd) - 1));
    worst_value = std::max(worst_value, std::abs(double(gelu.value(x)) - gelu.value(xd)) / std::max(1.0, std::abs(xd)));
    worst_derivative = std::max(worst_derivative, std::abs(double(gelu.derivative(x, 0.0f)) - gelu.derivative(xd, 0.0)));
  }
  INFO("erf " << worst_erf << ", exp " << worst_exp << ", GELU " << worst_value << ", GELU' " << worst_derivative);
  CHECK(worst_erf < 1e-6);
  CHECK(worst_exp < 4e-7);
  CHECK(worst_value < 1e-6);
  CHECK(worst_derivative < 1e-6);
  // The ends: erf saturates, e^x is 0 past -87 (not a denormal, not garbage), +0 and -0 alike.
  CHECK(kernels::detail::erf_float(20.0f) == 1.0f);
  CHECK(kernels::detail::erf_float(-20.0f) == -1.0f);
  CHECK(std::isnan(kernels::detail::erf_float(std::numeric_limits<float>::quiet_NaN())));
  CHECK(kernels::detail::exp_nonpositive_float(0.0f) == 1.0f);
  CHECK(kernels::detail::exp_nonpositive_float(-0.0f) == 1.0f);
  CHECK(kernels::detail::exp_nonpositive_float(-1e30f) == 0.0f);
  CHECK(kernels::detail::exp_nonpositive_float(-87.5f) == 0.0f);  // 0 below the normal floats
  CHECK(gelu.derivative(-1e20f, 0.0f) == 0.0f);  // x e^(-x^2 / 2): 0, not NaN, not x times e^-87
  CHECK(gelu.derivative(3e38f, 0.0f) == 1.0f);
  CHECK(gelu.value(3e38f) == 3e38f);
}

namespace {
// Runs check() in each instruction set's copy of the loops this CPU can run (simd::set_isa), with
// the copy's name in Catch2's INFO; a copy the CPU cannot run is named in a WARN, not counted as
// tested. The instruction set in force before is restored.
template <typename Check>
void for_each_runnable_isa(const char* what, Check check) {
  const simd::Isa before = simd::active_isa();
  for (simd::Isa isa : simd::all_isas()) {
    if (!simd::available(isa)) {
      WARN(what << ": the " << simd::name(isa) << " copy cannot run here, not tested");
      continue;
    }
    INFO("instruction set " << simd::name(isa));
    simd::set_isa(isa);
    check();
  }
  simd::set_isa(before);
}

// Runs op's loops (activation_forward, activation_backward) in float over x and checks each value
// and derivative against op in double: within bound times max(1, |x|), NaN where double is NaN.
template <typename Op>
void check_float_activation(const char* name, const Op& op, const std::vector<float>& x, double bound) {
  INFO(name);
  const std::int64_t n = std::int64_t(x.size());
  std::vector<float> y(x.size()), dx(x.size()), dy(x.size(), 1.0f);
  kernels::activation_forward(op, n, x.data(), y.data());
  kernels::activation_backward(op, n, x.data(), y.data(), dy.data(), dx.data());
  double worst_value = 0, worst_derivative = 0;
  std::int64_t nan_mismatches = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double xd = x[i], yd = op.value(xd), dd = op.derivative(xd, yd), scale = std::max(1.0, std::abs(xd));
    if (std::isnan(yd) || std::isnan(dd)) {
      nan_mismatches += std::isnan(yd) != std::isnan(y[i]) || std::isnan(dd) != std::isnan(dx[i]);
      continue;
    }
    worst_value = std::max(worst_value, std::abs(double(y[i]) - yd) / scale);
    worst_derivative = std::max(worst_derivative, std::abs(double(dx[i]) - dd) / scale);
  }
  INFO("value " << worst_value << ", derivative " << worst_derivative);
  CHECK(worst_value < bound);
  CHECK(worst_derivative < bound);
  CHECK(nan_mismatches == 0);
}
}  // namespace

TEST_CASE("GELU's loops agree with the definition in each instruction set's copy this CPU runs", "[layers][gelu]") {
  // activation_forward / activation_backward and the BatchNorm loops are compiled once per
  // instruction set (kernels/activations_impl.hpp, batchnorm_impl.hpp) and run vectorised, where
  // the test above calls the scalar functions: each copy this CPU can run, over the same grid.
  std::vector<float> x;
  for (int i = -100000; i <= 100000; ++i) x.push_back(float(i) * 1e-4f);
  for (float end : {20.0f, -20.0f, 3e38f, -1e20f, std::numeric_limits<float>::quiet_NaN()}) x.push_back(end);
  const std::int64_t n = std::int64_t(x.size()), S = 7;  // BatchNorm sees (n / S, 1, S): odd planes
  const std::vector<float> ones(1, 1.0f), zeros(1, 0.0f);
  for_each_runnable_isa("GELU's loops", [&] {
    std::vector<float> y(x.size()), dx(x.size()), z(x.size()), dy(x.size(), 1.0f);
    kernels::activation_forward(kernels::GeluErf(), n, x.data(), y.data());
    kernels::activation_backward(kernels::GeluErf(), n, x.data(), y.data(), dy.data(), dx.data());
    kernels::batchnorm_normalize(kernels::GeluErf(), n / S, std::int64_t(1), S, x.data(), zeros.data(), ones.data(),
                                 ones.data(), zeros.data(), z.data());
    double worst_value = 0, worst_derivative = 0;
    const kernels::GeluErf gelu;
    for (std::int64_t i = 0; i + 5 < n; ++i) {
      const double xd = x[i];
      worst_value = std::max(worst_value, std::abs(double(y[i]) - gelu.value(xd)) / std::max(1.0, std::abs(xd)));
      worst_derivative = std::max(worst_derivative, std::abs(double(dx[i]) - gelu.derivative(xd, 0.0)));
      if (i < n / S * S)  // the fused normalisation with mean 0, scale 1, shift 0
        worst_value = std::max(worst_value, std::abs(double(z[i]) - gelu.value(xd)) / std::max(1.0, std::abs(xd)));
    }
    INFO("GELU " << worst_value << ", GELU' " << worst_derivative);
    CHECK(worst_value < 1e-6);
    CHECK(worst_derivative < 1e-6);
    const float* end = y.data() + n - 5;
    CHECK(end[0] == 20.0f);
    CHECK(end[1] == 0.0f);
    CHECK(end[2] == 3e38f);
    CHECK(end[3] == 0.0f);
    CHECK(std::isnan(end[4]));
    CHECK(dx[n - 2] == 0.0f);  // x e^(-x^2 / 2) at -1e20: 0, not NaN
    CHECK(dx[n - 3] == 1.0f);
    CHECK(std::isnan(dx[n - 1]));
  });
}


TEST_CASE("Every activation's float loops agree with its double definition in each instruction set's copy",
          "[layers][activations]") {
  // In float, tanh, the sigmoid and LeakyReLU's selection are computed without libm and without
  // branches (kernels::detail::tanh_float, sigmoid_float, select_float) so that the loops vectorise;
  // the double forms (std::tanh, std::exp) are checked against PyTorch elsewhere. Measured worst
  // errors (AVX2 and SSE2 copies, relative to max(1, |x|)): values 1.4e-7, derivatives 1.2e-7, as with
  // std::tanh and std::exp in float; a wrong coefficient moves them by orders of magnitude.
  std::vector<float> x;
  for (int i = -200000; i <= 200000; ++i) x.push_back(float(i) * 1e-4f);
  for (int i = 1; i < 1000; ++i) x.insert(x.end(), {float(i) * 1e-7f, -float(i) * 1e-7f});
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> ends = {3e38f, -3e38f, 1e20f, -1e20f, 50.0f, -50.0f, inf, -inf, nan, 0.0f, -0.0f};
  x.insert(x.end(), ends.begin(), ends.end());
  for_each_runnable_isa("activation loops", [&] {
    check_float_activation("GELU (tanh)", kernels::GeluTanh(), x, 1e-6);
    check_float_activation("SiLU", kernels::SiLUOp(), x, 1e-6);
    check_float_activation("Sigmoid", kernels::SigmoidOp(), x, 1e-6);
    check_float_activation("Tanh", kernels::TanhOp(), x, 1e-6);
    check_float_activation("LeakyReLU", kernels::LeakyReLUOp{0.1}, x, 1e-6);
    // Near 0 tanh keeps its relative accuracy (x itself below 4e-4, Eigen's rational up to 0.625).
    double worst_relative = 0;
    std::vector<float> t(x.size());
    kernels::activation_forward(kernels::TanhOp(), std::int64_t(x.size()), x.data(), t.data());
    for (std::size_t i = 0; i < x.size(); ++i)
      if (x[i] != 0.0f && std::abs(x[i]) < 1.0f)
        worst_relative = std::max(worst_relative, std::abs(t[i] / std::tanh(double(x[i])) - 1));
    INFO("tanh's worst relative error on (-1, 1): " << worst_relative);
    CHECK(worst_relative < 1e-6);
    // Saturation where float's own functions saturate, and no NaN from inf times 0.
    float v[4];
    const float big[4] = {50.0f, -50.0f, 1e20f, -1e20f};
    kernels::activation_forward(kernels::TanhOp(), 4, big, v);
    CHECK((v[0] == 1.0f && v[1] == -1.0f && v[2] == 1.0f && v[3] == -1.0f));
    const float huge[4] = {1e20f, -1e20f, 3e38f, -3e38f};
    kernels::activation_forward(kernels::SigmoidOp(), 4, huge, v);
    CHECK((v[0] == 1.0f && v[1] == 0.0f && v[2] == 1.0f && v[3] == 0.0f));
    kernels::activation_forward(kernels::SiLUOp(), 4, huge, v);
    CHECK((v[0] == 1e20f && v[1] == 0.0f && v[2] == 3e38f && v[3] == 0.0f));
    const float ones[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    float d[4];
    kernels::activation_forward(kernels::GeluTanh(), 4, huge, v);
    kernels::activation_backward(kernels::GeluTanh(), 4, huge, v, ones, d);
    CHECK((d[0] == 1.0f && d[1] == 0.0f && d[2] == 1.0f && d[3] == 0.0f));
  });
}
