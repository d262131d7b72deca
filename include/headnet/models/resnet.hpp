// headnet/models/resnet.hpp: two residual networks for 32x32 images, from public layers only,
// with the module names of their usual PyTorch code, so that state dicts move between the two
// (scripts/pytorch_models.py has the PyTorch side).
//
// resnet9: the DAWNBench ResNet-9 of "How to train your ResNet" (Page, 2018): every conv is 3x3,
// padding 1, no bias, followed by BatchNorm and ReLU ("conv", "bn", "relu"):
//   prep     conv 3 -> 64
//   layer1   conv 64 -> 128, pool MaxPool2d(2), residual (res1, res2: conv 128 -> 128 each)
//   layer2   conv 128 -> 256, pool MaxPool2d(2)
//   layer3   conv 256 -> 512, pool MaxPool2d(2), residual (res1, res2: conv 512 -> 512 each)
//   pool MaxPool2d(4), flatten, linear Linear(512, classes, bias=false), scale Mul(0.125)
// keys: prep.conv.weight, layer1.residual.res1.bn.running_var, ..., linear.weight.
//
// resnet18_cifar: the common CIFAR ResNet-18 (kuangliu/pytorch-cifar): conv1 3x3 3 -> 64, bn1,
// relu, layer1..layer4 of two BasicBlocks each (64, 128, 256, 512 channels, strides 1, 2, 2, 2:
// conv1, bn1, relu, conv2, bn2, plus a shortcut of a strided 1x1 conv and a BatchNorm where the
// shape changes, then a ReLU of the sum), global average pooling, linear Linear(512, classes).
// keys: conv1.weight, layer2.0.shortcut.0.weight, ..., linear.bias.
#pragma once

#include <string>

#include "headnet/layers/batchnorm.hpp"
#include "headnet/layers/conv2d.hpp"
#include "headnet/layers/flatten.hpp"
#include "headnet/layers/identity.hpp"
#include "headnet/layers/linear.hpp"
#include "headnet/layers/maxpool2d.hpp"
#include "headnet/layers/avgpool2d.hpp"
#include "headnet/layers/relu.hpp"
#include "headnet/layers/residual.hpp"
#include "headnet/layers/sequential.hpp"

namespace headnet {
namespace models {

namespace detail {
// conv 3x3 (no bias), BatchNorm, ReLU, added to `into` as "conv", "bn", "relu".
template <typename T>
void add_conv_bn(Sequential<T>& into, int in, int out) {
  into.add("conv", Conv2d<T>(in, out, 3, 1, 1, false));
  into.add("bn", BatchNorm2d<T>(out));
  into.add("relu", ReLU<T>());
}
template <typename T>
Sequential<T> conv_bn(int in, int out) {
  Sequential<T> s;
  add_conv_bn(s, in, out);
  return s;
}
// A ResNet-9 stage: conv_bn, max-pool, and optionally a residual of two conv_bn.
template <typename T>
Sequential<T> resnet9_stage(int in, int out, bool residual) {
  Sequential<T> stage;
  add_conv_bn(stage, in, out);
  stage.add("pool", MaxPool2d<T>(2));
  if (residual) {
    Sequential<T> body;
    body.add("res1", conv_bn<T>(out, out));
    body.add("res2", conv_bn<T>(out, out));
    stage.add("residual", Residual<T>(std::move(body)));
  }
  return stage;
}
// A BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
template <typename T>
Residual<T> basic_block(int in, int out, int stride) {
  Sequential<T> body;
  body.add("conv1", Conv2d<T>(in, out, 3, stride, 1, false));
  body.add("bn1", BatchNorm2d<T>(out));
  body.add("relu", ReLU<T>());
  body.add("conv2", Conv2d<T>(out, out, 3, 1, 1, false));
  body.add("bn2", BatchNorm2d<T>(out));
  if (stride == 1 && in == out) return Residual<T>(std::move(body)).with_relu();
  Sequential<T> shortcut;
  shortcut.add(Conv2d<T>(in, out, 1, stride, 0, false));
  shortcut.add(BatchNorm2d<T>(out));
  return Residual<T>(std::move(body), std::move(shortcut)).with_relu();
}
}  // namespace detail

/// Input (N, 3, 32, 32) -> logits (N, classes).
template <typename T = float>
Sequential<T> resnet9(int classes = 10) {
  Sequential<T> net;
  net.add("prep", detail::conv_bn<T>(3, 64));
  net.add("layer1", detail::resnet9_stage<T>(64, 128, true));
  net.add("layer2", detail::resnet9_stage<T>(128, 256, false));
  net.add("layer3", detail::resnet9_stage<T>(256, 512, true));
  net.add("pool", MaxPool2d<T>(4));
  net.add("flatten", Flatten<T>());
  net.add("linear", Linear<T>(512, classes, false));
  net.add("scale", Mul<T>(0.125));
  net.set_needs_input_grad(false);
  return net;
}

/// Input (N, 3, 32, 32) -> logits (N, classes).
template <typename T = float>
Sequential<T> resnet18_cifar(int classes = 10) {
  Sequential<T> net;
  net.add("conv1", Conv2d<T>(3, 64, 3, 1, 1, false));
  net.add("bn1", BatchNorm2d<T>(64));
  net.add("relu", ReLU<T>());
  int in = 64;
  const int widths[] = {64, 128, 256, 512};
  for (int stage = 0; stage < 4; ++stage) {
    Sequential<T> layer;
    layer.add(detail::basic_block<T>(in, widths[stage], stage == 0 ? 1 : 2));
    layer.add(detail::basic_block<T>(widths[stage], widths[stage], 1));
    net.add("layer" + std::to_string(stage + 1), std::move(layer));
    in = widths[stage];
  }
  net.add("pool", AdaptiveAvgPool2d<T>(1));
  net.add("flatten", Flatten<T>());
  net.add("linear", Linear<T>(512, classes));
  net.set_needs_input_grad(false);
  return net;
}

}  // namespace models
}  // namespace headnet
