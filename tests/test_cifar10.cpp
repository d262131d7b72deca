// The CIFAR-10 reader and batch loader, on small files written by the test.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <headnet/data/cifar10.hpp>

using namespace headnet;
using namespace headnet::data;

namespace {

std::string scratch_dir() {
  auto dir = std::filesystem::temp_directory_path() / ("headnet_cifar_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

// `records` records whose label is record % 10 and whose pixel bytes are (record + index) % 256.
std::string write_records(const std::string& name, int records, int extra_bytes = 0, int bad_label_at = -1) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary);
  for (int r = 0; r < records; ++r) {
    out.put(char(r == bad_label_at ? 12 : r % 10));
    for (int i = 0; i < 3072; ++i) out.put(char((r + i) % 256));
  }
  for (int i = 0; i < extra_bytes; ++i) out.put(0);
  return path;
}

}  // namespace

TEST_CASE("CIFAR-10 records are read as labels and NCHW bytes", "[cifar10]") {
  ImageSet set;
  read_cifar10_file(write_records("good.bin", 12), set);
  REQUIRE(set.size() == 12);
  CHECK(set.labels[11] == 1);
  CHECK(set.image(3)[0] == 3);
  CHECK(set.image(3)[1024] == (3 + 1024) % 256);  // first green byte
}

TEST_CASE("Bad CIFAR-10 files give errors naming the file and record", "[cifar10][errors]") {
  ImageSet set;
  const std::string truncated = write_records("truncated.bin", 3, 100);
  CHECK_THROWS_WITH(read_cifar10_file(truncated, set),
                    "CIFAR-10: '" + truncated +
                        "' has 9319 bytes, not a whole number of 3073-byte records: record 3 is truncated (100 of 3073 bytes)");
  const std::string labels = write_records("labels.bin", 5, 0, 4);
  CHECK_THROWS_WITH(read_cifar10_file(labels, set),
                    "CIFAR-10: '" + labels + "' record 4 has label 12, expected 0-9 (is this a CIFAR-100 file?)");
  CHECK_THROWS_WITH(read_cifar10_file(scratch_dir() + "/missing.bin", set),
                    "CIFAR-10: cannot open '" + scratch_dir() + "/missing.bin': No such file or directory");
  const std::string empty = write_records("empty.bin", 0);
  CHECK_THROWS_WITH(read_cifar10_file(empty, set), "CIFAR-10: '" + empty + "' is empty");
  CHECK(set.size() == 0);  // nothing was half-appended
}

TEST_CASE("BatchLoader normalises, shuffles by seed and covers every image once", "[cifar10]") {
  ImageSet set;
  read_cifar10_file(write_records("loader.bin", 10), set);
  BatchLoader a(set, 4, true, 99), b(set, 4, true, 99), c(set, 4, true, 100);
  Tensor<float> xa, xb, xc;
  std::vector<std::int32_t> la, lb, lc, all;
  bool differs = false;
  int batches = 0;
  while (a.next(xa, la)) {
    REQUIRE(b.next(xb, lb));
    REQUIRE(c.next(xc, lc));
    CHECK(la == lb);
    CHECK(std::equal(xa.begin(), xa.end(), xb.begin()));
    differs = differs || la != lc;
    all.insert(all.end(), la.begin(), la.end());
    ++batches;
  }
  CHECK(batches == 3);
  CHECK(xa.shape() == Shape{2, 3, 32, 32});  // the last batch is smaller
  CHECK(differs);
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});

  BatchLoader plain(set, 10, false, 0);
  REQUIRE(plain.next(xa, la));
  // Image 0, pixel 0 is byte 0 -> (0/255 - 0.5)/0.5 = -1; image 0 byte 255 -> +1.
  CHECK(xa(0, 0, 0, 0) == -1.0f);
  CHECK(xa(0, 0, 7, 31) == Approx(1.0f));
  Normalization n;
  n.mean = {0.1f, 0.2f, 0.3f};
  n.std = {2.0f, 2.0f, 2.0f};
  BatchLoader custom(set, 10, false, 0, n);
  REQUIRE(custom.next(xa, la));
  CHECK(xa(0, 1, 0, 0) == Approx(((1024 % 256) / 255.0f - 0.2f) / 2.0f));
}
