// SGD against torch.optim.SGD's recorded updates, for every option, and against the update rule
// written out by hand.
#include <catch2/catch.hpp>

#include "reference_data.hpp"

using namespace headnet;
using namespace headnet_test;

TEST_CASE("SGD follows torch.optim.SGD for every option", "[sgd][pytorch]") {
  for (const auto& c : pytorch_reference()["sgd"]) {
    const auto& o = c["options"];
    INFO(o.dump());
    Tensor<double> value = tensor_from(c["initial"], {7});
    Tensor<double> grad({7});
    SGD<double> sgd({{"p", value, grad}}, SGDOptions(o["lr"].get<double>())
                                              .momentum(o["momentum"].get<double>())
                                              .dampening(o["dampening"].get<double>())
                                              .weight_decay(o["weight_decay"].get<double>())
                                              .nesterov(o["nesterov"].get<bool>()));
    for (std::size_t step = 0; step < c["grads"].size(); ++step) {
      INFO("step " << step);
      copy_into(grad, c["grads"][step]);
      sgd.step();
      CHECK(max_difference(value, c["after"][step]) < 1e-12);
    }
  }
}

TEST_CASE("SGD momentum by hand", "[sgd]") {
  Tensor<double> value({1}, 1.0), grad({1}, 1.0);
  SGD<double> sgd({{"p", value, grad}}, SGDOptions(0.1).momentum(0.5).dampening(0.5));
  sgd.step();  // v = g = 1 (no dampening on the first step); p = 1 - 0.1 = 0.9
  CHECK(value(0) == Approx(0.9));
  sgd.step();  // v = 0.5*1 + 0.5*1 = 1; p = 0.8
  CHECK(value(0) == Approx(0.8));
  grad.fill(3);
  sgd.step();  // v = 0.5*1 + 0.5*3 = 2; p = 0.6
  CHECK(value(0) == Approx(0.6));
}

TEST_CASE("SGD rejects impossible options", "[sgd][errors]") {
  Tensor<double> v({2}), g({2});
  CHECK_THROWS_WITH(SGD<double>({{"p", v, g}}, SGDOptions(-1)), "SGD: learning rate must be >= 0, got -1.000000");
  CHECK_THROWS_WITH(SGD<double>({{"p", v, g}}, SGDOptions(0.1).nesterov(true)),
                    "SGD: nesterov needs momentum > 0 and dampening = 0");
  Tensor<double> wrong({3});
  CHECK_THROWS_WITH(SGD<double>({{"p", v, wrong}}, SGDOptions(0.1)),
                    "SGD: parameter 'p' has value (2) but gradient (3)");
}
