// tests/reference_data.hpp: loads tests/data/pytorch_reference.json (made by
// tests/reference/make_pytorch_reference.py) and compares tensors with it.
#pragma once

#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <headnet/headnet.hpp>

#ifndef HEADNET_TEST_DATA_DIR
#error "HEADNET_TEST_DATA_DIR must point at tests/data"
#endif

namespace headnet_test {

inline const nlohmann::json& pytorch_reference() {
  static const nlohmann::json data = [] {
    const std::string path = std::string(HEADNET_TEST_DATA_DIR) + "/pytorch_reference.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return nlohmann::json::parse(in);
  }();
  return data;
}

inline headnet::Tensor<double> tensor_from(const nlohmann::json& values, const headnet::Shape& shape) {
  return headnet::Tensor<double>::from_vector(shape, values.get<std::vector<double>>());
}

inline headnet::Shape shape_from(const nlohmann::json& dims) {
  auto d = dims.get<std::vector<std::int64_t>>();
  headnet::Shape s;
  switch (d.size()) {
    case 1: return headnet::Shape{d[0]};
    case 2: return headnet::Shape{d[0], d[1]};
    case 3: return headnet::Shape{d[0], d[1], d[2]};
    case 4: return headnet::Shape{d[0], d[1], d[2], d[3]};
    default: return s;
  }
}

// Largest |a - b| / (1 + |b|) over the elements; the tensors must have equal sizes.
inline double max_difference(const headnet::Tensor<double>& a, const std::vector<double>& b) {
  REQUIRE(static_cast<std::size_t>(a.numel()) == b.size());
  double worst = 0;
  for (std::size_t i = 0; i < b.size(); ++i)
    worst = std::max(worst, std::abs(a.data()[i] - b[i]) / (1 + std::abs(b[i])));
  return worst;
}
inline double max_difference(const headnet::Tensor<double>& a, const nlohmann::json& b) {
  return max_difference(a, b.get<std::vector<double>>());
}

inline void copy_into(headnet::Tensor<double>& t, const nlohmann::json& values) {
  auto v = values.get<std::vector<double>>();
  REQUIRE(static_cast<std::size_t>(t.numel()) == v.size());
  std::copy(v.begin(), v.end(), t.data());
}

}  // namespace headnet_test
