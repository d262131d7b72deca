// BatchNorm1d and BatchNorm2d: finite differences in both modes, PyTorch's values (outputs,
// gradients, running statistics over several steps, eval mode), and argument errors.
#include <catch2/catch.hpp>

#include <sstream>

#include "gradient_check.hpp"
#include "module_reference.hpp"
#include "reference_data.hpp"

using namespace headnet;
using namespace headnet_test;

namespace {
std::unique_ptr<BatchNorm<double>> make(const std::string& type, int features, double eps, double momentum, bool affine,
                                        bool track) {
  if (type == "BatchNorm2d") return std::make_unique<BatchNorm2d<double>>(features, eps, momentum, affine, track);
  return std::make_unique<BatchNorm1d<double>>(features, eps, momentum, affine, track);
}
Shape shape_of(const nlohmann::json& j) { return shape_from(j); }
}  // namespace

TEST_CASE("BatchNorm backward matches finite differences", "[gradient][batchnorm]") {
  struct Row {
    const char* type;
    Shape shape;
    bool affine, track, eval;
    const char* frozen;
  };
  const Row table[] = {
      {"BatchNorm2d", {3, 4, 5, 6}, true, true, false, ""},  {"BatchNorm2d", {1, 3, 3, 5}, true, true, false, ""},
      {"BatchNorm2d", {4, 2, 1, 1}, true, true, false, ""},  {"BatchNorm2d", {2, 3, 4, 3}, false, true, false, ""},
      {"BatchNorm2d", {2, 3, 5, 5}, true, true, true, ""},   {"BatchNorm2d", {2, 2, 3, 3}, true, false, true, ""},
      {"BatchNorm2d", {3, 3, 3, 2}, true, true, false, "weight"}, {"BatchNorm1d", {5, 4}, true, true, false, ""},
      {"BatchNorm1d", {3, 2, 7}, true, true, false, ""},     {"BatchNorm1d", {4, 3}, true, true, true, ""},
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& row : table) {
      auto bn = make(row.type, int(row.shape[1]), 1e-5, 0.1, row.affine, row.track);
      Generator gen(std::uint64_t(row.shape.numel()) * 7 + row.eval);
      for (auto& p : bn->parameters())
        for (double& v : p.value) v = gen.uniform(0.5, 1.5);
      for (auto& b : bn->buffers())
        if (!b.integer)
          for (double& v : b.value) v = gen.uniform(0.5, 1.5);
      if (row.eval) bn->eval();
      if (*row.frozen) bn->set_requires_grad(row.frozen, false);
      std::ostringstream what;
      what << bn->describe() << (row.eval ? " eval" : " train") << " on " << row.shape.str() << ", " << threads
           << " threads" << (*row.frozen ? ", frozen " : "") << row.frozen;
      INFO(what.str());
      if (*row.frozen) {
        // A frozen parameter's gradient is skipped: check the others, and that it stays zero.
        auto report = check_gradients(*bn, random_tensor(row.shape, gen, -2, 3), gen);
        CHECK(report.worst_name == row.frozen);  // numeric != 0, analytic 0: the only bad one
        for (auto& p : bn->parameters())
          if (p.name == row.frozen)
            for (double v : p.grad) CHECK(v == 0.0);
        continue;
      }
      const auto report = check_gradients(*bn, random_tensor(row.shape, gen, -2, 3), gen);
      INFO("worst relative error " << report.worst_error << " in " << report.worst_name);
      CHECK_FALSE(report.some_gradient_all_zero);
      CHECK(report.worst_error < 1e-6);
    }
  }
  set_num_threads(2);
}

TEST_CASE("BatchNorm matches PyTorch: outputs, gradients, running statistics, eval mode", "[batchnorm][pytorch]") {
  for (const auto& c : module_reference()["batchnorm"]) {
    const auto& o = c["options"];
    const Shape shape = shape_of(c["shape"]);
    auto bn = make(c["type"], int(shape[1]), o["eps"], o["momentum"], o["affine"], o["track_running_stats"]);
    INFO(bn->describe() << " on " << shape.str());
    StateDict<double> initial;
    for (const auto& e : bn->state_dict()) initial.add(e.name, tensor_from(c["initial"][e.name], e.value.shape()), e.integer);
    bn->load_state_dict(initial);
    bn->train();
    int step = 0;
    for (const auto& s : c["train"]) {
      INFO("training step " << step++);
      for (auto& p : bn->parameters()) p.grad.zero();
      const Tensor<double> y = bn->forward(tensor_from(s["x"], shape));
      CHECK(max_difference(y, s["y"]) < 1e-10);
      const Tensor<double> dx = bn->backward(tensor_from(s["dy"], shape));
      CHECK(max_difference(dx, s["dx"]) < 1e-10);
      for (auto& p : bn->parameters()) CHECK(max_difference(p.grad, s["grads"][p.name]) < 1e-10);
      for (auto& b : bn->buffers()) {
        INFO(b.name);
        CHECK(max_difference(b.value, s["buffers"][b.name]) < 1e-12);
      }
    }
    bn->eval();
    const auto& e = c["eval"];
    for (auto& p : bn->parameters()) p.grad.zero();
    const Tensor<double> y = bn->forward(tensor_from(e["x"], shape));
    CHECK(max_difference(y, e["y"]) < 1e-10);
    const Tensor<double> dx = bn->backward(tensor_from(e["dy"], shape));
    CHECK(max_difference(dx, e["dx"]) < 1e-10);
    for (auto& p : bn->parameters()) CHECK(max_difference(p.grad, e["grads"][p.name]) < 1e-10);
  }
}

TEST_CASE("BatchNorm refuses bad arguments and shapes, naming the layer", "[batchnorm][errors]") {
  CHECK_THROWS_WITH(BatchNorm2d<float>(0), "BatchNorm2d: num_features must be at least 1, got 0");
  CHECK_THROWS_WITH(BatchNorm2d<float>(4, 1e-5, 1.5), "BatchNorm2d: momentum must be in [0, 1], got 1.5");
  CHECK_THROWS_WITH(BatchNorm1d<float>(4, 1e-5, -0.1), "BatchNorm1d: momentum must be in [0, 1], got -0.1");
  CHECK_THROWS_WITH(BatchNorm2d<float>(4, 0), "BatchNorm2d: eps must be > 0, got 0");
  BatchNorm2d<float> bn(4);
  CHECK_THROWS_WITH(bn.forward(Tensor<float>({2, 3, 5, 5})), "BatchNorm2d: expects 4 channels, got 3 (input (2, 3, 5, 5))");
  CHECK_THROWS_WITH(bn.forward(Tensor<float>({2, 4})), "BatchNorm2d: expects input (N, C, H, W), got (2, 4)");
  CHECK_THROWS_WITH(bn.forward(Tensor<float>({1, 4, 1, 1})),
                    "BatchNorm2d: expected more than 1 value per channel when training, got input (1, 4, 1, 1)");
  bn.eval();
  CHECK_NOTHROW(bn.forward(Tensor<float>({1, 4, 1, 1})));
  BatchNorm1d<float> bn1(3);
  CHECK_THROWS_WITH(bn1.forward(Tensor<float>({2, 3, 4, 4})), "BatchNorm1d: expects input (N, C) or (N, C, L), got (2, 3, 4, 4)");
  CHECK(bn.describe() == "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true)");
}
