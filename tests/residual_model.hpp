// tests/residual_model.hpp: the residual test model, the same module tree as tests/residual_model.py
// builds in PyTorch (two residual blocks, the second with a strided 1x1 conv + BatchNorm shortcut).
#pragma once

#include <headnet/headnet.hpp>

namespace headnet_test {

template <typename T>
headnet::Sequential<T> residual_block(int c_in, int c_out, int stride) {
  using namespace headnet;
  Sequential<T> body;
  body.add("conv1", Conv2d<T>(c_in, c_out, 3, stride, 1, false));
  body.add("bn1", BatchNorm2d<T>(c_out));
  body.add("relu", ReLU<T>());
  body.add("conv2", Conv2d<T>(c_out, c_out, 3, 1, 1, false));
  body.add("bn2", BatchNorm2d<T>(c_out));
  Sequential<T> block;
  if (stride != 1 || c_in != c_out) {
    Sequential<T> shortcut;
    shortcut.add(Conv2d<T>(c_in, c_out, 1, stride, 0, false));
    shortcut.add(BatchNorm2d<T>(c_out));
    block.add(Residual<T>(std::move(body), std::move(shortcut)));
  } else {
    block.add(Residual<T>(std::move(body)));
  }
  block.add(ReLU<T>());
  return block;
}

// Input (N, 3, 8, 8) -> logits (N, 10).
template <typename T>
headnet::Sequential<T> residual_test_model() {
  using namespace headnet;
  Sequential<T> net;
  net.add("conv1", Conv2d<T>(3, 8, 3, 1, 1, false));
  net.add("bn1", BatchNorm2d<T>(8));
  net.add("relu", ReLU<T>());
  net.add("layer1", residual_block<T>(8, 8, 1));
  net.add("layer2", residual_block<T>(8, 16, 2));
  net.add("pool", MaxPool2d<T>(4));
  net.add("flatten", Flatten<T>());
  net.add("fc", Linear<T>(16, 10));
  return net;
}

}  // namespace headnet_test
