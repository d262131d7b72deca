// headnet/core/shape.hpp: the shape of a tensor of rank 0 to 4.
//
// A fixed-size array rather than a std::vector so that computing and passing shapes on the training
// hot path never touches the heap.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "headnet/core/error.hpp"

namespace headnet {

class Shape {
 public:
  static constexpr int max_rank = 4;

  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) {
    if (dims.size() > static_cast<std::size_t>(max_rank)) {
      throw ShapeError("Shape: at most 4 dimensions are supported, got " +
                       std::to_string(dims.size()));
    }
    for (std::int64_t d : dims) {
      if (d < 0) throw ShapeError("Shape: negative dimension " + std::to_string(d));
      dims_[static_cast<std::size_t>(rank_++)] = d;
    }
  }

  int rank() const { return rank_; }
  std::int64_t operator[](int i) const { return dims_[static_cast<std::size_t>(i)]; }
  std::int64_t& operator[](int i) { return dims_[static_cast<std::size_t>(i)]; }

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
    return n;
  }

  bool operator==(const Shape& other) const {
    if (rank_ != other.rank_) return false;
    for (int i = 0; i < rank_; ++i) {
      if (dims_[static_cast<std::size_t>(i)] != other.dims_[static_cast<std::size_t>(i)]) return false;
    }
    return true;
  }
  bool operator!=(const Shape& other) const { return !(*this == other); }

  // "(4, 3, 32, 32)", as PyTorch prints sizes.
  std::string str() const {
    std::string s = "(";
    for (int i = 0; i < rank_; ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[static_cast<std::size_t>(i)]);
    }
    return s + ")";
  }

 private:
  std::array<std::int64_t, max_rank> dims_{};
  int rank_ = 0;
};

}  // namespace headnet
