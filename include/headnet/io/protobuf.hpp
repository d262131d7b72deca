// headnet/io/protobuf.hpp: the protocol-buffers wire format, the few hundred lines ONNX needs.
//
// A message is a sequence of fields, each a key varint (field_number << 3 | wire_type) followed by
// its value: wire type 0 a varint (int32, int64, enum, bool), 1 eight little-endian bytes (double),
// 2 a length varint and that many bytes (string, bytes, a nested message, a packed repeated
// field), 5 four little-endian bytes (float). Types 3 and 4 (groups) are obsolete and refused.
// https://protobuf.dev/programming-guides/encoding/
//
// ProtoWriter appends fields to a byte string; nested messages are written into their own writer
// first, then added with message(). ProtoReader walks one message's fields with every length checked
// against the bytes that remain, so a malformed file is a DataError, never a read out of bounds,
// and no size read from the file is trusted before it is compared with the bytes that hold it.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "headnet/core/error.hpp"

namespace headnet {
namespace io {

/// Protobuf wire types.
enum class WireType : int { varint = 0, fixed64 = 1, length_delimited = 2, fixed32 = 5 };

/// Writes protobuf messages field by field into a byte string.
class ProtoWriter {
 public:
  /// Writes field `field` as a varint.
  void varint_field(int field, std::uint64_t v) {
    key(field, WireType::varint);
    varint(v);
  }
  /// int64 and int32 are written as their two's complement, 10 bytes when negative, as protobuf does.
  void int_field(int field, std::int64_t v) { varint_field(field, static_cast<std::uint64_t>(v)); }
  /// Writes field `field` as a fixed32 float.
  void float_field(int field, float v) {
    key(field, WireType::fixed32);
    append_le(&v, 4);
  }
  /// Writes field `field` as length-delimited bytes.
  void bytes_field(int field, const std::string& bytes) { bytes_field(field, bytes.data(), bytes.size()); }
  /// Writes `size` bytes at `data` as length-delimited field `field`.
  void bytes_field(int field, const void* data, std::size_t size) {
    key(field, WireType::length_delimited);
    varint(size);
    bytes_.append(static_cast<const char*>(data), size);
  }
  /// Writes a nested message as field `field`.
  void message(int field, const ProtoWriter& nested) { bytes_field(field, nested.bytes_); }
  /// Writes `values` as one packed repeated int64 field.
  void packed_ints(int field, const std::vector<std::int64_t>& values) {
    ProtoWriter packed;
    for (std::int64_t v : values) packed.varint(static_cast<std::uint64_t>(v));
    bytes_field(field, packed.bytes_);
  }
  /// Writes `values` as one packed repeated float field.
  void packed_floats(int field, const std::vector<float>& values) {
    ProtoWriter packed;
    for (float v : values) packed.append_le(&v, 4);
    bytes_field(field, packed.bytes_);
  }

  /// The message written so far.
  const std::string& bytes() const { return bytes_; }

 private:
  void key(int field, WireType type) { varint((static_cast<std::uint64_t>(field) << 3) | static_cast<std::uint64_t>(type)); }
  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      bytes_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    bytes_.push_back(static_cast<char>(v));
  }
  // Little-endian on every host: bytes are taken from the value, lowest first.
  void append_le(const void* value, int size) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, value, size);
    for (int i = 0; i < size; ++i) bytes_.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  }

  std::string bytes_;
};

/// One field of a message, as ProtoReader::next() returns it. For a length-delimited field, data and
/// size point into the reader's buffer; for the others, value holds the varint or the fixed bytes.
struct ProtoField {
  int number = 0;  ///< the field number
  WireType type = WireType::varint;  ///< the wire type
  std::uint64_t value = 0;  ///< a varint's value or a fixed field's bits
  const unsigned char* data = nullptr;  ///< a length-delimited field's bytes (in the reader's buffer)
  std::size_t size = 0;  ///< a length-delimited field's length

  /// The varint as a signed integer (two's complement, as protobuf writes int64).
  std::int64_t as_int() const { return static_cast<std::int64_t>(value); }
  /// The fixed32 bits as a float.
  float as_float() const {
    const auto bits = static_cast<std::uint32_t>(value);
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  /// The fixed64 bits as a double.
  double as_double() const {
    double d;
    std::memcpy(&d, &value, 8);
    return d;
  }
  /// The length-delimited bytes as a string.
  std::string as_string() const { return std::string(reinterpret_cast<const char*>(data), size); }
};

/// Reads a protobuf message's fields one by one, checking every length against the bytes left.
class ProtoReader {
 public:
  /// `what` names the message in errors ("model.onnx: GraphProto").
  ProtoReader(const unsigned char* data, std::size_t size, std::string what)
      : p_(data), end_(data + size), what_(std::move(what)) {}
  /// A reader of a nested message held by field `f`.
  ProtoReader(const ProtoField& f, std::string what) : ProtoReader(f.data, f.size, std::move(what)) {}

  /// Reads the next field into `f`; false at the end of the message.
  bool next(ProtoField& f) {
    if (p_ == end_) return false;
    const std::uint64_t key = varint();
    f.number = static_cast<int>(key >> 3);
    const int type = static_cast<int>(key & 7);
    if (key >> 3 == 0 || key >> 3 > 536870911u) fail("invalid field number " + std::to_string(key >> 3));
    f.data = nullptr;
    f.size = 0;
    f.value = 0;
    switch (type) {
      case 0:
        f.type = WireType::varint;
        f.value = varint();
        break;
      case 1:
        f.type = WireType::fixed64;
        f.value = fixed(8);
        break;
      case 2: {
        f.type = WireType::length_delimited;
        const std::uint64_t n = varint();
        if (n > static_cast<std::uint64_t>(end_ - p_)) {
          fail("field " + std::to_string(f.number) + " claims " + std::to_string(n) + " bytes, only " +
               std::to_string(end_ - p_) + " remain");
        }
        f.data = p_;
        f.size = static_cast<std::size_t>(n);
        p_ += n;
        break;
      }
      case 5:
        f.type = WireType::fixed32;
        f.value = fixed(4);
        break;
      default:
        fail("field " + std::to_string(f.number) + " has wire type " + std::to_string(type) +
             " (groups and unknown types are not supported)");
    }
    return true;
  }

  /// Checks that `f` has the wire type its field number must have.
  void expect(const ProtoField& f, WireType type, const char* field_name) const {
    if (f.type != type) {
      fail(std::string("field ") + field_name + " (" + std::to_string(f.number) + ") has wire type " +
           std::to_string(static_cast<int>(f.type)) + ", expected " + std::to_string(static_cast<int>(type)));
    }
  }

  /// A repeated int64 field arrives packed (one length-delimited run of varints) or one varint per
  /// field; both are accepted, as protobuf's parsers do.
  void append_ints(const ProtoField& f, std::vector<std::int64_t>& out) const {
    if (f.type == WireType::varint) {
      out.push_back(f.as_int());
      return;
    }
    expect(f, WireType::length_delimited, "packed int64");
    ProtoReader packed(f.data, f.size, what_);
    while (packed.p_ != packed.end_) out.push_back(static_cast<std::int64_t>(packed.varint()));
  }
  /// Appends a repeated float field, packed or not.
  void append_floats(const ProtoField& f, std::vector<float>& out) const {
    if (f.type == WireType::fixed32) {
      out.push_back(f.as_float());
      return;
    }
    expect(f, WireType::length_delimited, "packed float");
    if (f.size % 4) fail("packed float field of " + std::to_string(f.size) + " bytes (not a multiple of 4)");
    ProtoReader packed(f.data, f.size, what_);
    out.reserve(out.size() + f.size / 4);
    while (packed.p_ != packed.end_) {
      const auto bits = static_cast<std::uint32_t>(packed.fixed(4));
      float v;
      std::memcpy(&v, &bits, 4);
      out.push_back(v);
    }
  }
  /// Appends a repeated double field, packed or not.
  void append_doubles(const ProtoField& f, std::vector<double>& out) const {
    if (f.type == WireType::fixed64) {
      out.push_back(f.as_double());
      return;
    }
    expect(f, WireType::length_delimited, "packed double");
    if (f.size % 8) fail("packed double field of " + std::to_string(f.size) + " bytes (not a multiple of 8)");
    ProtoReader packed(f.data, f.size, what_);
    while (packed.p_ != packed.end_) {
      const std::uint64_t bits = packed.fixed(8);
      double v;
      std::memcpy(&v, &bits, 8);
      out.push_back(v);
    }
  }

  /// Throws DataError naming the message.
  [[noreturn]] void fail(const std::string& message) const { throw DataError(what_ + ": " + message); }
  /// The message's name in errors.
  const std::string& what() const { return what_; }

 private:
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) fail("truncated varint");
      const unsigned char byte = *p_++;
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
    }
    fail("varint longer than 10 bytes");
  }
  std::uint64_t fixed(int size) {
    if (end_ - p_ < size) fail("truncated fixed-size field");
    std::uint64_t v = 0;
    for (int i = 0; i < size; ++i) v |= static_cast<std::uint64_t>(p_[i]) << (8 * i);
    p_ += size;
    return v;
  }

  const unsigned char* p_;
  const unsigned char* end_;
  std::string what_;
};

}  // namespace io
}  // namespace headnet
