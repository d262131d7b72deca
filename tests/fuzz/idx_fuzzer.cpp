// libFuzzer target: the MNIST reader's IDX parser and gzip inflater must reject bad bytes with
// DataError, never crash, read out of bounds or allocate what the bytes do not justify.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <headnet/data/mnist.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> bytes(data, data + size);
  try {
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) bytes = headnet::data::detail::gunzip(bytes, "fuzz input");
    for (int dims : {1, 3}) {
      try {
        const auto idx = headnet::data::detail::parse_idx(bytes, "fuzz input", dims);
        volatile std::uint8_t sink = 0;
        unsigned __int128 count = 1;
        for (auto d : idx.dims) count *= static_cast<unsigned __int128>(d);
        if (count > 0) sink = idx.data[static_cast<std::size_t>(count - 1)];  // the last byte it claims must be readable
        (void)sink;
      } catch (const headnet::DataError&) {
      }
    }
  } catch (const headnet::DataError&) {
  }
  return 0;
}
