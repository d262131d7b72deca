// Weights files: round trips, and every way a file can be wrong.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <headnet/headnet.hpp>
#include <headnet/io/safetensors.hpp>
#include <headnet/models/tutorial_net.hpp>

using namespace headnet;

namespace {

std::string scratch(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("headnet_safetensors_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A file with the given JSON header and `data_bytes` zero bytes of data.
std::string with_header(const std::string& name, const std::string& header, std::size_t data_bytes) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[std::size_t(i)] = char((header.size() >> (8 * i)) & 0xFF);
  bytes += header + std::string(data_bytes, '\0');
  const std::string path = scratch(name);
  write_bytes(path, bytes);
  return path;
}

std::vector<float> snapshot(Sequential<float>& net) {
  std::vector<float> all;
  for (auto& p : net.parameters()) all.insert(all.end(), p.value.begin(), p.value.end());
  return all;
}

}  // namespace

TEST_CASE("Weights round-trip through safetensors", "[safetensors]") {
  manual_seed(1);
  auto a = models::tutorial_net<float>();
  manual_seed(2);
  auto b = models::tutorial_net<float>();
  REQUIRE(snapshot(a) != snapshot(b));
  const std::string path = scratch("model.safetensors");
  io::save_safetensors(path, a.parameters(), {{"conv1", "6"}});
  io::load_safetensors(path, b.parameters());
  CHECK(snapshot(a) == snapshot(b));
  const auto file = io::read_safetensors(path);
  CHECK(file.metadata.at("conv1") == "6");
  CHECK(file.tensors.at("conv1.weight").shape == std::vector<std::int64_t>{6, 3, 5, 5});
  CHECK(file.tensors.at("fc3.bias").dtype == "F32");
  CHECK((8 + read_bytes(path).substr(0, 8).size()) % 8 == 0);
  CHECK_FALSE(std::filesystem::exists(path + ".tmp." + std::to_string(::getpid())));
}

TEST_CASE("A bad weights file is refused whole, naming the problem", "[safetensors][errors]") {
  manual_seed(1);
  auto net = models::tutorial_net<float>();
  const std::string good = scratch("good.safetensors");
  io::save_safetensors(good, net.parameters());
  const std::vector<float> before = snapshot(net);
  const std::string bytes = read_bytes(good);
  auto refused = [&](const std::string& path, const std::string& message) {
    CHECK_THROWS_WITH(io::load_safetensors(path, net.parameters()), Catch::Contains(message));
    CHECK(snapshot(net) == before);
  };

  const std::string truncated = scratch("truncated.safetensors");
  write_bytes(truncated, bytes.substr(0, bytes.size() - 10));
  refused(truncated, "tensor 'fc3.bias': data_offsets [247984, 248024] fall outside the 248014-byte data section");
  const std::string tiny = scratch("tiny.safetensors");
  write_bytes(tiny, "abc");
  refused(tiny, "file is 3 bytes, too short for the 8-byte header length");
  refused(with_header("empty.safetensors", "{}", 0), "missing tensor 'conv1.weight' (expected shape (6, 3, 5, 5))");
  std::string huge(16, '\0');
  huge[7] = char(0x7f);
  write_bytes(scratch("huge.safetensors"), huge);
  refused(scratch("huge.safetensors"), "header length 9151314442816847872 exceeds the 8 bytes after it");
  refused(with_header("json.safetensors", "{\"a\": [1, 2", 0), "malformed JSON header");
  refused(with_header("dtype.safetensors", R"({"x": {"dtype": "I8", "shape": [1], "data_offsets": [0, 1]}})", 1),
          "tensor 'x': dtype I8 is not supported");
  refused(with_header("size.safetensors", R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 4),
          "tensor 'x': shape (2) of F32 needs 8 bytes, data_offsets give 4");
  refused(with_header("neg.safetensors", R"({"x": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 4]}})", 4),
          "tensor 'x': shape has an entry that is not a non-negative integer");
  refused(with_header("overlap.safetensors",
                      R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "y": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                      8),
          "two tensors overlap");
  CHECK_THROWS_WITH(io::load_safetensors(scratch("none.safetensors"), net.parameters()),
                    Catch::Contains("cannot open") && Catch::Contains("none.safetensors"));

  // A file for another network: shape mismatch, extra tensors.
  manual_seed(1);
  auto wide = models::tutorial_net<float>(16, 16);
  const std::string wide_path = scratch("wide.safetensors");
  io::save_safetensors(wide_path, wide.parameters());
  refused(wide_path, "tensor 'conv1.weight' has shape (16, 3, 5, 5), the network expects (6, 3, 5, 5)");
  Sequential<float> small;
  small.add("conv1", Conv2d<float>(3, 6, 5));
  CHECK_THROWS_WITH(io::load_safetensors(good, small.parameters()), Catch::Contains("unexpected tensor 'conv2.bias'"));

  // A NaN among the weights.
  auto params = net.parameters();
  params[2].value.data()[5] = std::nanf("");
  const std::string nan_path = scratch("nan.safetensors");
  io::save_safetensors(nan_path, params);
  params[2].value.data()[5] = before[6 * 75 + 6 + 5];
  CHECK(snapshot(net) == before);
  refused(nan_path, "tensor 'conv2.weight' holds a non-finite value (nan) at element 5");
}
