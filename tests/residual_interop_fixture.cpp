// The residual test model's files for tests/residual_interop.py, and the reverse check.
//   residual_interop_fixture write FOLDER: trains the model a few steps (moving its BatchNorm
//     statistics), writes model.safetensors (its state dict) and io.safetensors (an input x and the
//     eval-mode output y).
//   residual_interop_fixture check FOLDER: loads PyTorch's pytorch_model.safetensors strictly and
//     compares eval-mode outputs on pytorch_io.safetensors' x with its y (1e-5).
#include <cmath>
#include <cstdio>
#include <string>

#include <headnet/headnet.hpp>

#include "residual_model.hpp"

int main(int argc, char** argv) {
  using namespace headnet;
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s write|check FOLDER\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1], folder = argv[2];
  manual_seed(7);
  auto net = headnet_test::residual_test_model<float>();
  try {
    if (mode == "write") {
      SGD<float> sgd(net.parameters(), SGDOptions(0.05).momentum(0.9));
      CrossEntropyLoss<float> loss;
      Generator gen(8);
      Tensor<float> x({8, 3, 8, 8});
      std::vector<std::int32_t> labels(8);
      for (int step = 0; step < 4; ++step) {
        for (float& v : x) v = float(gen.uniform(-2, 2));
        for (auto& l : labels) l = std::int32_t(gen.below(10));
        sgd.zero_grad();
        loss.forward(net.forward(x), labels);
        net.backward(loss.backward());
        sgd.step();
      }
      net.eval();
      for (float& v : x) v = float(gen.uniform(-2, 2));
      StateDict<float> io;
      io.add("x", x);
      io.add("y", net.forward(x));
      io::save_safetensors(folder + "/model.safetensors", net.state_dict());
      io::save_safetensors(folder + "/io.safetensors", io);
      return 0;
    }
    net.load_state_dict(io::load_safetensors<float>(folder + "/pytorch_model.safetensors"));
    net.eval();
    const auto io = io::load_safetensors<float>(folder + "/pytorch_io.safetensors");
    const Tensor<float> y = net.forward(io.at("x"));
    const Tensor<float> expected = io.at("y");
    double worst = 0;
    for (std::int64_t i = 0; i < y.numel(); ++i) worst = std::max(worst, double(std::abs(y.data()[i] - expected.data()[i])));
    std::printf("headnet on PyTorch's weights: max |output difference| %.2e\n", worst);
    return worst < 1e-5 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "residual_interop_fixture: %s\n", e.what());
    return 1;
  }
}
