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

/// The dimensions of a tensor: rank 0 to 4, row-major (N, C, H, W for images).
class Shape {
 public:
  static constexpr int max_rank = 4;  ///< The largest rank a Shape holds.

  Shape() = default;
  /// A shape from its dimensions, e.g. `Shape{4, 3, 32, 32}`.
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

  /// The number of dimensions.
  int rank() const { return rank_; }
  /// Dimension i.
  std::int64_t operator[](int i) const { return dims_[static_cast<std::size_t>(i)]; }
  /// Dimension i, writable.
  std::int64_t& operator[](int i) { return dims_[static_cast<std::size_t>(i)]; }

  /// The number of elements (1 for rank 0).
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
    return n;
  }

  /// Same rank and same dimensions.
  bool operator==(const Shape& other) const {
    if (rank_ != other.rank_) return false;
    for (int i = 0; i < rank_; ++i) {
      if (dims_[static_cast<std::size_t>(i)] != other.dims_[static_cast<std::size_t>(i)]) return false;
    }
    return true;
  }
  /// Different rank or dimensions.
  bool operator!=(const Shape& other) const { return !(*this == other); }

  /// "(4, 3, 32, 32)", as PyTorch prints sizes.
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
