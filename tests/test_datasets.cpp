// Data sets beyond CIFAR-10, built by the test in a scratch folder: image folders (PNG and JPEG,
// odd sizes, gray and RGBA), MNIST IDX files (plain and gzipped), CIFAR-100 records; labels,
// pixels, normalisation through the BatchLoader, held-out splits, and every error naming its file.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <headnet/data/image_folder.hpp>
#include <headnet/data/mnist.hpp>
#include <headnet/viz/chart.hpp>  // stb_image_write, to make the test's files

using namespace headnet;
namespace fs = std::filesystem;

namespace {

struct Scratch {
  fs::path root;
  explicit Scratch(const std::string& name) : root(fs::temp_directory_path() / ("headnet_test_" + name)) {
    fs::remove_all(root);
    fs::create_directories(root);
  }
  ~Scratch() { fs::remove_all(root); }
  std::string at(const std::string& rel) const { return (root / rel).string(); }
};

void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

std::vector<std::uint8_t> idx(std::uint8_t dims, const std::vector<std::uint32_t>& sizes, const std::vector<std::uint8_t>& data) {
  std::vector<std::uint8_t> b{0, 0, 8, dims};
  for (auto s : sizes)
    for (int k = 3; k >= 0; --k) b.push_back(std::uint8_t(s >> (8 * k)));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

// A gzip file with stored (uncompressed) deflate blocks.
std::vector<std::uint8_t> gzip_stored(const std::vector<std::uint8_t>& data) {
  std::vector<std::uint8_t> g{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255};
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min<std::size_t>(65535, data.size() - pos);
    const bool last = pos + n == data.size();
    g.push_back(last ? 1 : 0);
    g.push_back(std::uint8_t(n & 0xff)), g.push_back(std::uint8_t(n >> 8));
    g.push_back(std::uint8_t(~n & 0xff)), g.push_back(std::uint8_t((~n >> 8) & 0xff));
    g.insert(g.end(), data.begin() + std::ptrdiff_t(pos), data.begin() + std::ptrdiff_t(pos + n));
    pos += n;
  } while (pos < data.size());
  const std::uint32_t crc = data::detail::crc32(data.data(), data.size()), size = std::uint32_t(data.size());
  for (int k = 0; k < 4; ++k) g.push_back(std::uint8_t(crc >> (8 * k)));
  for (int k = 0; k < 4; ++k) g.push_back(std::uint8_t(size >> (8 * k)));
  return g;
}

std::vector<std::uint8_t> numbered(std::size_t n, int mul = 7) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::uint8_t(i * std::size_t(mul) % 256);
  return v;
}

}  // namespace

TEST_CASE("ImageFolder: classes from sorted folder names, exact pixels, gray/RGBA/JPEG converted, normalised", "[data][imagefolder]") {
  Scratch s("image_folder");
  const auto rgb = numbered(6 * 6 * 3);
  fs::create_directories(s.at("pets/dog")), fs::create_directories(s.at("pets/cat"));
  REQUIRE(stbi_write_png(s.at("pets/dog/a.png").c_str(), 6, 6, 3, rgb.data(), 6 * 3));  // already 6x6: exact
  const auto gray = numbered(9 * 7, 3);
  REQUIRE(stbi_write_png(s.at("pets/cat/b.png").c_str(), 9, 7, 1, gray.data(), 9));
  const auto rgba = numbered(5 * 8 * 4, 11);
  REQUIRE(stbi_write_png(s.at("pets/cat/c.PNG").c_str(), 5, 8, 4, rgba.data(), 5 * 4));
  // A 12x10 JPEG of the flat colour 90 (a repository file: stb's JPEG writer is not UBSan-clean).
  fs::copy_file(std::string(HEADNET_TEST_DATA_DIR) + "/images/flat90_12x10.jpg", s.at("pets/dog/d.jpg"));
  write_file(s.at("pets/dog/notes.txt"), {'h', 'i'});  // not an image: ignored

  const data::ImageSet set = data::read_image_folder(s.at("pets"), 6, 6);
  CHECK(set.classes == 2);
  CHECK(set.class_names == std::vector<std::string>{"cat", "dog"});
  CHECK(set.labels == std::vector<std::int32_t>{0, 0, 1, 1});  // cat/b, cat/c, dog/a, dog/d
  REQUIRE(set.size() == 4);
  // dog/a.png: 6x6 RGB, interleaved in the file, planes in the set.
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < 36; ++k) CHECK(set.image(2)[c * 36 + k] == rgb[std::size_t(k * 3 + c)]);
  // The JPEG of a flat colour stays (close to) that colour; gray became three equal planes.
  for (int k = 0; k < 108; ++k) CHECK(std::abs(int(set.image(3)[k]) - 90) <= 2);
  for (int k = 0; k < 36; ++k) CHECK((set.image(0)[k] == set.image(0)[36 + k] && set.image(0)[k] == set.image(0)[72 + k]));
  // Normalised by the loader.
  data::Normalization n;
  n.mean = {0.5f, 0.25f, 0.0f}, n.std = {0.5f, 0.5f, 1.0f};
  data::BatchLoader loader(set, 4, false, 0, n);
  Tensor<float> x;
  std::vector<std::int32_t> labels;
  REQUIRE(loader.next(x, labels));
  CHECK(x.shape() == Shape{4, 3, 6, 6});
  CHECK(x.data()[2 * 108 + 36 + 5] == (float(rgb[5 * 3 + 1]) / 255.0f - 0.25f) / 0.5f);

  const data::ImageSet gray_set = data::read_image_folder(s.at("pets"), 4, 5, 1);
  CHECK((gray_set.channels == 1 && gray_set.height == 4 && gray_set.width == 5 && gray_set.pixels.size() == 4 * 20));
}

TEST_CASE("ImageFolder: a missing folder, no classes, an empty class and a bad image are refused by name", "[data][imagefolder][errors]") {
  Scratch s("image_folder_errors");
  CHECK_THROWS_WITH(data::read_image_folder(s.at("nowhere")), Catch::Contains("nowhere' does not exist or is not a folder"));
  fs::create_directories(s.at("flat"));
  CHECK_THROWS_WITH(data::read_image_folder(s.at("flat")), Catch::Contains("has no class subfolders"));
  const auto rgb = numbered(4 * 4 * 3);
  fs::create_directories(s.at("set/a")), fs::create_directories(s.at("set/b"));
  REQUIRE(stbi_write_png(s.at("set/a/x.png").c_str(), 4, 4, 3, rgb.data(), 12));
  CHECK_THROWS_WITH(data::read_image_folder(s.at("set")), Catch::Contains("class folder 'b' has no images"));
  write_file(s.at("set/b/broken.png"), {0x89, 'P', 'N', 'G', 1, 2, 3});
  CHECK_THROWS_WITH(data::read_image_folder(s.at("set")), Catch::Contains("broken.png: "));
}

TEST_CASE("ImageFolder: a set too large for the cache is streamed, with the cached set's batches", "[data][imagefolder]") {
  Scratch s("image_folder_stream");
  for (int i = 0; i < 23; ++i) {  // odd sizes, two classes, gray and colour
    const int w = 7 + i % 5, h = 6 + i % 4, c = i % 3 == 0 ? 1 : 3;
    const auto px = numbered(std::size_t(w * h * c), 3 + i);
    const std::string file = s.at(std::string(i % 2 ? "b/" : "a/") + std::to_string(i) + ".png");
    fs::create_directories(fs::path(file).parent_path());
    REQUIRE(stbi_write_png(file.c_str(), w, h, c, px.data(), w * c));
  }
  const data::ImageSet cached = data::read_image_folder(s.root.string(), 6, 5, 3);
  const std::int64_t bytes = cached.size() * cached.image_bytes();
  CHECK_FALSE(cached.streamed());
  CHECK_FALSE(data::read_image_folder(s.root.string(), 6, 5, 3, bytes).streamed());  // exactly fits
  data::ImageSet streamed = data::read_image_folder(s.root.string(), 6, 5, 3, bytes - 1);
  REQUIRE(streamed.streamed());
  CHECK(streamed.pixels.empty());
  CHECK(streamed.files.size() == 23);
  CHECK(streamed.labels == cached.labels);
  CHECK(streamed.class_names == cached.class_names);
  std::vector<std::uint8_t> scratch(std::size_t(streamed.image_bytes()));
  for (std::int64_t i = 0; i < streamed.size(); ++i) {
    const std::uint8_t* a = cached.image(i);
    const std::uint8_t* b = streamed.image(i, scratch.data());
    CHECK(std::equal(a, a + cached.image_bytes(), b));
  }
  const data::Normalization n = data::Normalization::from_statistics(cached), m = data::Normalization::from_statistics(streamed);
  CHECK((n.mean == m.mean && n.std == m.std));  // fewer than 2,000 images: every one measured
  // Shuffled, augmented batches of 5 (the last one short): the same tensors and labels.
  data::AugmentOptions aug;
  aug.pad = 2, aug.flip = data::Flip::random, aug.cutout = 2;
  data::BatchLoader from_memory(cached, 5, true, 11, n), from_disk(streamed, 5, true, 11, n);
  from_memory.set_augmentation(aug, 3), from_disk.set_augmentation(aug, 3);
  for (int epoch = 0; epoch < 2; ++epoch) {
    Tensor<float> x, y;
    std::vector<std::int32_t> lx, ly;
    int batches = 0;
    while (from_memory.next(x, lx)) {
      REQUIRE(from_disk.next(y, ly));
      CHECK(lx == ly);
      CHECK(std::equal(x.begin(), x.end(), y.begin(), y.end()));
      ++batches;
    }
    CHECK_FALSE(from_disk.next(y, ly));
    CHECK(batches == 5);
    from_memory.start_epoch(), from_disk.start_epoch();
  }
  // A held-out split moves file names, not pixels.
  data::ImageSet held = data::split_off(streamed, 0.3, 5);
  CHECK((held.streamed() && held.size() == 7 && streamed.size() == 16 && held.pixels.empty()));
  // A file that goes bad after the scan stops the batch that holds it, naming the file.
  write_file(streamed.files[3], {0x89, 'P', 'N', 'G', 1, 2, 3});
  data::BatchLoader broken(streamed, 16, false, 0);
  Tensor<float> x;
  std::vector<std::int32_t> labels;
  CHECK_THROWS_WITH(broken.next(x, labels), Catch::Contains("BatchLoader: " + streamed.files[3] + ": "));
}

TEST_CASE("MNIST: IDX files plain and gzipped give labels, pixels and shape; 1-channel batches", "[data][mnist]") {
  Scratch s("mnist");
  const auto pixels = numbered(3 * 5 * 4);
  const std::vector<std::uint8_t> labels{7, 0, 9};
  write_file(s.at("plain/train-images-idx3-ubyte"), idx(3, {3, 5, 4}, pixels));
  write_file(s.at("plain/train-labels-idx1-ubyte"), idx(1, {3}, labels));
  write_file(s.at("gz/t10k-images-idx3-ubyte.gz"), gzip_stored(idx(3, {3, 5, 4}, pixels)));
  write_file(s.at("gz/t10k-labels-idx1-ubyte.gz"), gzip_stored(idx(1, {3}, labels)));
  for (const auto& set : {data::read_mnist(s.at("plain"), true), data::read_mnist(s.at("gz"), false, data::fashion_mnist_classes())}) {
    CHECK((set.channels == 1 && set.height == 5 && set.width == 4 && set.classes == 10));
    CHECK(set.labels == std::vector<std::int32_t>{7, 0, 9});
    CHECK(set.pixels == pixels);
  }
  CHECK(data::read_mnist(s.at("plain"), true).class_name(7) == "7");
  CHECK(data::read_mnist(s.at("gz"), false, data::fashion_mnist_classes()).class_name(9) == "Ankle boot");
  data::Normalization n;
  n.mean[0] = 0.1307f, n.std[0] = 0.3081f;
  const data::ImageSet set = data::read_mnist(s.at("plain"), true);
  data::BatchLoader loader(set, 2, false, 0, n);
  Tensor<float> x;
  std::vector<std::int32_t> y;
  REQUIRE(loader.next(x, y));
  CHECK(x.shape() == Shape{2, 1, 5, 4});
  CHECK(x.data()[20 + 3] == (float(pixels[23]) / 255.0f - 0.1307f) / 0.3081f);
}

TEST_CASE("MNIST: wrong magic, dimensions, counts, labels, truncation and corrupt gzip are refused by name", "[data][mnist][errors]") {
  Scratch s("mnist_errors");
  const auto pixels = numbered(2 * 3 * 3);
  auto setup = [&](const std::vector<std::uint8_t>& images, const std::vector<std::uint8_t>& labels) {
    fs::remove_all(s.at("m"));
    write_file(s.at("m/train-images-idx3-ubyte"), images);
    write_file(s.at("m/train-labels-idx1-ubyte"), labels);
  };
  const auto good_labels = idx(1, {2}, {1, 2});
  CHECK_THROWS_WITH(data::read_mnist(s.at("empty"), true), Catch::Contains("no 'train-images-idx3-ubyte' (or train-images-idx3-ubyte.gz)"));
  auto bad_magic = idx(3, {2, 3, 3}, pixels);
  bad_magic[2] = 0x0d;  // float data
  setup(bad_magic, good_labels);
  CHECK_THROWS_WITH(data::read_mnist(s.at("m"), true), Catch::Contains("train-images-idx3-ubyte': not an IDX file of unsigned bytes (magic 00 00 0d 03"));
  setup(idx(1, {18}, pixels), good_labels);
  CHECK_THROWS_WITH(data::read_mnist(s.at("m"), true), Catch::Contains("has 1 dimensions, expected 3"));
  setup(idx(3, {2, 3, 4}, pixels), good_labels);
  CHECK_THROWS_WITH(data::read_mnist(s.at("m"), true), Catch::Contains("its header gives 2 x 3 x 4 = 24 bytes of data, the file holds 18"));
  setup(idx(3, {2, 3, 3}, pixels), idx(1, {3}, {1, 2, 3}));
  CHECK_THROWS_WITH(data::read_mnist(s.at("m"), true), Catch::Contains("holds 2 images but"));
  setup(idx(3, {2, 3, 3}, pixels), idx(1, {2}, {1, 12}));
  CHECK_THROWS_WITH(data::read_mnist(s.at("m"), true), Catch::Contains("label 1 is 12, expected 0-9"));
  setup({0, 0, 8}, good_labels);
  CHECK_THROWS_WITH(data::read_mnist(s.at("m"), true), Catch::Contains("too short for an IDX header"));
  fs::remove_all(s.at("m"));
  auto gz = gzip_stored(idx(3, {2, 3, 3}, pixels));
  gz[gz.size() - 12] ^= 0x40;  // a data byte: the CRC no longer matches
  write_file(s.at("m/train-images-idx3-ubyte.gz"), gz);
  write_file(s.at("m/train-labels-idx1-ubyte"), good_labels);
  CHECK_THROWS_WITH(data::read_mnist(s.at("m"), true), Catch::Contains("train-images-idx3-ubyte.gz': not a valid gzip file: CRC mismatch"));
  write_file(s.at("m/train-images-idx3-ubyte.gz"), {0x1f, 0x8b, 8, 0, 1, 2});
  CHECK_THROWS_WITH(data::read_mnist(s.at("m"), true), Catch::Contains("not a valid gzip file: too short"));
}

TEST_CASE("CIFAR-100: fine and coarse labels, class names from the folder, bad records refused", "[data][cifar100]") {
  Scratch s("cifar100");
  std::vector<std::uint8_t> records;
  for (int r = 0; r < 3; ++r) {
    records.push_back(std::uint8_t(r * 5));       // coarse
    records.push_back(std::uint8_t(r * 30 + 1));  // fine
    const auto px = numbered(3072, r + 3);
    records.insert(records.end(), px.begin(), px.end());
  }
  write_file(s.at("c/train.bin"), records);
  const data::ImageSet fine = data::read_cifar100(s.at("c"), true);
  CHECK((fine.classes == 100 && fine.labels == std::vector<std::int32_t>{1, 31, 61}));
  CHECK(fine.class_name(31) == "31");
  CHECK(std::equal(fine.image(2), fine.image(2) + 3072, numbered(3072, 5).begin()));
  std::ofstream names(s.at("c/coarse_label_names.txt"));
  for (int c = 0; c < 20; ++c) names << "group" << c << "\n";
  names.close();
  const data::ImageSet coarse = data::read_cifar100(s.at("c"), true, false);
  CHECK((coarse.classes == 20 && coarse.labels == std::vector<std::int32_t>{0, 5, 10}));
  CHECK(coarse.class_name(5) == "group5");
  records[3074 + 1] = 100;
  write_file(s.at("c/train.bin"), records);
  CHECK_THROWS_WITH(data::read_cifar100(s.at("c"), true), Catch::Contains("train.bin' record 1 has labels 5 (coarse) and 100 (fine)"));
  records.pop_back();
  write_file(s.at("c/train.bin"), records);
  CHECK_THROWS_WITH(data::read_cifar100(s.at("c"), true), Catch::Contains("not a whole number of 3074-byte records"));
}

TEST_CASE("split_off holds out a fraction, disjoint, reproducible", "[data]") {
  data::ImageSet set;
  set.channels = 1, set.height = 1, set.width = 2;
  for (int i = 0; i < 100; ++i) {
    set.labels.push_back(i % 10);
    set.pixels.push_back(std::uint8_t(i)), set.pixels.push_back(std::uint8_t(255 - i));
  }
  data::ImageSet a = set, b = set;
  const data::ImageSet held_a = data::split_off(a, 0.2, 5), held_b = data::split_off(b, 0.2, 5);
  CHECK((held_a.size() == 20 && a.size() == 80));
  CHECK(held_a.pixels == held_b.pixels);
  std::vector<int> seen(100, 0);
  for (const data::ImageSet* part : {static_cast<const data::ImageSet*>(&a), &held_a})
    for (std::int64_t i = 0; i < part->size(); ++i) ++seen[part->image(i)[0]];
  for (int v : seen) CHECK(v == 1);
  CHECK_THROWS(data::split_off(a, 1.0, 1));
}
