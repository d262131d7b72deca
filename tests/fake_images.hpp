// tests/fake_images.hpp: a small CIFAR-10-shaped ImageSet of random pixels and labels.
#pragma once

#include <cstdint>

#include <headnet/data/cifar10.hpp>

namespace headnet_test {

inline headnet::data::ImageSet fake_images(int count, std::uint64_t seed) {
  headnet::data::ImageSet set;
  headnet::Generator gen(seed);
  for (int i = 0; i < count; ++i) {
    set.labels.push_back(std::int32_t(gen.below(10)));
    for (int k = 0; k < headnet::data::Cifar10::image_bytes; ++k) set.pixels.push_back(std::uint8_t(gen.below(256)));
  }
  return set;
}

}  // namespace headnet_test
