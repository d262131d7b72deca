// headnet/data/mnist.hpp: MNIST and Fashion-MNIST (IDX files, gzipped or not), and CIFAR-100.
//
//   ImageSet train = data::read_mnist("data/mnist", /*train=*/true);              // 60,000 x 1x28x28
//   ImageSet test  = data::read_mnist("data/fashion", false, data::fashion_mnist_classes());
//   ImageSet c100  = data::read_cifar100("data/cifar-100-binary", true);          // fine labels
//
// IDX (http://yann.lecun.com/exdb/mnist/): a big-endian header, magic 0x0000080D (two zero bytes,
// the element type 0x08 = unsigned byte, the number of dimensions D), D big-endian 32-bit sizes,
// then the bytes. Images are 3-D (N, rows, columns), labels 1-D (N). The files are found as
// train-images-idx3-ubyte and the rest, with or without ".gz" (gzip, RFC 1952, inflated with
// stb_image's zlib decoder, CRC-checked). Every size is checked against the bytes that hold it
// before anything is allocated; errors name the file.
//
// CIFAR-100 binary version (https://www.cs.toronto.edu/~kriz/cifar.html): train.bin and test.bin,
// records of 3074 bytes: the coarse label (0-19), the fine label (0-99), then the 32x32 image as
// CIFAR-10's. Class names from fine_label_names.txt / coarse_label_names.txt when the folder has
// them.
#pragma once

#include <climits>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "headnet/data/cifar10.hpp"
#include "headnet/io/image.hpp"  // stb_image, whose zlib decoder inflates .gz files

namespace headnet {
namespace data {

/// Fashion-MNIST's ten class names, in label order.
inline std::vector<std::string> fashion_mnist_classes() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
}

namespace detail {

inline bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

inline std::vector<std::uint8_t> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError("cannot open '" + path + "'");
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw DataError("read error in '" + path + "'");
  return bytes;
}

inline std::uint32_t crc32(const std::uint8_t* p, std::size_t n) {
  std::uint32_t crc = 0xffffffffu;
  for (std::size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// The contents of a gzip file (one member), checked against its CRC and length.
inline std::vector<std::uint8_t> gunzip(const std::vector<std::uint8_t>& gz, const std::string& name) {
  auto fail = [&](const std::string& why) -> void { throw DataError("'" + name + "': not a valid gzip file: " + why); };
  if (gz.size() < 18 || gz[0] != 0x1f || gz[1] != 0x8b) fail("too short or no gzip signature");
  if (gz[2] != 8) fail("compression method " + std::to_string(gz[2]) + " (only deflate, 8)");
  const std::uint8_t flags = gz[3];
  std::size_t pos = 10;
  if (flags & 4) {  // FEXTRA
    if (pos + 2 > gz.size()) fail("truncated header");
    pos += 2 + (gz[pos] | (std::size_t(gz[pos + 1]) << 8));
  }
  for (int bit : {8, 16}) {  // FNAME, FCOMMENT: zero-terminated
    if (!(flags & bit)) continue;
    while (pos < gz.size() && gz[pos] != 0) ++pos;
    ++pos;
  }
  if (flags & 2) pos += 2;  // FHCRC
  if (pos + 8 > gz.size()) fail("truncated header");
  const std::size_t tail = gz.size() - 8;
  const std::uint32_t crc = std::uint32_t(gz[tail]) | std::uint32_t(gz[tail + 1]) << 8 | std::uint32_t(gz[tail + 2]) << 16 |
                            std::uint32_t(gz[tail + 3]) << 24;
  const std::uint32_t size = std::uint32_t(gz[tail + 4]) | std::uint32_t(gz[tail + 5]) << 8 |
                             std::uint32_t(gz[tail + 6]) << 16 | std::uint32_t(gz[tail + 7]) << 24;
  if (size > std::uint32_t(INT32_MAX)) fail("it claims more than 2 GB of contents");
  // Deflate cannot expand more than 1032:1; a larger claimed size is a corrupt trailer.
  if (double(size) > 1032.0 * double(tail - pos) + 1024) fail("its trailer claims " + std::to_string(size) + " bytes");
  std::vector<std::uint8_t> out(size ? size : 1);  // never a null buffer, even for an empty file
  // The trailer is passed too: stb's decoder reads a little ahead of the last code and counts
  // running out of input there as corruption.
  const int got = stbi_zlib_decode_noheader_buffer(reinterpret_cast<char*>(out.data()), int(size),
                                                   reinterpret_cast<const char*>(gz.data() + pos), int(gz.size() - pos));
  if (got < 0) fail("corrupt deflate data");
  if (std::uint32_t(got) != size) fail("inflated to " + std::to_string(got) + " bytes, its trailer says " + std::to_string(size));
  out.resize(size);
  if (crc32(out.data(), out.size()) != crc) fail("CRC mismatch");
  return out;
}

// An IDX file's dimensions and data (a view into `bytes`).
struct Idx {
  std::vector<std::int64_t> dims;
  const std::uint8_t* data = nullptr;
};

inline Idx parse_idx(const std::vector<std::uint8_t>& bytes, const std::string& name, int expected_dims) {
  if (bytes.size() < 4) throw DataError("'" + name + "': too short for an IDX header (" + std::to_string(bytes.size()) + " bytes)");
  if (bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08) {
    char b[64];
    std::snprintf(b, sizeof b, "%02x %02x %02x %02x", bytes[0], bytes[1], bytes[2], bytes[3]);
    throw DataError("'" + name + "': not an IDX file of unsigned bytes (magic " + std::string(b) + ", expected 00 00 08 0" +
                    std::to_string(expected_dims) + ")");
  }
  if (bytes[3] != expected_dims) {
    throw DataError("'" + name + "': has " + std::to_string(bytes[3]) + " dimensions, expected " + std::to_string(expected_dims));
  }
  const std::size_t header = 4 + 4 * std::size_t(expected_dims);
  if (bytes.size() < header) throw DataError("'" + name + "': truncated IDX header");
  Idx idx;
  std::int64_t count = 1;
  for (int d = 0; d < expected_dims; ++d) {
    const std::uint8_t* p = bytes.data() + 4 + 4 * d;
    const std::int64_t v = std::int64_t(p[0]) << 24 | std::int64_t(p[1]) << 16 | std::int64_t(p[2]) << 8 | p[3];
    idx.dims.push_back(v);
    // Sizes are up to 2^32 - 1 each: the product is checked against the bytes as it grows.
    count = (count == 0 || v == 0) ? 0 : count > std::int64_t(bytes.size()) / v + 1 ? std::int64_t(bytes.size()) + 1 : count * v;
  }
  if (std::uint64_t(bytes.size() - header) != std::uint64_t(count)) {
    std::string claimed;
    for (auto d : idx.dims) claimed += (claimed.empty() ? "" : " x ") + std::to_string(d);
    throw DataError("'" + name + "': its header gives " + claimed + " = " +
                    (count > std::int64_t(bytes.size()) ? "more than " + std::to_string(bytes.size()) : std::to_string(count)) +
                    " bytes of data, the file holds " + std::to_string(bytes.size() - header));
  }
  idx.data = bytes.data() + header;
  return idx;
}

// The file `folder/base` or `folder/base.gz`, inflated.
inline std::vector<std::uint8_t> read_maybe_gzipped(const std::string& folder, const std::string& base, std::string& name) {
  name = folder + "/" + base;
  if (file_exists(name)) return read_whole_file(name);
  if (file_exists(name + ".gz")) {
    name += ".gz";
    return gunzip(read_whole_file(name), name);
  }
  throw DataError("MNIST: no '" + base + "' (or " + base + ".gz) in '" + folder + "'");
}

}  // namespace detail

/// The training (60,000) or test (10,000) images of an MNIST-format folder: (N, 1, 28, 28).
inline ImageSet read_mnist(const std::string& folder, bool train, std::vector<std::string> class_names = {}) {
  const std::string prefix = train ? "train" : "t10k";
  std::string image_name, label_name;
  const auto image_bytes = detail::read_maybe_gzipped(folder, prefix + "-images-idx3-ubyte", image_name);
  const auto label_bytes = detail::read_maybe_gzipped(folder, prefix + "-labels-idx1-ubyte", label_name);
  const detail::Idx images = detail::parse_idx(image_bytes, image_name, 3);
  const detail::Idx labels = detail::parse_idx(label_bytes, label_name, 1);
  if (images.dims[0] != labels.dims[0]) {
    throw DataError("MNIST: '" + image_name + "' holds " + std::to_string(images.dims[0]) + " images but '" + label_name +
                    "' " + std::to_string(labels.dims[0]) + " labels");
  }
  if (images.dims[1] < 1 || images.dims[2] < 1 || images.dims[1] > 4096 || images.dims[2] > 4096) {
    throw DataError("MNIST: '" + image_name + "' has images of " + std::to_string(images.dims[1]) + "x" +
                    std::to_string(images.dims[2]) + " pixels");
  }
  ImageSet set;
  set.channels = 1;
  set.height = int(images.dims[1]);
  set.width = int(images.dims[2]);
  set.classes = 10;
  set.class_names = class_names.empty() ? std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"} : class_names;
  for (std::int64_t i = 0; i < labels.dims[0]; ++i) {
    if (labels.data[i] > 9) {
      throw DataError("MNIST: '" + label_name + "' label " + std::to_string(i) + " is " + std::to_string(labels.data[i]) + ", expected 0-9");
    }
  }
  set.labels.assign(labels.data, labels.data + labels.dims[0]);
  set.pixels.assign(images.data, images.data + images.dims[0] * images.dims[1] * images.dims[2]);
  return set;
}

/// CIFAR-100's training (50,000) or test (10,000) images, with fine (100) or coarse (20) labels.
inline ImageSet read_cifar100(const std::string& folder, bool train, bool fine = true) {
  const std::string path = folder + "/" + (train ? "train.bin" : "test.bin");
  const auto bytes = detail::read_whole_file(path);
  constexpr std::size_t record = 2 + Cifar10::image_bytes;
  if (bytes.empty() || bytes.size() % record) {
    throw DataError("CIFAR-100: '" + path + "' has " + std::to_string(bytes.size()) + " bytes, not a whole number of 3074-byte records");
  }
  ImageSet set;
  set.classes = fine ? 100 : 20;
  const std::size_t n = bytes.size() / record;
  set.labels.reserve(n);
  set.pixels.resize(n * Cifar10::image_bytes);
  for (std::size_t r = 0; r < n; ++r) {
    const std::uint8_t* rec = bytes.data() + r * record;
    if (rec[0] >= 20 || rec[1] >= 100) {
      throw DataError("CIFAR-100: '" + path + "' record " + std::to_string(r) + " has labels " + std::to_string(rec[0]) + " (coarse) and " +
                      std::to_string(rec[1]) + " (fine), expected 0-19 and 0-99");
    }
    set.labels.push_back(fine ? rec[1] : rec[0]);
    std::copy(rec + 2, rec + record, set.pixels.begin() + std::ptrdiff_t(r * Cifar10::image_bytes));
  }
  std::ifstream names(folder + "/" + (fine ? "fine_label_names.txt" : "coarse_label_names.txt"));
  for (std::string line; std::getline(names, line);)
    if (!line.empty()) set.class_names.push_back(line);
  if (int(set.class_names.size()) != set.classes) set.class_names.clear();
  return set;
}

/// Moves a `fraction` of `set` (chosen by a shuffle seeded with `seed`) into a held-out set, which is
/// returned; the rest stays in `set`, in its original order.
inline ImageSet split_off(ImageSet& set, double fraction, std::uint64_t seed) {
  if (!(fraction > 0 && fraction < 1)) throw Error("split_off: fraction must be in (0, 1), got " + std::to_string(fraction));
  std::vector<std::int64_t> order(std::size_t(set.size()));
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = std::int64_t(i);
  Generator gen(seed, Generator::data_order);
  gen.shuffle(order.begin(), order.end());
  const std::size_t held = std::size_t(std::llround(fraction * double(order.size())));
  std::vector<bool> is_held(order.size(), false);
  for (std::size_t i = 0; i < held; ++i) is_held[std::size_t(order[i])] = true;
  ImageSet kept = set, out = set;
  kept.pixels.clear(), kept.labels.clear(), kept.files.clear(), out.pixels.clear(), out.labels.clear(), out.files.clear();
  const std::int64_t bytes = set.image_bytes();
  for (std::int64_t i = 0; i < set.size(); ++i) {
    ImageSet& to = is_held[std::size_t(i)] ? out : kept;
    to.labels.push_back(set.labels[std::size_t(i)]);
    if (set.streamed())
      to.files.push_back(set.files[std::size_t(i)]);
    else
      to.pixels.insert(to.pixels.end(), set.image(i), set.image(i) + bytes);
  }
  set = std::move(kept);
  return out;
}

}  // namespace data
}  // namespace headnet
