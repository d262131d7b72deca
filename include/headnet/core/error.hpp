// headnet/core/error.hpp: the exceptions headnet throws.
//
// Every error a user can meet derives from headnet::Error, so one catch clause is enough for a
// program that only wants to print the message and exit. The subclasses let tests and callers tell
// a bad network definition (ShapeError) from bad data on disk (DataError) and from numerical
// trouble during training (NumericError).
#pragma once

#include <stdexcept>
#include <string>

namespace headnet {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A tensor shape that a layer cannot take, or a constructor argument that makes no network.
class ShapeError : public Error {
 public:
  using Error::Error;
};

// A file that is missing, truncated, malformed or holds values outside their range.
class DataError : public Error {
 public:
  using Error::Error;
};

// A NaN or an infinity where training needs finite numbers.
class NumericError : public Error {
 public:
  using Error::Error;
};

namespace detail {
// For constructor arguments: "Conv2d: kernel_size must be at least 1, got 0".
inline void require_at_least(const char* who, const char* what, long long value, long long minimum) {
  if (value < minimum) {
    throw ShapeError(std::string(who) + ": " + what + " must be at least " + std::to_string(minimum) + ", got " +
                     std::to_string(value));
  }
}
}  // namespace detail

}  // namespace headnet
