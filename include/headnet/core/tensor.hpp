// headnet/core/tensor.hpp: Tensor<T>, a handle to contiguous row-major (NCHW) storage.
//
// Contract
// - A Tensor<T> (T = float or double) has a Shape of rank 0 to 4 and points at numel() contiguous
//   elements in row-major order: for a rank-4 tensor, element (n, c, h, w) is at
//   ((n * C + c) * H + h) * W + w.
// - Copying a Tensor copies the handle, not the data, as in PyTorch: reshape(), slice() and copies
//   all share storage. clone() makes an independent copy. This is what lets layers hand out their
//   output buffers and Flatten be a view, without a copy per training step.
// - Storage is 64-byte aligned (one AVX-512 vector) so that Eigen and the compiler can use aligned
//   loads on the first row.
// - resize() keeps the storage when it is large enough, so a layer that sees the same batch shape
//   every step allocates once.
// - operator() checks bounds in debug builds (NDEBUG not defined) and throws std::out_of_range;
//   at() always checks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "headnet/core/error.hpp"
#include "headnet/core/shape.hpp"

namespace headnet {

namespace detail {

// One aligned block of memory, shared by every Tensor handle that views it.
template <typename T>
struct Storage {
  T* data = nullptr;
  std::size_t capacity = 0;

  explicit Storage(std::size_t n) : capacity(n) {
    if (n == 0) return;
    constexpr std::size_t alignment = 64;
    std::size_t bytes = (n * sizeof(T) + alignment - 1) / alignment * alignment;
    data = static_cast<T*>(std::aligned_alloc(alignment, bytes));
    if (!data) throw std::bad_alloc();
  }
  ~Storage() { std::free(data); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

}  // namespace detail

/// A dense row-major tensor of rank 0-4 with shared, reference-counted storage; views share it.
template <typename T>
class Tensor {
  static_assert(std::is_floating_point<T>::value, "Tensor<T> holds float or double");

 public:
  /// The element type.
  using Scalar = T;
  /// A row-major Eigen matrix of T.
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  /// An Eigen column vector of T.
  using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
  /// A writable Eigen view of the tensor's data as a matrix.
  using MatrixMap = Eigen::Map<Matrix>;
  /// A read-only Eigen view of the tensor's data as a matrix.
  using ConstMatrixMap = Eigen::Map<const Matrix>;
  /// A writable Eigen view of the tensor's data as a vector.
  using VectorMap = Eigen::Map<Vector>;
  /// A read-only Eigen view of the tensor's data as a vector.
  using ConstVectorMap = Eigen::Map<const Vector>;

  Tensor() = default;

  /// A new tensor of the given shape, filled with zeros.
  explicit Tensor(const Shape& shape, T fill_value = T(0)) {
    allocate(shape);
    fill(fill_value);
  }

  /// A new tensor holding a copy of `values`, which must have shape.numel() elements.
  static Tensor from_vector(const Shape& shape, const std::vector<T>& values) {
    if (static_cast<std::int64_t>(values.size()) != shape.numel()) {
      throw ShapeError("Tensor::from_vector: shape " + shape.str() + " needs " +
                       std::to_string(shape.numel()) + " values, got " +
                       std::to_string(values.size()));
    }
    Tensor t;
    t.allocate(shape);
    std::copy(values.begin(), values.end(), t.data());
    return t;
  }

  /// The shape.
  const Shape& shape() const { return shape_; }
  /// The number of dimensions.
  int rank() const { return shape_.rank(); }
  /// The size of dimension `dim`.
  std::int64_t size(int dim) const { return shape_[dim]; }
  /// The number of elements.
  std::int64_t numel() const { return shape_.numel(); }
  /// Whether the tensor has no elements.
  bool empty() const { return numel() == 0; }

  /// The first element (nullptr for a default-constructed tensor).
  T* data() { return storage_ ? storage_->data + offset_ : nullptr; }
  /// The first element, read-only.
  const T* data() const { return storage_ ? storage_->data + offset_ : nullptr; }
  /// The first element, for range-for.
  T* begin() { return data(); }
  /// Past the last element.
  T* end() { return data() + numel(); }
  /// The first element, read-only, for range-for.
  const T* begin() const { return data(); }
  /// Past the last element, read-only.
  const T* end() const { return data() + numel(); }

  /// Element access: operator() is bounds-checked in debug builds, at() always.
  template <typename... Index>
  T& operator()(Index... index) {
#ifndef NDEBUG
    return data()[checked_offset(index...)];
#else
    return data()[unchecked_offset(index...)];
#endif
  }
  /// The element at (i, j, ...), read-only, unchecked.
  template <typename... Index>
  const T& operator()(Index... index) const {
    return const_cast<Tensor&>(*this)(index...);
  }
  /// The element at (i, j, ...), bounds-checked: throws headnet::Error when out of range.
  template <typename... Index>
  T& at(Index... index) {
    return data()[checked_offset(index...)];
  }
  /// The element at (i, j, ...), read-only, bounds-checked.
  template <typename... Index>
  const T& at(Index... index) const {
    return const_cast<Tensor&>(*this).at(index...);
  }

  /// A view of the same elements with another shape of equal numel(). No copy.
  Tensor reshape(const Shape& new_shape) const {
    if (new_shape.numel() != numel()) {
      throw ShapeError("Tensor::reshape: cannot view " + shape_.str() + " (" +
                       std::to_string(numel()) + " elements) as " + new_shape.str() + " (" +
                       std::to_string(new_shape.numel()) + " elements)");
    }
    Tensor view = *this;
    view.shape_ = new_shape;
    return view;
  }

  /// A view of items [begin, end) along the first dimension (a sub-batch). No copy.
  Tensor slice(std::int64_t begin, std::int64_t end) const {
    if (rank() == 0 || begin < 0 || end < begin || end > shape_[0]) {
      throw ShapeError("Tensor::slice: range [" + std::to_string(begin) + ", " +
                       std::to_string(end) + ") is outside the first dimension of " + shape_.str());
    }
    std::int64_t item = shape_[0] == 0 ? 0 : numel() / shape_[0];
    Tensor view = *this;
    view.offset_ = offset_ + static_cast<std::size_t>(begin * item);
    view.shape_[0] = end - begin;
    return view;
  }

  /// An independent deep copy.
  Tensor clone() const {
    Tensor copy;
    copy.allocate(shape_);
    std::copy(begin(), end(), copy.data());
    return copy;
  }

  /// Gives this handle the shape `new_shape`. The elements are kept (reinterpreted) when the storage
  /// is already large enough and this handle starts at its beginning; otherwise new zeroed storage
  /// is allocated. Other handles to the old storage keep it.
  void resize(const Shape& new_shape) {
    std::size_t n = static_cast<std::size_t>(new_shape.numel());
    if (storage_ && offset_ == 0 && n <= storage_->capacity) {
      shape_ = new_shape;
      return;
    }
    allocate(new_shape);
    fill(T(0));
  }

  /// Sets every element to `value`.
  void fill(T value) { std::fill(begin(), end(), value); }
  /// Sets every element to zero.
  void zero() { fill(T(0)); }

  /// Whether this tensor and `other` view the same storage.
  bool shares_storage_with(const Tensor& other) const {
    return storage_ && storage_ == other.storage_;
  }

  /// Eigen views for GEMM. matrix() is (size(0), numel / size(0)), row-major.
  MatrixMap matrix() { return matrix(rows_for_matrix(), cols_for_matrix()); }
  /// The data as a read-only matrix: first dimension by the rest.
  ConstMatrixMap matrix() const { return matrix(rows_for_matrix(), cols_for_matrix()); }
  /// The data as a writable rows x cols matrix (rows * cols must equal numel()).
  MatrixMap matrix(std::int64_t rows, std::int64_t cols) {
    check_matrix(rows, cols);
    return MatrixMap(data(), rows, cols);
  }
  /// The data as a read-only rows x cols matrix.
  ConstMatrixMap matrix(std::int64_t rows, std::int64_t cols) const {
    check_matrix(rows, cols);
    return ConstMatrixMap(data(), rows, cols);
  }
  /// The data as a writable vector.
  VectorMap vector() { return VectorMap(data(), numel()); }
  /// The data as a read-only vector.
  ConstVectorMap vector() const { return ConstVectorMap(data(), numel()); }

 private:
  void allocate(const Shape& shape) {
    storage_ = std::make_shared<detail::Storage<T>>(static_cast<std::size_t>(shape.numel()));
    offset_ = 0;
    shape_ = shape;
  }

  std::int64_t rows_for_matrix() const { return rank() == 0 ? 1 : shape_[0]; }
  std::int64_t cols_for_matrix() const {
    return rank() == 0 ? 1 : (shape_[0] == 0 ? 0 : numel() / shape_[0]);
  }
  void check_matrix(std::int64_t rows, std::int64_t cols) const {
    if (rows * cols != numel()) {
      throw ShapeError("Tensor::matrix: cannot view " + shape_.str() + " as a " +
                       std::to_string(rows) + "x" + std::to_string(cols) + " matrix");
    }
  }

  template <typename... Index>
  std::size_t unchecked_offset(Index... index) const {
    const std::int64_t idx[] = {static_cast<std::int64_t>(index)...};
    std::int64_t off = 0;
    for (int d = 0; d < static_cast<int>(sizeof...(Index)); ++d) off = off * shape_[d] + idx[d];
    return static_cast<std::size_t>(off);
  }

  template <typename... Index>
  std::size_t checked_offset(Index... index) const {
    constexpr int count = static_cast<int>(sizeof...(Index));
    const std::int64_t idx[] = {static_cast<std::int64_t>(index)...};
    if (count != rank()) {
      throw std::out_of_range("Tensor: " + std::to_string(count) + " indices for a tensor of rank " +
                              std::to_string(rank()) + " " + shape_.str());
    }
    for (int d = 0; d < count; ++d) {
      if (idx[d] < 0 || idx[d] >= shape_[d]) {
        throw std::out_of_range("Tensor: index " + std::to_string(idx[d]) + " out of range for dimension " +
                                std::to_string(d) + " of " + shape_.str());
      }
    }
    return unchecked_offset(index...);
  }

  std::shared_ptr<detail::Storage<T>> storage_;
  std::size_t offset_ = 0;
  Shape shape_;
};

/// True when no element is NaN or infinite. x * 0 is 0 for finite x and NaN otherwise, so one
/// vectorisable sum answers for the whole tensor.
template <typename T>
bool all_finite(const Tensor<T>& t) {
  T sum = T(0);
  const T* p = t.data();
  for (std::int64_t i = 0; i < t.numel(); ++i) sum += p[i] * T(0);
  return sum == T(0);
}

}  // namespace headnet
