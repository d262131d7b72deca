// models::resnet9 and models::resnet18_cifar: parameter counts and state-dict keys, shapes and order
// equal to their PyTorch counterparts (scripts/pytorch_models.py, recorded by
// tests/reference/make_module_reference.py); their outputs for a batch. Loading into PyTorch and
// the loss sequence of three SGD steps are checked by tests/models_interop.py.
#include <catch2/catch.hpp>

#include <headnet/models/resnet.hpp>

#include "module_reference.hpp"

using namespace headnet;
using namespace headnet_test;

TEST_CASE("resnet9 and resnet18_cifar have PyTorch's parameter counts and state-dict keys", "[models][pytorch]") {
  for (const std::string name : {"resnet9", "resnet18_cifar"}) {
    INFO(name);
    auto net = name == "resnet9" ? models::resnet9<float>() : models::resnet18_cifar<float>();
    const auto& ref = module_reference()["models"][name];
    CHECK(net.parameter_count() == ref["parameters"].get<std::int64_t>());
    const auto dict = net.state_dict();
    REQUIRE(dict.size() == ref["state_dict"].size());
    std::size_t i = 0;
    for (const auto& e : dict) {
      const auto& want = ref["state_dict"][i++];
      INFO(e.name);
      CHECK(e.name == want["key"].get<std::string>());
      std::vector<std::int64_t> shape;
      for (int d = 0; d < e.value.rank(); ++d) shape.push_back(e.value.size(d));
      CHECK(shape == want["shape"].get<std::vector<std::int64_t>>());
    }
    Tensor<float> x({2, 3, 32, 32}, 0.5f);
    CHECK(net.forward(x).shape() == Shape{2, 10});
  }
  CHECK(models::resnet9<float>(100).forward(Tensor<float>({1, 3, 32, 32})).shape() == Shape{1, 100});
}
