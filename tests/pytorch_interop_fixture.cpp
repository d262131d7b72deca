// Writes what tests/pytorch_interop.py needs: the tutorial network's weights after a few training
// steps (model.safetensors), a batch of inputs (inputs.f32, raw float32 NCHW) and headnet's logits
// for it (logits.f32).
#include <cstdio>
#include <fstream>

#include <headnet/headnet.hpp>
#include <headnet/io/safetensors.hpp>
#include <headnet/models/tutorial_net.hpp>

int main(int argc, char** argv) {
  using namespace headnet;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_FOLDER\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  manual_seed(7);
  auto net = models::tutorial_net<float>();
  SGD<float> sgd(net.parameters(), SGDOptions(0.01).momentum(0.9));
  CrossEntropyLoss<float> loss;
  Generator gen(8);
  Tensor<float> x({16, 3, 32, 32});
  std::vector<std::int32_t> labels(16);
  for (int step = 0; step < 20; ++step) {  // move the weights away from their initial values
    for (float& v : x) v = float(gen.uniform(-1, 1));
    for (auto& l : labels) l = std::int32_t(gen.below(10));
    sgd.zero_grad();
    loss.forward(net.forward(x), labels);
    net.backward(loss.backward());
    sgd.step();
  }
  for (float& v : x) v = float(gen.uniform(-1, 1));
  const Tensor<float> logits = net.forward(x);
  io::save_safetensors(out + "/model.safetensors", net.parameters());
  std::ofstream(out + "/inputs.f32", std::ios::binary).write(reinterpret_cast<const char*>(x.data()), x.numel() * 4);
  std::ofstream(out + "/logits.f32", std::ios::binary)
      .write(reinterpret_cast<const char*>(logits.data()), logits.numel() * 4);
  return 0;
}
