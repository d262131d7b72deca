// headnet/models/tutorial_net.hpp: the PyTorch "Training a Classifier" CIFAR-10 network.
//
//   conv1 Conv2d(3, conv1, 5) -> ReLU -> MaxPool2d(2) -> conv2 Conv2d(conv1, conv2, 5) -> ReLU ->
//   MaxPool2d(2) -> Flatten -> fc1 Linear(conv2*5*5, 120) -> ReLU -> fc2 Linear(120, 84) -> ReLU ->
//   fc3 Linear(84, 10)
// on (N, 3, 32, 32) images. The defaults (6, 16) are the tutorial's; the layer names are its
// attribute names, so parameters() lists the same keys as its state_dict().
#pragma once

#include "headnet/layers/conv2d.hpp"
#include "headnet/layers/flatten.hpp"
#include "headnet/layers/linear.hpp"
#include "headnet/layers/maxpool2d.hpp"
#include "headnet/layers/relu.hpp"
#include "headnet/layers/sequential.hpp"

namespace headnet {
namespace models {

/// in_channels, height, width and classes adapt it to other images (MNIST: 1, 28, 28, 10): fc1 then
/// takes conv2 x ((height - 4) / 2 - 4) / 2 x ((width - 4) / 2 - 4) / 2 features; images must be at
/// least 16x16.
template <typename T = float>
Sequential<T> tutorial_net(int conv1_channels = 6, int conv2_channels = 16, int in_channels = 3, int height = 32, int width = 32,
                           int classes = 10) {
  const int h = ((height - 4) / 2 - 4) / 2, w = ((width - 4) / 2 - 4) / 2;
  if (height < 16 || width < 16) {
    throw ShapeError("tutorial_net: needs images of at least 16x16 (two 5x5 convolutions and two 2x2 poolings), got " +
                     std::to_string(height) + "x" + std::to_string(width));
  }
  headnet::detail::require_at_least("tutorial_net", "classes", classes, 1);
  Sequential<T> net;
  net.add("conv1", Conv2d<T>(in_channels, conv1_channels, 5));
  net.add(ReLU<T>());
  net.add(MaxPool2d<T>(2, 2));
  net.add("conv2", Conv2d<T>(conv1_channels, conv2_channels, 5));
  net.add(ReLU<T>());
  net.add(MaxPool2d<T>(2, 2));
  net.add(Flatten<T>());
  net.add("fc1", Linear<T>(conv2_channels * h * w, 120));
  net.add(ReLU<T>());
  net.add("fc2", Linear<T>(120, 84));
  net.add(ReLU<T>());
  net.add("fc3", Linear<T>(84, classes));
  net.set_needs_input_grad(false);  // a root model: nobody needs the gradient of the images
  return net;
}

}  // namespace models
}  // namespace headnet
