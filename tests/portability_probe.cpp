// Built by scripts/check_compilers.sh with compilers and targets other than the main build's
// (clang; g++ for AArch64), where only the portable kernels exist or the x86 ones are chosen by
// other macros: training steps of the tutorial network, the fast recipe's network and ResNet-18
// instantiate the convolution on its direct, Winograd and im2col paths, the fused poolings and
// activations, BatchNorm, residual blocks, the loss and the optimiser. Run (under qemu for AArch64
// when it is there), it checks that the losses are finite and fall.
#include <cmath>
#include <cstdio>
#include <vector>

#include <headnet/headnet.hpp>
#include <headnet/models/airbench.hpp>
#include <headnet/models/resnet.hpp>
#include <headnet/models/tutorial_net.hpp>

int main() {
  using namespace headnet;
  std::printf("instruction set: %s\n", simd::name(simd::active_isa()));
  const char* names[] = {"tutorial", "airbench", "resnet18"};
  for (int which = 0; which < 3; ++which) {
    manual_seed(0);
    Sequential<float> net = which == 0   ? models::tutorial_net<float>(6, 16)
                            : which == 1 ? models::airbench<float>(16, 32, 32)
                                         : models::resnet18_cifar<float>();
    SGD<float> sgd(net.parameters(), SGDOptions(0.01).momentum(0.9));
    CrossEntropyLoss<float> criterion;
    Generator gen(1);
    Tensor<float> images({2, 3, 32, 32});
    for (float& v : images) v = float(gen.uniform(-1, 1));
    const std::vector<std::int32_t> labels{3, 7};
    float first = 0, last = 0;
    for (int step = 0; step < 3; ++step) {
      sgd.zero_grad();
      last = criterion.forward(net.forward(images), labels);
      if (step == 0) first = last;
      net.backward(criterion.backward());
      sgd.step();
    }
    std::printf("%s: loss %.4f -> %.4f\n%s", names[which], first, last, net.kernel_report().c_str());
    if (!std::isfinite(first) || !std::isfinite(last) || !(last < first)) {
      std::fprintf(stderr, "%s: the loss did not fall (%g -> %g)\n", names[which], first, last);
      return 1;
    }
  }
  return 0;
}
