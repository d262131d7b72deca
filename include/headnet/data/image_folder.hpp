// headnet/data/image_folder.hpp: a folder of images, one subfolder per class (torchvision's
// ImageFolder), read into an ImageSet.
//
//   data/pets/cat/001.jpg, data/pets/cat/002.png, data/pets/dog/a.jpg, ...
//   ImageSet set = data::read_image_folder("data/pets", 32, 32);    // classes "cat", "dog"
//
// Classes are the subfolders' names in sorted order (label 0 is the first); images are the files
// with an image extension (png, jpg, jpeg, bmp, any case) in each, decoded (io/image.hpp), their
// shorter side scaled to the target size and the centre cut out, to `channels` channels. Errors
// name the folder or the file: a missing folder, no class folders, a class folder with no images,
// an image that cannot be decoded.
//
// Cached or streamed: when the decoded images fit in `cache_bytes` (by default half the machine's
// memory; a 32x32 RGB image is 3 KB, so 100,000 images are 300 MB) they are all decoded once, in
// parallel, and kept as bytes. Otherwise the set is streamed: it holds only the file names, and
// BatchLoader decodes each batch's files in parallel as it draws them (every epoch, so an epoch
// costs the decoding; and decoding allocates, so the no-allocation guarantee of a training step
// holds for cached sets only). A file that cannot be decoded then stops training with an error
// naming it, at the batch that holds it.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <unistd.h>
#include <string>
#include <vector>

#include "headnet/core/parallel.hpp"
#include "headnet/data/cifar10.hpp"
#include "headnet/io/image.hpp"

namespace headnet {
namespace data {

/// Whether the file's extension is one headnet decodes (.png, .jpg, .jpeg, .bmp, any case).
inline bool is_image_file(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  for (auto& ch : ext) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  for (const char* e : {".png", ".jpg", ".jpeg", ".bmp"})
    if (ext == e) return true;
  return false;
}

/// Half the machine's physical memory: how much read_image_folder() caches by default.
inline std::int64_t default_image_cache_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return std::int64_t(1) << 31;  // unknown: 2 GB
  return std::int64_t(pages) * page_size / 2;
}

/// Decodes an image file to channels x height x width bytes, (C, H, W): the shorter side scaled to
/// fit, the centre cut out (io::resize_and_crop), rounded. Throws DataError naming the file.
inline void decode_image_file(const std::string& path, int channels, int height, int width, std::uint8_t* out) {
  const io::Image img = io::resize_and_crop(io::read_image(path, channels), width, height);
  const std::int64_t plane = std::int64_t(height) * width;
  for (int c = 0; c < channels; ++c)
    for (std::int64_t k = 0; k < plane; ++k)
      out[c * plane + k] = std::uint8_t(std::lround(std::min(255.f, std::max(0.f, img.pixels[std::size_t(k * channels + c)]))));
}

/// Reads a folder with one subfolder per class (torchvision's ImageFolder), every image resized and
/// cropped to height x width: decoded into memory when that takes at most `cache_bytes`, streamed
/// from disk otherwise (ImageSet::streamed()).
inline ImageSet read_image_folder(const std::string& folder, int height = 32, int width = 32, int channels = 3,
                                  std::int64_t cache_bytes = default_image_cache_bytes()) {
  namespace fs = std::filesystem;
  if (channels != 1 && channels != 3) throw Error("read_image_folder: channels must be 1 or 3, got " + std::to_string(channels));
  if (height < 1 || width < 1) throw Error("read_image_folder: the image size must be positive");
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw DataError("image folder '" + folder + "' does not exist or is not a folder");
  std::vector<std::string> classes;
  for (const auto& entry : fs::directory_iterator(folder, ec))
    if (entry.is_directory()) classes.push_back(entry.path().filename().string());
  if (ec) throw DataError("image folder '" + folder + "': cannot list it: " + ec.message());
  std::sort(classes.begin(), classes.end());
  if (classes.empty()) throw DataError("image folder '" + folder + "' has no class subfolders (expected " + folder + "/CLASS/IMAGE.png)");
  std::vector<std::string> files;
  std::vector<std::int32_t> labels;
  for (std::size_t c = 0; c < classes.size(); ++c) {
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(fs::path(folder) / classes[c], ec))
      if (entry.is_regular_file() && is_image_file(entry.path())) found.push_back(entry.path().string());
    if (found.empty()) {
      throw DataError("image folder '" + folder + "': class folder '" + classes[c] + "' has no images (png, jpg, jpeg, bmp)");
    }
    std::sort(found.begin(), found.end());
    for (auto& f : found) {
      files.push_back(std::move(f));
      labels.push_back(std::int32_t(c));
    }
  }
  ImageSet set;
  set.channels = channels, set.height = height, set.width = width;
  set.classes = int(classes.size());
  set.class_names = classes;
  set.labels = labels;
  set.decode_file = &decode_image_file;
  const std::int64_t n = std::int64_t(files.size());
  if (n * set.image_bytes() > cache_bytes) {
    set.files = std::move(files);
    return set;
  }
  set.pixels.resize(files.size() * std::size_t(set.image_bytes()));
  std::vector<std::string> errors(files.size());
#pragma omp parallel for schedule(dynamic, 4) if (n > 16)
  for (std::int64_t i = 0; i < n; ++i) {
    try {
      decode_image_file(files[std::size_t(i)], channels, height, width, set.pixels.data() + i * set.image_bytes());
    } catch (const std::exception& e) {
      errors[std::size_t(i)] = e.what();
    }
  }
  for (const auto& e : errors)
    if (!e.empty()) throw DataError("image folder '" + folder + "': " + e);
  return set;
}

}  // namespace data
}  // namespace headnet
