// headnet/models/airbench.hpp: the network of the airbench94 recipe (Keller Jordan, 2024), the
// fastest known way to 94% on CIFAR-10 (examples/cifar10_fast.cpp trains it; docs/fast.md).
//
//   whiten   Conv2d(3, 24, 2, bias) -> GELU ("act"): a 2x2 patch-whitening convolution, set from
//            the training images (init::whitening_) and frozen
//   block1   conv1 3x3 24 -> w1, pool MaxPool2d(2), norm1 BatchNorm2d, act1 GELU,
//            conv2 3x3 w1 -> w1, norm2, act2                          (no conv biases)
//   block2   the same, w1 -> w2;  block3: w2 -> w3
//   pool MaxPool2d(3), flatten, head Linear(w3, classes, bias=false), scale Mul(1/9)
// BatchNorm: eps 1e-12, momentum 0.4 (PyTorch's convention; the recipe's 0.6 in its own). Widths
// 64, 256, 256 by default: 1.97M parameters. 32x32 inputs (31 after the 2x2 convolution, then 15,
// 7 and 3 after the pools).
#pragma once

#include "headnet/layers/activations.hpp"
#include "headnet/layers/batchnorm.hpp"
#include "headnet/layers/conv2d.hpp"
#include "headnet/layers/flatten.hpp"
#include "headnet/layers/identity.hpp"
#include "headnet/layers/linear.hpp"
#include "headnet/layers/maxpool2d.hpp"
#include "headnet/layers/sequential.hpp"

namespace headnet {
namespace models {

/// conv1 -> pool -> norm1 -> act1 -> conv2 -> norm2 -> act2
template <typename T = float>
Sequential<T> airbench_block(int in, int out) {
  Sequential<T> g;
  g.add("conv1", Conv2d<T>(in, out, 3, 1, 1, false));
  g.add("pool", MaxPool2d<T>(2));
  g.add("norm1", BatchNorm2d<T>(out, 1e-12, 0.4));
  g.add("act1", GELU<T>());
  g.add("conv2", Conv2d<T>(out, out, 3, 1, 1, false));
  g.add("norm2", BatchNorm2d<T>(out, 1e-12, 0.4));
  g.add("act2", GELU<T>());
  return g;
}

/// in_channels: 3 for colour, 1 for gray images (the whitening convolution then has 8 filters, two
/// per value of a 2x2 patch). Images of 25 to 32 pixels a side end as 3x3 before the last pooling.
template <typename T = float>
Sequential<T> airbench(int width1 = 64, int width2 = 256, int width3 = 256, int classes = 10, int in_channels = 3) {
  Sequential<T> net;
  const int whitened = 2 * in_channels * 2 * 2;
  net.add("whiten", Conv2d<T>(in_channels, whitened, 2, 1, 0, true));
  net.add("act", GELU<T>());
  net.add("block1", airbench_block<T>(whitened, width1));
  net.add("block2", airbench_block<T>(width1, width2));
  net.add("block3", airbench_block<T>(width2, width3));
  net.add("pool", MaxPool2d<T>(3));
  net.add("flatten", Flatten<T>());
  net.add("head", Linear<T>(width3, classes, false));
  net.add("scale", Mul<T>(1.0 / 9));
  net.set_needs_input_grad(false);
  return net;
}

}  // namespace models
}  // namespace headnet
