// libFuzzer target: the ONNX reader (protobuf decoding, validation, building the Graph) must reject
// bad bytes with DataError, never crash or read out of bounds, and what it accepts must run.
#include <cstddef>
#include <cstdint>

#include <headnet/io/onnx.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    headnet::io::OnnxInfo info;
    auto graph = headnet::io::parse_onnx<float>(data, size, "fuzz input", &info);
    // Run what was accepted on a small batch, if its input is small enough to be cheap.
    if (info.input_shape.numel() <= 4096) {
      headnet::Tensor<float> x(info.input_shape, 0.5f);
      graph.forward(x);
    }
  } catch (const headnet::DataError&) {
  } catch (const headnet::ShapeError&) {
    // A model whose layers accept the declared input can still refuse another shape; not a bug.
  }
  return 0;
}
