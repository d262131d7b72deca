// headnet/io/image.hpp: image files in, model inputs out.
//
//   io::Image img = io::read_image("cat.jpg", 3);          // PNG, JPEG or BMP; 8-bit
//   io::Image small = io::resize_and_crop(img, 32, 32);    // shorter side to 32, then the centre
//   io::image_to_tensor(small, mean, std, batch.data());   // (C, H, W) floats, (pixel/255 - mean) / std
//
// Decoding is stb_image's (Debian's libstb-dev), compiled here as static functions, so this header
// may be included in any number of files (define STB_IMAGE_IMPLEMENTATION yourself before including
// it to use your own copy). Grayscale, gray+alpha, RGB and RGBA files convert to the channels asked
// for (alpha is dropped, gray is repeated); 16-bit PNGs are reduced to 8 bits, palette PNGs expanded.
// Every failure is a DataError naming the file and stb_image's reason ("corrupt JPEG", "bad png
// sig", ...); the size is checked before anything is decoded (at most 2^26 pixels, 32768 a side),
// so a header that claims a huge image costs nothing. Before stb_image sees a file, its structure
// is checked where stb_image would misbehave (each found by tests/fuzz/image_fuzzer.cpp): a JPEG
// Huffman table of more than 256 codes (the stb_image of Debian 12 writes past its tables), a JPEG
// without its end-of-image marker, a BMP shorter than its header says (stb_image pads both with
// zeros, silently), a PNG chunk longer than the file or too little compressed data for the claimed
// pixels (stb_image allocates the claimed sizes first, gigabytes from a 400-byte file).
//
// Resizing is separable and antialiased when shrinking (a triangle filter widened by the scale
// factor, as PIL's and torchvision's antialiased bilinear): an image of the target size comes back
// unchanged, so a 32x32 PNG of a CIFAR-10 image gives exactly the loader's pixels.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#ifndef STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO  // headnet reads the file itself, so errors name it and nothing else is opened
#define STBI_NO_LINEAR
#define STBI_NO_HDR
// Only the formats headnet reads: each decoder left out is attack surface left out.
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#else
#include <stb/stb_image.h>
#endif

#include "headnet/core/error.hpp"

namespace headnet {
namespace io {

/// 8-bit pixels, interleaved: pixels[(y * width + x) * channels + c]. Float for resized images
/// (values in 0..255, not rounded, so that resizing costs no precision).
struct Image {
  int width = 0;  ///< columns
  int height = 0;  ///< rows
  int channels = 0;  ///< 1 (gray) or 3 (RGB)
  std::vector<float> pixels;  ///< interleaved samples, 0..255
  /// The sample at row y, column x, channel c.
  float at(int y, int x, int c) const { return pixels[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * std::size_t(channels) + std::size_t(c)]; }
};

constexpr std::int64_t max_image_pixels = std::int64_t(1) << 26;  ///< The most pixels headnet decodes in one image.
constexpr int max_image_side = 32768;  ///< The longest side headnet decodes.

namespace detail {
// Walks all of a JPEG's marker segments (progressive files define tables between scans) and
// refuses a Huffman table (DHT) that declares more than 256 codes, which Debian's stb_image writes
// past its arrays. The walk follows stb_image's reading, or it would miss tables stb finds: a
// marker, the start-of-image one included, may follow any number of 0xFF fill bytes.
// Files that are not JPEG to stb_image pass untouched.
inline void check_jpeg_tables(const unsigned char* data, std::size_t size, const std::string& what) {
  std::size_t pos = 0;
  while (pos < size && data[pos] == 0xFF) ++pos;
  if (pos == 0 || pos >= size || data[pos] != 0xD8) return;
  ++pos;
  while (pos + 2 <= size) {
    if (data[pos] != 0xFF) {  // entropy-coded data (after a scan header): skip to the next marker
      ++pos;
      continue;
    }
    const unsigned char marker = data[pos + 1];
    // Fill bytes, stuffed zeros and restart markers carry no segment.
    if (marker == 0xFF || marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) {
      pos += marker == 0xFF ? 1 : 2;
      continue;
    }
    if (marker == 0xD9) return;  // end of image
    if (pos + 4 > size) return;
    const std::size_t length = std::size_t(data[pos + 2]) << 8 | data[pos + 3];
    if (marker == 0xC4) {
      // Counts past the end of the file read as 0, as stb_image reads them; a table's codes must
      // not exceed 256 whatever the segment's claimed length.
      std::size_t p = pos + 4;
      const std::size_t end = std::min(size, pos + 2 + std::max<std::size_t>(length, 2));
      while (p < end) {
        std::size_t codes = 0;
        for (std::size_t i = 1; i <= 16; ++i) codes += p + i < size ? data[p + i] : 0;
        if (codes > 256) {
          throw DataError(what + ": corrupt JPEG (a Huffman table declares " + std::to_string(codes) + " codes, at most 256)");
        }
        p += 17 + codes;
      }
    }
    pos += 2 + std::max<std::size_t>(length, 2);
  }
  // stb_image decodes a cut-off scan as if zeros followed, silently: refuse it instead.
  throw DataError(what + ": truncated JPEG (no end-of-image marker)");
}

inline std::uint32_t big_endian32(const unsigned char* p) {
  return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
}
inline std::uint32_t little_endian32(const unsigned char* p) {
  return std::uint32_t(p[3]) << 24 | std::uint32_t(p[2]) << 16 | std::uint32_t(p[1]) << 8 | p[0];
}

// Refuses a PNG whose chunks claim more bytes than the file holds (stb_image allocates an IDAT
// chunk's claimed length, up to 2 GB, before reading it), or whose compressed data is too small to
// hold the pixels its header claims: deflate cannot compress more than 1032:1, so a valid file
// never trips this, while a tiny file claiming a huge image would make stb_image allocate the
// whole image before finding out.
inline void check_png_chunks(const unsigned char* data, std::size_t size, const std::string& what) {
  static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size < 8 || std::memcmp(data, signature, 8) != 0) return;
  std::size_t pos = 8;
  std::uint64_t compressed = 0;
  double pixel_bytes = 0;  // up to 2^32 x 2^32 x 64 bits: double, not an integer that could wrap
  while (pos + 8 <= size) {
    const std::uint64_t length = big_endian32(data + pos);
    const std::string type(reinterpret_cast<const char*>(data + pos + 4), 4);
    if (length > size - pos - 8) {
      throw DataError(what + ": truncated PNG (chunk '" + type + "' claims " + std::to_string(length) + " bytes, " +
                      std::to_string(size - pos - 8) + " remain)");
    }
    const unsigned char* body = data + pos + 8;
    if (type == "IHDR" && length >= 13) {
      static const int channels_of_colour_type[7] = {1, 0, 3, 1, 2, 0, 4};
      const unsigned colour = body[9];
      const double bits = double(body[8]) * (colour < 7 ? channels_of_colour_type[colour] : 0);
      pixel_bytes = double(big_endian32(body)) * double(big_endian32(body + 4)) * bits / 8;
    }
    if (type == "IDAT") compressed += length;
    if (type == "IEND") break;
    pos += 12 + length;
  }
  if (pixel_bytes > double(compressed) * 1032 + 1024) {
    throw DataError(what + ": corrupt PNG (" + std::to_string(compressed) + " bytes of compressed data cannot hold the " +
                    std::to_string(std::uint64_t(pixel_bytes)) + " bytes of pixels the header claims)");
  }
}

// Refuses an uncompressed BMP shorter than its header says: stb_image reads past the end as zeros
// and returns a partly black image without a word.
inline void check_bmp_size(const unsigned char* data, std::size_t size, const std::string& what) {
  if (size < 30 || data[0] != 'B' || data[1] != 'M') return;
  const std::uint32_t offset = little_endian32(data + 10), header = little_endian32(data + 14);
  std::int64_t width = 0, height = 0;
  std::uint32_t bits = 0, compression = 0;
  if (header == 12) {
    width = data[18] | data[19] << 8;
    height = data[20] | data[21] << 8;
    bits = data[24] | data[25] << 8;
  } else if (size >= 34) {
    width = std::int32_t(little_endian32(data + 18));
    height = std::int32_t(little_endian32(data + 22));
    bits = data[28] | data[29] << 8;
    compression = little_endian32(data + 30);
  }
  if (compression != 0 && compression != 3) return;  // stb_image refuses RLE itself
  if (width <= 0 || height == 0 || bits == 0 || bits > 32) return;
  const std::uint64_t row = (std::uint64_t(width) * bits + 31) / 32 * 4;
  const std::uint64_t needed = std::uint64_t(offset) + row * std::uint64_t(height < 0 ? -height : height);
  if (needed > size) {
    throw DataError(what + ": truncated BMP (the header claims " + std::to_string(needed) + " bytes, the file has " +
                    std::to_string(size) + ")");
  }
}
}  // namespace detail

/// Decodes `size` bytes of an image file (called `what` in errors) to `channels` channels (1 or 3;
/// 0 keeps the file's, with alpha dropped: 1 for gray, 3 for colour).
inline Image decode_image(const unsigned char* data, std::size_t size, const std::string& what, int channels = 0) {
  if (channels != 0 && channels != 1 && channels != 3) {
    throw Error("decode_image: channels must be 0 (as in the file), 1 or 3, got " + std::to_string(channels));
  }
  if (size == 0) throw DataError(what + ": the file is empty");
  if (size > std::size_t(INT32_MAX)) throw DataError(what + ": the file is larger than 2 GB");
  detail::check_jpeg_tables(data, size, what);  // before stbi_info, which reads the tables
  int w = 0, h = 0, file_channels = 0;
  if (!stbi_info_from_memory(data, int(size), &w, &h, &file_channels)) {
    throw DataError(what + ": not an image headnet can read (" + stbi_failure_reason() + "; PNG, JPEG and BMP are supported)");
  }
  if (w < 1 || h < 1 || w > max_image_side || h > max_image_side || std::int64_t(w) * h > max_image_pixels) {
    throw DataError(what + ": the image claims " + std::to_string(w) + "x" + std::to_string(h) +
                    " pixels, more than headnet decodes (32768 a side, 2^26 = 67 million in all)");
  }
  detail::check_png_chunks(data, size, what);
  detail::check_bmp_size(data, size, what);
  const int out_channels = channels ? channels : (file_channels <= 2 ? 1 : 3);
  int got_w = 0, got_h = 0, got_c = 0;
  unsigned char* decoded = stbi_load_from_memory(data, int(size), &got_w, &got_h, &got_c, out_channels);
  if (!decoded) throw DataError(what + ": cannot decode the image (" + std::string(stbi_failure_reason()) + ")");
  Image img;
  img.width = got_w;
  img.height = got_h;
  img.channels = out_channels;
  const std::size_t n = std::size_t(got_w) * std::size_t(got_h) * std::size_t(out_channels);
  img.pixels.assign(decoded, decoded + n);
  stbi_image_free(decoded);
  return img;
}

/// Reads and decodes an image file (PNG, JPEG, BMP); throws DataError naming the file.
inline Image read_image(const std::string& path, int channels = 0) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open the file");
  const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw DataError(path + ": read error");
  return decode_image(bytes.data(), bytes.size(), path, channels);
}

namespace detail {
// Resizes one line of n_in samples to n_out: a triangle filter of radius max(scale, 1), centred on
// each output sample's position in the input.
inline void resize_line(const std::vector<float>& in, std::vector<float>& out) {
  const int n_in = int(in.size()), n_out = int(out.size());
  const double scale = double(n_in) / double(n_out);
  const double radius = std::max(scale, 1.0);
  for (int o = 0; o < n_out; ++o) {
    const double centre = (o + 0.5) * scale - 0.5;
    const int first = std::max(0, int(std::floor(centre - radius)) + 1);
    const int last = std::min(n_in - 1, int(std::ceil(centre + radius)) - 1);
    double sum = 0, total = 0;
    for (int i = first; i <= last; ++i) {
      const double w = std::max(0.0, 1.0 - std::fabs((i - centre) / radius));
      sum += w * in[std::size_t(i)];
      total += w;
    }
    // The kernel misses every sample only at the borders of an enlargement: take the nearest.
    out[std::size_t(o)] = total > 0 ? float(sum / total) : in[std::size_t(std::min(n_in - 1, std::max(0, int(std::lround(centre)))))];
  }
}
}  // namespace detail

/// Bilinear resize to width x height, antialiased when shrinking; the same size returns a copy.
inline Image resize(const Image& img, int width, int height) {
  if (width < 1 || height < 1) throw Error("resize: the target size must be positive, got " + std::to_string(width) + "x" + std::to_string(height));
  if (width == img.width && height == img.height) return img;
  const int C = img.channels;
  // Horizontal: each (row, channel) is a line of width samples, step C.
  Image wide;
  wide.width = width;
  wide.height = img.height;
  wide.channels = C;
  wide.pixels.assign(std::size_t(width) * std::size_t(img.height) * std::size_t(C), 0.f);
  for (int c = 0; c < C; ++c) {
    std::vector<float> line_in(static_cast<std::size_t>(img.width)), line_out(static_cast<std::size_t>(width));
    for (int y = 0; y < img.height; ++y) {
      for (int x = 0; x < img.width; ++x) line_in[std::size_t(x)] = img.at(y, x, c);
      detail::resize_line(line_in, line_out);
      for (int x = 0; x < width; ++x) wide.pixels[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * std::size_t(C) + std::size_t(c)] = line_out[std::size_t(x)];
    }
  }
  Image out;
  out.width = width;
  out.height = height;
  out.channels = C;
  out.pixels.assign(std::size_t(width) * std::size_t(height) * std::size_t(C), 0.f);
  for (int c = 0; c < C; ++c) {
    std::vector<float> line_in(static_cast<std::size_t>(img.height)), line_out(static_cast<std::size_t>(height));
    for (int x = 0; x < width; ++x) {
      for (int y = 0; y < img.height; ++y) line_in[std::size_t(y)] = wide.at(y, x, c);
      detail::resize_line(line_in, line_out);
      for (int y = 0; y < height; ++y) out.pixels[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * std::size_t(C) + std::size_t(c)] = line_out[std::size_t(y)];
    }
  }
  return out;
}

/// The centre width x height of the image (which must be at least that large).
inline Image center_crop(const Image& img, int width, int height) {
  if (width > img.width || height > img.height || width < 1 || height < 1) {
    throw Error("center_crop: cannot cut " + std::to_string(width) + "x" + std::to_string(height) + " out of " +
                std::to_string(img.width) + "x" + std::to_string(img.height));
  }
  const int x0 = (img.width - width) / 2, y0 = (img.height - height) / 2;
  Image out;
  out.width = width;
  out.height = height;
  out.channels = img.channels;
  out.pixels.reserve(std::size_t(width) * std::size_t(height) * std::size_t(img.channels));
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < img.channels; ++c) out.pixels.push_back(img.at(y0 + y, x0 + x, c));
  return out;
}

/// torchvision's Resize(min(width, height)) + CenterCrop((height, width)): the shorter side is
/// scaled to fit, the aspect ratio kept, then the centre is cut out.
inline Image resize_and_crop(const Image& img, int width, int height) {
  const double scale = std::max(double(width) / img.width, double(height) / img.height);
  const int w = std::max(width, int(std::lround(img.width * scale)));
  const int h = std::max(height, int(std::lround(img.height * scale)));
  return center_crop(resize(img, w, h), width, height);
}

/// Writes the image as (C, H, W) floats into `out`, x = (pixel / 255 - mean[c]) / std[c], the
/// arithmetic of the CIFAR-10 loader's lookup table, so the same pixels give the same bits.
inline void image_to_tensor(const Image& img, const std::vector<float>& mean, const std::vector<float>& std_dev, float* out) {
  if (int(mean.size()) != img.channels || int(std_dev.size()) != img.channels) {
    throw Error("image_to_tensor: the normalisation has " + std::to_string(mean.size()) + " channels, the image " +
                std::to_string(img.channels));
  }
  const std::size_t plane = std::size_t(img.width) * std::size_t(img.height);
  for (int c = 0; c < img.channels; ++c)
    for (std::size_t k = 0; k < plane; ++k)
      out[std::size_t(c) * plane + k] = (img.pixels[k * std::size_t(img.channels) + std::size_t(c)] / 255.0f - mean[std::size_t(c)]) / std_dev[std::size_t(c)];
}

}  // namespace io
}  // namespace headnet
