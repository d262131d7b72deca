// headnet/layers/flatten.hpp: Flatten(start_dim = 1, end_dim = -1), as torch.flatten(x, start_dim,
// end_dim): the dimensions start_dim..end_dim become one; (N, C, H, W) -> (N, C*H*W) by default.
//
// A view in both directions: no element is copied.
#pragma once

#include <string>

#include "headnet/layers/layer.hpp"

namespace headnet {

/// Merges dimensions start_dim..end_dim into one, as torch.nn.Flatten; a view, no copy.
template <typename T>
class Flatten : public Layer<T> {
 public:
  /// Flatten(1, -1) turns (N, C, H, W) into (N, C H W).
  explicit Flatten(int start_dim = 1, int end_dim = -1) : start_dim_(start_dim), end_dim_(end_dim) {}

  std::string type() const override { return "Flatten"; }
  std::string describe() const override {
    if (start_dim_ == 1 && end_dim_ == -1) return type();
    return "Flatten(start_dim=" + std::to_string(start_dim_) + ", end_dim=" + std::to_string(end_dim_) + ")";
  }

  Shape output_shape(const Shape& x) const override {
    if (x.rank() < 1) throw ShapeError("expects input with at least one dimension, got " + x.str());
    const int start = start_dim_ < 0 ? start_dim_ + x.rank() : start_dim_;
    const int end = end_dim_ < 0 ? end_dim_ + x.rank() : end_dim_;
    if (start < 0 || end >= x.rank() || start > end) {
      throw ShapeError("start_dim " + std::to_string(start_dim_) + " and end_dim " + std::to_string(end_dim_) +
                       " do not fit input " + x.str());
    }
    Shape out;
    std::int64_t merged = 1;
    int rank = 0;
    std::int64_t dims[Shape::max_rank] = {};
    for (int d = 0; d < x.rank(); ++d) {
      if (d < start || d > end) {
        dims[rank++] = x[d];
      } else {
        merged *= x[d];
        if (d == end) dims[rank++] = merged;
      }
    }
    switch (rank) {
      case 1: out = Shape{dims[0]}; break;
      case 2: out = Shape{dims[0], dims[1]}; break;
      case 3: out = Shape{dims[0], dims[1], dims[2]}; break;
      default: out = Shape{dims[0], dims[1], dims[2], dims[3]}; break;
    }
    return out;
  }

  Tensor<T> forward(const Tensor<T>& x) override {
    input_shape_ = x.shape();
    output_shape_ = this->checked_output_shape(x.shape());
    return x.reshape(output_shape_);
  }

  Tensor<T> backward(const Tensor<T>& dy) override {
    this->check_grad_output(output_shape_, dy);
    if (!this->needs_input_grad_) return Tensor<T>();
    return dy.reshape(input_shape_);
  }

  /// The first merged dimension.
  int start_dim() const { return start_dim_; }
  /// The last merged dimension (-1: the last one).
  int end_dim() const { return end_dim_; }

 private:
  int start_dim_, end_dim_;
  Shape input_shape_, output_shape_;
};

}  // namespace headnet
