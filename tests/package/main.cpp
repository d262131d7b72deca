// Trains a tiny network for a few steps: proves the headers, Eigen and OpenMP all link.
#include <headnet/headnet.hpp>

#include <cstdio>

int main() {
  using namespace headnet;
  manual_seed(1);
  Sequential<float> net;
  net.add("conv1", Conv2d<float>(1, 4, 3, 1, 1));
  net.add(ReLU<float>());
  net.add(MaxPool2d<float>(2));
  net.add(Flatten<float>());
  net.add("fc", Linear<float>(4 * 4 * 4, 2));
  SGD<float> sgd(net.parameters(), SGDOptions(0.1).momentum(0.9));
  CrossEntropyLoss<float> loss;
  Tensor<float> x({2, 1, 8, 8});
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data()[i] = i < 64 ? 1.0f : -1.0f;
  std::vector<std::int32_t> labels{0, 1};
  float first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    sgd.zero_grad();
    last = loss.forward(net.forward(x), labels);
    if (step == 0) first = last;
    net.backward(loss.backward());
    sgd.step();
  }
  std::printf("headnet %s: loss %.4f -> %.4f\n", HEADNET_VERSION_STRING, first, last);
  return last < first ? 0 : 1;
}
