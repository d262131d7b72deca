// headnet/data/image_folder.hpp: a folder of images, one subfolder per class (torchvision's
// ImageFolder), read into an ImageSet.
//
//   data/pets/cat/001.jpg, data/pets/cat/002.png, data/pets/dog/a.jpg, ...
//   ImageSet set = data::read_image_folder("data/pets", 32, 32);    // classes "cat", "dog"
//
// Classes are the subfolders' names in sorted order (label 0 is the first); images are the files
// with an image extension (png, jpg, jpeg, bmp, any case) in each, decoded in
// parallel (io/image.hpp), their shorter side scaled to the target size and the centre cut out, to
// `channels` channels, and kept in memory as bytes (a 32x32 RGB image is 3 KB: 100,000 images are
// 300 MB). Errors name the folder or the file: a missing folder, no class folders, a class folder
// with no images, an image that cannot be decoded.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
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

/// Reads a folder with one subfolder per class (torchvision's ImageFolder), every image resized and cropped to height x width.
inline ImageSet read_image_folder(const std::string& folder, int height = 32, int width = 32, int channels = 3) {
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
  set.pixels.resize(files.size() * std::size_t(set.image_bytes()));
  std::vector<std::string> errors(files.size());
  const std::int64_t n = std::int64_t(files.size()), plane = std::int64_t(height) * width;
#pragma omp parallel for schedule(dynamic, 4) if (n > 16)
  for (std::int64_t i = 0; i < n; ++i) {
    try {
      const io::Image img = io::resize_and_crop(io::read_image(files[std::size_t(i)], channels), width, height);
      std::uint8_t* dst = set.pixels.data() + i * set.image_bytes();
      for (int c = 0; c < channels; ++c)
        for (std::int64_t k = 0; k < plane; ++k)
          dst[c * plane + k] = std::uint8_t(std::lround(std::min(255.f, std::max(0.f, img.pixels[std::size_t(k * channels + c)]))));
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
