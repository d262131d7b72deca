// tests/onnx_models.hpp: the models the ONNX tests write and read, shared by test_onnx.cpp and
// the fixture that hands them to the ONNX checker and to onnxruntime (onnx_interop_fixture.cpp).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <headnet/headnet.hpp>
#include <headnet/models/airbench.hpp>
#include <headnet/models/resnet.hpp>
#include <headnet/models/tutorial_net.hpp>

namespace headnet_test {

struct OnnxCase {
  std::string name;
  std::function<headnet::Sequential<float>()> make;
  headnet::Shape input;  // batch 1; the tests use other batches too
  bool checkable = true;  // false: opset 20 (tanh GELU), newer than Debian's onnx checker knows
};

// Every layer the writer knows, with non-default options, in one network.
inline headnet::Sequential<float> every_layer_net() {
  using namespace headnet;
  Sequential<float> net;
  net.add("conv1", Conv2d<float>(Conv2dOptions(3, 8, 3).stride(2).padding(1)));
  net.add("relu1", ReLU<float>());  // fused into conv1: written as Conv + Relu
  net.add("grouped", Conv2d<float>(Conv2dOptions(8, 8, 3).padding("same").groups(2).bias(false)));
  net.add("bn_plain", BatchNorm2d<float>(8, 1e-3, 0.2, /*affine=*/false));
  net.add("silu", SiLU<float>());
  net.add("avg", AvgPool2d<float>(3, 1, 1, false, /*count_include_pad=*/false));
  net.add("leaky", LeakyReLU<float>(0.2));
  Sequential<float> body;
  body.add("conv1", Conv2d<float>(8, 12, 3, 1, 1, false));
  body.add("bn1", BatchNorm2d<float>(12));
  body.add("act", Tanh<float>());
  body.add("conv2", Conv2d<float>(12, 12, 3, 1, 1, false));
  net.add("block", Residual<float>(std::move(body), Conv2d<float>(8, 12, 1, 1, 0, false)).with_relu());
  net.add("block2", Residual<float>(Identity<float>()));
  net.add("pool", MaxPool2d<float>(3, 2, 1, /*ceil_mode=*/true));
  net.add("adaptive", AdaptiveAvgPool2d<float>(2));
  net.add("sigmoid", Sigmoid<float>());
  net.add("merge", Flatten<float>(1, 2));  // (N, 24, 2): a Reshape
  net.add("flatten", Flatten<float>());
  net.add("fc1", Linear<float>(48, 20));
  net.add("bn_fc", BatchNorm1d<float>(20));
  net.add("gelu", GELU<float>());
  net.add("drop", Dropout<float>(0.25));
  net.add("fc2", Linear<float>(20, 10));
  net.add("scale", Mul<float>(0.5));
  net.add("log_softmax", LogSoftmax<float>());
  return net;
}

inline headnet::Sequential<float> tanh_gelu_net() {
  using namespace headnet;
  Sequential<float> net;
  net.add("fc1", Linear<float>(6, 8));
  net.add("gelu", GELU<float>("tanh"));
  net.add("fc2", Linear<float>(8, 3));
  net.add("softmax", Softmax<float>());
  return net;
}

// Random weights and BatchNorm statistics away from their initial values, so every tensor matters.
inline void randomise(headnet::Layer<float>& net, std::uint64_t seed) {
  headnet::Generator gen(seed);
  net.reset_parameters(gen);
  for (auto& p : net.state_dict()) {
    if (p.name.find("num_batches") != std::string::npos) continue;
    const bool var = p.name.find("running_var") != std::string::npos;
    headnet::Tensor<float> t = p.value;
    for (float& v : t) v = var ? float(gen.uniform(0.5, 1.5)) : v + float(gen.uniform(-0.1, 0.1));
  }
  net.eval();
}

inline std::vector<OnnxCase> onnx_cases() {
  using namespace headnet;
  return {
      {"tutorial", [] { return models::tutorial_net<float>(); }, Shape{1, 3, 32, 32}},
      {"airbench", [] { return models::airbench<float>(16, 32, 32); }, Shape{1, 3, 32, 32}},
      {"resnet9", [] { return models::resnet9<float>(); }, Shape{1, 3, 32, 32}},
      {"resnet18_cifar", [] { return models::resnet18_cifar<float>(); }, Shape{1, 3, 32, 32}},
      {"every_layer", every_layer_net, Shape{1, 3, 13, 14}},
      {"tanh_gelu", tanh_gelu_net, Shape{1, 6}, false},
  };
}

}  // namespace headnet_test
