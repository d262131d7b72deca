// For tests/predict_test.sh: writes the first N test images of a CIFAR-10 folder as PNG files and
// the logits a cifar10-fast model gives them through the data loader (the path training and
// evaluation use), so that headnet-predict, reading the PNGs, can be held to the same numbers.
//   predict_fixture DATA_FOLDER MODEL.safetensors OUT_FOLDER N
#include <cstdio>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include <headnet/data/cifar10.hpp>
#include <headnet/headnet.hpp>
#include <headnet/models/airbench.hpp>
#include <headnet/viz/chart.hpp>  // stb_image_write

using namespace headnet;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s DATA_FOLDER MODEL OUT_FOLDER N\n", argv[0]);
    return 2;
  }
  const std::string out = argv[3];
  const int n = std::stoi(argv[4]);
  try {
    const data::ImageSet test = data::read_cifar10_test(argv[1]);
    const auto file = io::read_safetensors(argv[2]);
    const auto norm = nlohmann::json::parse(file.metadata.at("normalization"));
    data::Normalization normalization;
    for (int c = 0; c < 3; ++c) {
      normalization.mean[std::size_t(c)] = norm["mean"][std::size_t(c)].get<float>();
      normalization.std[std::size_t(c)] = norm["std"][std::size_t(c)].get<float>();
    }
    const auto widths = nlohmann::json::parse(file.metadata.at("fast_recipe")).at("widths");
    auto net = models::airbench<float>(widths[0], widths[1], widths[2]);
    net.load_state_dict(io::load_safetensors<float>(argv[2]));
    net.eval();
    data::BatchLoader loader(test, n, false, 0, normalization);
    Tensor<float> images;
    std::vector<std::int32_t> labels;
    loader.next(images, labels);
    const Tensor<float> logits = net.forward(images);
    nlohmann::json expected = nlohmann::json::array();
    for (int i = 0; i < n; ++i) {
      // CHW planes to interleaved RGB.
      std::vector<unsigned char> rgb(32 * 32 * 3);
      for (int c = 0; c < 3; ++c)
        for (int k = 0; k < 32 * 32; ++k) rgb[std::size_t(k * 3 + c)] = test.image(i)[c * 1024 + k];
      const std::string png = out + "/test_" + std::to_string(i) + ".png";
      if (!stbi_write_png(png.c_str(), 32, 32, 3, rgb.data(), 32 * 3)) throw Error("cannot write " + png);
      expected.push_back({{"image", png}, {"logits", std::vector<float>(logits.data() + i * 10, logits.data() + (i + 1) * 10)}});
    }
    std::ofstream(out + "/expected.json") << expected.dump(1) << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "predict_fixture: %s\n", e.what());
    return 1;
  }
  return 0;
}
