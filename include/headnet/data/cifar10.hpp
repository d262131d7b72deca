// headnet/data/cifar10.hpp: the CIFAR-10 binary format, and batches drawn from it.
//
// Format (https://www.cs.toronto.edu/~kriz/cifar.html, "binary version"): each of data_batch_1.bin
// ... data_batch_5.bin and test_batch.bin holds 10,000 records of 3073 bytes: a label byte (0-9),
// then the 32x32 image as 1024 red, 1024 green and 1024 blue bytes, each plane row-major. That is
// already NCHW, so a record is copied, not rearranged.
//
// Images stay uint8 in memory (3 KiB each, 184 MB for all 60,000) and are converted to float one
// batch at a time, with x = (pixel/255 - mean[c]) / std[c]; the tutorial's normalisation is mean =
// std = 0.5, which maps pixels to [-1, 1].
//
// Errors: a missing file, a size that is not a whole number of records and a label outside 0-9 all
// throw DataError naming the file and the record.
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "headnet/core/error.hpp"
#include "headnet/core/random.hpp"
#include "headnet/core/tensor.hpp"
#include "headnet/core/parallel.hpp"
#include "headnet/data/augment.hpp"
#include "headnet/data/loader.hpp"

namespace headnet {
namespace data {

/// The CIFAR-10 binary format: sizes, class names and file names.
struct Cifar10 {
  static constexpr int channels = 3;  ///< colour channels
  static constexpr int height = 32;  ///< image rows
  static constexpr int width = 32;  ///< image columns
  static constexpr int image_bytes = channels * height * width;  ///< 3072
  static constexpr int record_bytes = 1 + image_bytes;            ///< 3073
  static constexpr int classes = 10;  ///< number of classes
  static constexpr std::int64_t records_per_file = 10000;  ///< records in each .bin file

  /// The ten class names, in label order.
  static const std::array<const char*, 10>& class_names() {
    static const std::array<const char*, 10> names = {"plane", "car",  "bird", "cat",  "deer",
                                                      "dog",   "frog", "horse", "ship", "truck"};
    return names;
  }
  /// The five training files, in order.
  static std::vector<std::string> train_files() {
    return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"};
  }
  /// The test file.
  static std::vector<std::string> test_files() { return {"test_batch.bin"}; }
};

/// Any data set of small images (CIFAR-10's by default; MNIST, CIFAR-100 and image folders fill in
/// their own shape and classes): pixels (N, C, H, W) as bytes, labels 0 .. classes-1.
///
/// A streamed set (an image folder too large for memory, data/image_folder.hpp) keeps `pixels`
/// empty and names each image's file in `files`; image(i, scratch) decodes it on demand, and
/// BatchLoader decodes each batch's files in parallel.
struct ImageSet {
  std::vector<std::uint8_t> pixels;  ///< images as bytes, (C, H, W) per image, one after the other
  std::vector<std::int32_t> labels;  ///< one label per image
  std::vector<std::string> files;    ///< streamed sets only: the file of each image
  int channels = Cifar10::channels;  ///< channels per image (1 or 3)
  int height = Cifar10::height;  ///< rows per image
  int width = Cifar10::width;  ///< columns per image
  int classes = Cifar10::classes;  ///< number of classes
  std::vector<std::string> class_names;  ///< empty: CIFAR-10's when there are 10 classes, else numbers

  /// The number of images.
  std::int64_t size() const { return static_cast<std::int64_t>(labels.size()); }
  /// Bytes per image.
  std::int64_t image_bytes() const { return std::int64_t(channels) * height * width; }
  /// The bytes of image i (of a set held in memory).
  const std::uint8_t* image(std::int64_t i) const { return pixels.data() + i * image_bytes(); }
  /// Whether the images stay on disk, decoded on demand.
  bool streamed() const { return !files.empty(); }
  /// The bytes of image i: in memory, or decoded from its file into `scratch` (image_bytes()
  /// bytes) for a streamed set. Safe to call from several threads with different scratch buffers.
  const std::uint8_t* image(std::int64_t i, std::uint8_t* scratch) const {
    if (!streamed()) return image(i);
    decode_file(files[std::size_t(i)], channels, height, width, scratch);
    return scratch;
  }
  /// Decodes an image file to channels x height x width bytes (shorter side scaled, centre cut),
  /// as image folders are read. Set by data/image_folder.hpp, so that this header needs no decoder.
  void (*decode_file)(const std::string& path, int channels, int height, int width, std::uint8_t* out) = nullptr;
  /// The name of class c: class_names[c], CIFAR-10's, or "c".
  std::string class_name(int c) const {
    if (std::size_t(c) < class_names.size()) return class_names[std::size_t(c)];
    if (classes == Cifar10::classes && class_names.empty()) return Cifar10::class_names()[std::size_t(c)];
    return std::to_string(c);
  }
  /// The class names: class_names, or CIFAR-10's for 10 classes, or "0", "1", ...
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    for (int c = 0; c < classes; ++c) n.push_back(class_name(c));
    return n;
  }
};

/// Appends the records in `bytes` (the contents of a CIFAR-10 binary file called `name` in error
/// messages) to `set`. On any error `set` is left unchanged.
inline void parse_cifar10(const std::uint8_t* bytes, std::size_t size, const std::string& name, ImageSet& set) {
  if (size == 0) throw DataError("CIFAR-10: '" + name + "' is empty");
  if (size % Cifar10::record_bytes != 0) {
    const std::size_t whole = size / Cifar10::record_bytes;
    throw DataError("CIFAR-10: '" + name + "' has " + std::to_string(size) +
                    " bytes, not a whole number of 3073-byte records: record " + std::to_string(whole) + " is truncated (" +
                    std::to_string(size - whole * Cifar10::record_bytes) + " of 3073 bytes)");
  }
  const std::size_t count = size / Cifar10::record_bytes;
  for (std::size_t r = 0; r < count; ++r) {
    const int label = bytes[r * Cifar10::record_bytes];
    if (label >= Cifar10::classes) {
      throw DataError("CIFAR-10: '" + name + "' record " + std::to_string(r) + " has label " + std::to_string(label) +
                      ", expected 0-9 (is this a CIFAR-100 file?)");
    }
  }
  const std::size_t old_pixels = set.pixels.size();
  set.pixels.resize(old_pixels + count * Cifar10::image_bytes);
  set.labels.reserve(set.labels.size() + count);
  for (std::size_t r = 0; r < count; ++r) {
    const std::uint8_t* record = bytes + r * Cifar10::record_bytes;
    set.labels.push_back(record[0]);
    std::memcpy(set.pixels.data() + old_pixels + r * Cifar10::image_bytes, record + 1, Cifar10::image_bytes);
  }
}

/// Appends the records of one CIFAR-10 binary file to `set`. On any error `set` is left unchanged.
inline void read_cifar10_file(const std::string& path, ImageSet& set) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError("CIFAR-10: cannot open '" + path + "': " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff bytes = in.tellg();
  in.seekg(0, std::ios::beg);
  if (bytes < 0) throw DataError("CIFAR-10: cannot read '" + path + "' (is it a folder?)");
  std::vector<std::uint8_t> raw(static_cast<std::size_t>(bytes));
  in.read(reinterpret_cast<char*>(raw.data()), bytes);
  if (in.gcount() != bytes) {
    throw DataError("CIFAR-10: '" + path + "' ended early while reading record " +
                    std::to_string(in.gcount() / Cifar10::record_bytes));
  }
  parse_cifar10(raw.data(), raw.size(), path, set);
}

/// Reads the named files from `directory` (a folder holding data_batch_1.bin, ...).
inline ImageSet read_cifar10(const std::string& directory, const std::vector<std::string>& files) {
  ImageSet set;
  for (const auto& f : files) read_cifar10_file(directory + "/" + f, set);
  return set;
}
/// The 50,000 training images from a cifar-10-batches-bin folder.
inline ImageSet read_cifar10_train(const std::string& directory) { return read_cifar10(directory, Cifar10::train_files()); }
/// The 10,000 test images from a cifar-10-batches-bin folder.
inline ImageSet read_cifar10_test(const std::string& directory) { return read_cifar10(directory, Cifar10::test_files()); }

/// Per-channel normalisation x = (pixel/255 - mean) / std.
struct Normalization {
  std::array<float, 3> mean{0.5f, 0.5f, 0.5f};  ///< per-channel mean, subtracted after scaling pixels to [0, 1]
  std::array<float, 3> std{0.5f, 0.5f, 0.5f};  ///< per-channel standard deviation, divided by after the mean

  /// The tutorial's normalisation: mean 0.5, std 0.5, pixels to [-1, 1].
  static Normalization tutorial() { return {}; }
  /// The per-channel mean and standard deviation of a set's pixels (scaled to [0, 1]).
  /// A streamed set is measured on 2,000 images evenly spaced through it (decoding them all would
  /// cost a whole epoch).
  static Normalization from_statistics(const ImageSet& set) {
    Normalization n;
    const std::int64_t plane = std::int64_t(set.height) * set.width;
    const std::int64_t step = set.streamed() ? std::max<std::int64_t>(1, set.size() / 2000) : 1;
    std::vector<std::uint8_t> scratch(set.streamed() ? std::size_t(set.image_bytes()) : 0);
    // Images outer, channels inner: a streamed image is decoded once, not once per channel.
    const int channels = std::min(3, set.channels);
    std::array<double, 3> sum{}, sum_sq{};
    std::int64_t images = 0;
    for (std::int64_t i = 0; i < set.size(); i += step, ++images) {
      const std::uint8_t* image = set.image(i, scratch.data());
      for (int c = 0; c < channels; ++c) {
        const std::uint8_t* p = image + c * plane;
        for (std::int64_t k = 0; k < plane; ++k) {
          const double v = p[k] / 255.0;
          sum[std::size_t(c)] += v;
          sum_sq[std::size_t(c)] += v * v;
        }
      }
    }
    const double count = double(images) * double(plane);
    for (int c = 0; c < channels; ++c) {
      const double mean = count > 0 ? sum[std::size_t(c)] / count : 0.0;
      n.mean[std::size_t(c)] = float(mean);
      n.std[std::size_t(c)] = float(count > 0 ? std::sqrt(std::max(1e-12, sum_sq[std::size_t(c)] / count - mean * mean)) : 1.0);
    }
    return n;
  }
};

/// Draws batches from an ImageSet, in a shuffled order when asked, converting them to float into a
/// tensor it owns and reuses (images in parallel), and augmenting them when set_augmentation() was
/// called (data/augment.hpp: keyed on the seed, the epoch and the image). Same seed, same order and
/// same augmented images, epoch after epoch. set_drop_last(true) leaves out a last partial batch.
class BatchLoader : public Loader {
 public:
  /// A loader over `set` in batches of `batch_size`, shuffled each epoch from `seed` when `shuffle`.
  BatchLoader(const ImageSet& set, int batch_size, bool shuffle, std::uint64_t seed,
              Normalization normalization = Normalization::tutorial())
      : set_(&set), batch_size_(batch_size), shuffle_(shuffle), generator_(initial_generator(seed)), order_(std::size_t(set.size())) {
    detail::require_at_least("BatchLoader", "batch_size", batch_size, 1);
    const std::size_t stored = set.streamed() ? set.files.size() * std::size_t(set.image_bytes()) : set.pixels.size();
    if (set.streamed() && !set.decode_file) throw ShapeError("BatchLoader: a streamed image set needs its decode_file");
    if (set.channels < 1 || set.channels > 3 || set.height < 1 || set.width < 1 ||
        stored != std::size_t(set.size() * set.image_bytes())) {
      throw ShapeError("BatchLoader: the image set must hold 1 to 3 channels of H x W bytes per image, got " +
                       std::to_string(set.channels) + "x" + std::to_string(set.height) + "x" + std::to_string(set.width) +
                       " and " + std::to_string(set.pixels.size()) + " bytes for " + std::to_string(set.size()) + " images");
    }
    for (int c = 0; c < 3; ++c)
      for (int v = 0; v < 256; ++v)
        lookup_[std::size_t(c)][std::size_t(v)] =
            (float(v) / 255.0f - normalization.mean[std::size_t(c)]) / normalization.std[std::size_t(c)];
    start_epoch();
  }

  /// The generator a loader built with `seed` starts from (before its first shuffle): the data-order
  /// stream of that seed, independent of the initial weights drawn with the same seed.
  static Generator initial_generator(std::uint64_t seed) { return Generator(seed, Generator::data_order); }

  /// Turns augmentation on for the following batches.
  void set_augmentation(const AugmentOptions& options, std::uint64_t seed) { augmentation_ = Augmentation(options, seed); }
  /// The augmentation (Augmentation::any() is false when none).
  const Augmentation& augmentation() const { return augmentation_; }
  /// Whether the last, short batch of an epoch is dropped.
  void set_drop_last(bool drop) { drop_last_ = drop; }
  /// The number of epochs started.
  std::int64_t epoch() const { return epoch_; }
  /// Draws only this rank's shard, as PyTorch's DistributedSampler: every rank shuffles the same
  /// permutation, pads it with its own beginning to a multiple of `world` images, and takes every
  /// world-th image from position `rank`. Each rank then has as many batches as the others (their
  /// collectives must pair up), and a batch of B per rank covers what one process would see in a
  /// batch of B x world.
  void set_shard(int rank, int world) {
    if (world < 1 || rank < 0 || rank >= world) {
      throw Error("BatchLoader: shard " + std::to_string(rank) + " of " + std::to_string(world) + " does not exist");
    }
    rank_ = rank, world_ = world;
    position_ = std::min(position_, size());
  }

  /// Starts a new pass over the data: reshuffles (when shuffling) and rewinds.
  void start_epoch() override {
    ++epoch_;
    epoch_generator_ = generator_.state();
    for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<std::int64_t>(i);
    if (shuffle_) generator_.shuffle(order_.begin(), order_.end());
    position_ = 0;
  }

  std::int64_t size() const override {
    const std::int64_t shard = (set_->size() + world_ - 1) / world_;
    return drop_last_ ? shard / batch_size_ * batch_size_ : shard;
  }
  /// Batches in one epoch.
  std::int64_t batches_per_epoch() const override { return (size() + batch_size_ - 1) / batch_size_; }

  /// Fills the next batch; false at the end of the epoch. The last batch may be smaller.
  /// images: (B, C, H, W), a view of the loader's buffer valid until the next call.
  bool next(Tensor<float>& images, std::vector<std::int32_t>& labels) override {
    if (position_ >= size()) return false;
    const std::int64_t b = std::min<std::int64_t>(batch_size_, size() - position_);
    const int C = set_->channels, H = set_->height, W = set_->width;
    const std::int64_t image_bytes = set_->image_bytes(), plane = std::int64_t(H) * W;
    buffer_.resize({b, C, H, W});
    labels.resize(std::size_t(b));
    const bool augment = augmentation_.any(), streamed = set_->streamed();
    // Decoding files is worth a thread per image from the first; converting bytes only in bulk.
    const int threads = b >= 64 || (streamed && b > 1) ? num_threads() : 1;
    if (augment && std::int64_t(scratch_.size()) < std::int64_t(threads) * image_bytes)
      scratch_.resize(std::size_t(threads * image_bytes));  // grows once, before the threads
    if (streamed && std::int64_t(decoded_.size()) < b * image_bytes) decoded_.resize(std::size_t(b * image_bytes));
    std::vector<std::string>& errors = errors_;
    if (streamed) errors.assign(std::size_t(b), std::string());
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
    for (std::int64_t i = 0; i < b; ++i) {
      const std::int64_t index = order_[std::size_t(((position_ + i) * world_ + rank_) % set_->size())];
      const std::uint8_t* src = nullptr;
      try {
        src = set_->image(index, streamed ? decoded_.data() + i * image_bytes : nullptr);
      } catch (const std::exception& e) {  // exceptions must not leave a parallel region
        errors[std::size_t(i)] = e.what();
        continue;
      }
      float* dst = buffer_.data() + i * image_bytes;
      for (int c = 0; c < C; ++c) {
        const float* table = lookup_[std::size_t(c)].data();
        for (std::int64_t k = 0; k < plane; ++k) dst[c * plane + k] = table[src[c * plane + k]];
      }
      if (augment)
        augmentation_.apply(dst, C, H, W, epoch_, index, scratch_.data() + std::int64_t(thread_index()) * image_bytes);
      labels[std::size_t(i)] = set_->labels[std::size_t(index)];
    }
    if (streamed)
      for (const auto& e : errors)
        if (!e.empty()) throw DataError("BatchLoader: " + e);
    position_ += b;
    images = buffer_;
    return true;
  }

  /// Skips the next `batches` batches of this epoch without converting them (to resume mid-epoch).
  void skip(std::int64_t batches) { position_ = std::min(size(), position_ + batches * batch_size_); }

  /// Where the loader is, for checkpoints.
  LoaderState state() const override { return {epoch_generator_, position_, epoch_}; }
  /// Restores a position saved by state().
  void set_state(const LoaderState& state) override {
    generator_.set_state(state.epoch_generator);
    epoch_ = state.epoch - 1;
    start_epoch();
    position_ = std::max<std::int64_t>(0, std::min(size(), state.position));
  }

  /// The generator that shuffles.
  Generator& generator() { return generator_; }
  /// Images of this epoch already handed out.
  std::int64_t position() const { return position_; }

 private:
  const ImageSet* set_;
  int batch_size_;
  bool shuffle_;
  Generator generator_;
  Generator::State epoch_generator_{};  // before the current epoch's shuffle
  std::int64_t epoch_ = -1;             // passes started, less one
  Augmentation augmentation_;
  bool drop_last_ = false;
  int rank_ = 0, world_ = 1;            // this loader's shard (set_shard)
  std::vector<float> scratch_;          // one image per thread, for the augmentation
  std::vector<std::uint8_t> decoded_;   // a streamed set's batch, decoded
  std::vector<std::string> errors_;     // a streamed set's decoding errors, by image of the batch
  std::vector<std::int64_t> order_;
  std::int64_t position_ = 0;
  std::array<std::array<float, 256>, 3> lookup_{};
  Tensor<float> buffer_;
};

}  // namespace data
}  // namespace headnet
