// Writes headnet's ONNX models for the independent readers (tests/onnx_interop_test.sh): for each
// model of tests/onnx_models.hpp, DIR/NAME.onnx, DIR/NAME.input.bin (float32, batch 3) and
// DIR/NAME.output.bin (headnet's eval-mode output for it), and DIR/manifest.json listing them.
//   onnx_interop_fixture DIR
#include <cstdio>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "onnx_models.hpp"

using namespace headnet;
using namespace headnet_test;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  nlohmann::json manifest = nlohmann::json::array();
  try {
    for (const auto& c : onnx_cases()) {
      Sequential<float> net = c.make();
      randomise(net, 11);
      const std::string base = dir + "/" + c.name;
      io::save_onnx(base + ".onnx", net, c.input);
      Shape shape = c.input;
      shape[0] = 3;
      Generator gen(42);
      Tensor<float> x(shape);
      for (float& v : x) v = float(gen.uniform(-1, 1));
      const Tensor<float> y = net.forward(x);
      std::ofstream(base + ".input.bin", std::ios::binary)
          .write(reinterpret_cast<const char*>(x.data()), std::streamsize(sizeof(float) * std::size_t(x.numel())));
      std::ofstream(base + ".output.bin", std::ios::binary)
          .write(reinterpret_cast<const char*>(y.data()), std::streamsize(sizeof(float) * std::size_t(y.numel())));
      std::vector<std::int64_t> in_dims, out_dims;
      for (int d = 0; d < shape.rank(); ++d) in_dims.push_back(shape[d]);
      for (int d = 0; d < y.shape().rank(); ++d) out_dims.push_back(y.shape()[d]);
      manifest.push_back({{"name", c.name}, {"input_shape", in_dims}, {"output_shape", out_dims}, {"checkable", c.checkable}});
      std::printf("wrote %s.onnx\n", base.c_str());
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "onnx_interop_fixture: %s\n", e.what());
    return 1;
  }
  std::ofstream(dir + "/manifest.json") << manifest.dump(1) << "\n";
  return 0;
}
