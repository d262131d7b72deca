// libFuzzer target: image decoding through headnet's wrapper (stb_image, size limits) and the
// resize and crop that headnet-predict applies must reject bad bytes with DataError, never crash.
#include <cstddef>
#include <cstdint>

#include <headnet/io/image.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const headnet::io::Image img = headnet::io::decode_image(data, size, "fuzz input", 3);
    if (std::int64_t(img.width) * img.height <= (1 << 20)) {
      const headnet::io::Image small = headnet::io::resize_and_crop(img, 32, 32);
      float out[3 * 32 * 32];
      headnet::io::image_to_tensor(small, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}, out);
    }
  } catch (const headnet::DataError&) {
  }
  return 0;
}
