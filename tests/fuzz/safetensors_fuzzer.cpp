// libFuzzer target: the safetensors parser and the loader into the tutorial network must reject
// bad bytes with DataError, never crash, and never change a weight when they reject.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include <headnet/io/safetensors.hpp>
#include <headnet/models/tutorial_net.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static auto net = headnet::models::tutorial_net<float>(2, 3);  // small, for speed
  static const auto params = net.parameters();
  std::vector<float> before;
  for (const auto& p : params) before.insert(before.end(), p.value.begin(), p.value.end());
  try {
    const auto file = headnet::io::parse_safetensors(data, size, "fuzz input");
    for (const auto& t : file.tensors) {
      auto values = file.values<double>(t.first);
      (void)values;
    }
    headnet::io::load_safetensors(file, params);
    before.clear();  // loaded: the weights may change
  } catch (const headnet::DataError&) {
    std::size_t i = 0;
    for (const auto& p : params)
      for (float v : p.value)
        if (!(v == before[i++])) std::abort();
  }
  return 0;
}
