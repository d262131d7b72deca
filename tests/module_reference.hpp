// tests/module_reference.hpp: loads tests/data/module_reference.json (made by
// tests/reference/make_module_reference.py).
#pragma once

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#ifndef HEADNET_TEST_DATA_DIR
#error "HEADNET_TEST_DATA_DIR must point at tests/data"
#endif

namespace headnet_test {

inline const nlohmann::json& module_reference() {
  static const nlohmann::json data = [] {
    const std::string path = std::string(HEADNET_TEST_DATA_DIR) + "/module_reference.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return nlohmann::json::parse(in);
  }();
  return data;
}

}  // namespace headnet_test
