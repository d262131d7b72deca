// libFuzzer target: the CIFAR-10 record parser must reject bad bytes with DataError, never crash,
// and leave the image set unchanged when it rejects.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <headnet/data/cifar10.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  headnet::data::ImageSet set;
  try {
    headnet::data::parse_cifar10(data, size, "fuzz input", set);
    if (std::size_t(set.size()) * 3073 != size) std::abort();
    for (auto label : set.labels)
      if (label < 0 || label > 9) std::abort();
  } catch (const headnet::DataError&) {
    if (set.size() != 0 || !set.pixels.empty()) std::abort();
  }
  return 0;
}
