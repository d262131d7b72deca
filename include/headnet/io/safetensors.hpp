// headnet/io/safetensors.hpp: weights in the safetensors format, readable by PyTorch users.
//
// Format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, a
// JSON header of N bytes, {"name": {"dtype": "F32", "shape": [6, 3, 5, 5], "data_offsets": [b, e]},
// ..., "__metadata__": {"key": "string"}}, then the raw little-endian tensor bytes, offsets relative
// to the end of the header. A model's file holds its state_dict() (Layer::state_dict: parameters
// and buffers under PyTorch's names), so PyTorch's load_state_dict takes it for the same module
// tree; whole-number buffers (num_batches_tracked) are stored as I64, as PyTorch keeps them.
//
// Saving is atomic: the file is written beside its destination, flushed to disk, then renamed over
// it, so a crash mid-write leaves any previous file whole.
// Loading validates everything (header, JSON, every tensor's dtype, shape, offsets, values) before
// it changes a single parameter; any problem is a DataError naming the file and the tensor.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "headnet/core/error.hpp"
#include "headnet/core/state_dict.hpp"
#include "headnet/layers/layer.hpp"

namespace headnet {
namespace io {

/// One tensor's entry in a safetensors header.
struct TensorRecord {
  std::string dtype;  ///< "F32", "F64" or "I64"
  std::vector<std::int64_t> shape;  ///< the dimensions
  std::uint64_t begin = 0;  ///< first byte, an offset into the data section
  std::uint64_t end = 0;  ///< past the last byte
};

/// A parsed, validated safetensors file.
struct SafetensorsFile {
  std::string path;  ///< the file's path (for errors)
  std::map<std::string, TensorRecord> tensors;  ///< the tensors by name
  std::map<std::string, std::string> metadata;  ///< the `__metadata__` strings
  std::vector<unsigned char> data;  ///< the data section, the bytes after the header

  /// The tensor's values converted to T.
  template <typename T>
  std::vector<T> values(const std::string& name) const {
    const TensorRecord& r = tensors.at(name);
    const std::size_t count = std::size_t(r.end - r.begin) / (r.dtype == "F32" ? 4 : 8);
    std::vector<T> out(count);
    const unsigned char* src = data.data() + r.begin;
    for (std::size_t i = 0; i < count; ++i) {
      if (r.dtype == "F32") {
        float f;
        std::memcpy(&f, src + 4 * i, 4);
        out[i] = static_cast<T>(f);
      } else if (r.dtype == "I64") {
        std::int64_t v;
        std::memcpy(&v, src + 8 * i, 8);
        out[i] = static_cast<T>(v);
      } else {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        out[i] = static_cast<T>(d);
      }
    }
    return out;
  }
};

// Writes `bytes` to `path` atomically: temporary file in the same folder, fsync, rename, fsync of
// the folder. A crash mid-write leaves any previous file whole.
inline void write_file_atomically(const std::string& path, const std::string& bytes);

namespace detail {

inline std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

}  // namespace detail

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`: a crash never leaves a half-written file.
inline void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw Error("cannot write '" + path + "': " + std::strerror(errno));
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string reason = std::strerror(errno);
      ::close(fd);
      ::unlink(temporary.c_str());
      throw Error("cannot write '" + path + "': " + reason);
    }
    written += std::size_t(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string reason = std::strerror(errno);
    ::unlink(temporary.c_str());
    throw Error("cannot write '" + path + "': " + reason);
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    ::unlink(temporary.c_str());
    throw Error("cannot write '" + path + "': " + reason);
  }
  const std::size_t slash = path.find_last_of('/');
  const std::string folder = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

/// Saves a state dict (Layer::state_dict()) as F32 (float) or F64 (double) tensors, entries marked
/// integer as I64.
template <typename T>
void save_safetensors(const std::string& path, const StateDict<T>& tensors,
                      const std::map<std::string, std::string>& metadata = {}) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "float or double");
  nlohmann::json header = nlohmann::json::object();
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (header.contains(t.name)) throw Error("save_safetensors: duplicate tensor name '" + t.name + "'");
    std::vector<std::int64_t> shape;
    for (int d = 0; d < t.value.rank(); ++d) shape.push_back(t.value.size(d));
    const std::uint64_t bytes = std::uint64_t(t.value.numel()) * (t.integer ? 8 : sizeof(T));
    header[t.name] = {{"dtype", t.integer ? "I64" : sizeof(T) == 4 ? "F32" : "F64"},
                      {"shape", shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text += ' ';  // the data section starts 8-byte aligned

  std::string file;
  file.reserve(8 + text.size() + offset);
  std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) file += static_cast<char>((n >> (8 * i)) & 0xFF);  // little-endian
  file += text;
  for (const auto& t : tensors) {
    if (!t.integer) {
      file.append(reinterpret_cast<const char*>(t.value.data()), std::size_t(t.value.numel()) * sizeof(T));
      continue;
    }
    for (const T v : t.value) {
      const auto whole = static_cast<std::int64_t>(std::llround(v));
      file.append(reinterpret_cast<const char*>(&whole), 8);
    }
  }
  write_file_atomically(path, file);
}
/// Saves named parameters (Layer::parameters()): the parameters alone, without buffers.
template <typename T>
void save_safetensors(const std::string& path, const std::vector<Parameter<T>>& tensors,
                      const std::map<std::string, std::string>& metadata = {}) {
  StateDict<T> dict;
  for (const auto& t : tensors) {
    if (dict.contains(t.name)) throw Error("save_safetensors: duplicate tensor name '" + t.name + "'");
    dict.add(t.name, t.value);
  }
  save_safetensors(path, dict, metadata);
}

/// Parses and validates the bytes of a safetensors file (F32, F64 and I64 tensors); `path` names it
/// in error messages.
inline SafetensorsFile parse_safetensors(const unsigned char* bytes, std::size_t size, const std::string& path) {
  auto fail = [&](const std::string& what) { return DataError("safetensors: '" + path + "': " + what); };
  if (size < 8) throw fail("file is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
  std::uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | bytes[i];
  if (header_length > std::uint64_t(size - 8)) {
    throw fail("header length " + std::to_string(header_length) + " exceeds the " + std::to_string(size - 8) +
               " bytes after it (truncated file, or not a safetensors file)");
  }
  const std::string text(reinterpret_cast<const char*>(bytes) + 8, std::size_t(header_length));

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("malformed JSON header: ") + e.what());
  }
  if (!header.is_object()) throw fail("the header is not a JSON object");

  SafetensorsFile file;
  file.path = path;
  const std::uint64_t data_size = std::uint64_t(size) - 8 - header_length;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) throw fail("__metadata__ is not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) throw fail("__metadata__ value '" + m.key() + "' is not a string");
        file.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& what) { return fail("tensor '" + name + "': " + what); };
    if (!entry.is_object()) throw bad("entry is not an object");
    if (!entry.contains("dtype") || !entry["dtype"].is_string()) throw bad("missing dtype");
    if (!entry.contains("shape") || !entry["shape"].is_array()) throw bad("missing shape");
    if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2 ||
        !entry["data_offsets"][0].is_number_unsigned() || !entry["data_offsets"][1].is_number_unsigned()) {
      throw bad("data_offsets must be two non-negative integers");
    }
    TensorRecord r;
    r.dtype = entry["dtype"].get<std::string>();
    if (r.dtype != "F32" && r.dtype != "F64" && r.dtype != "I64") {
      throw bad("dtype " + r.dtype + " is not supported (F32, F64 or I64 expected)");
    }
    std::uint64_t count = 1;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) throw bad("shape has an entry that is not a non-negative integer");
      const std::uint64_t dim = d.get<std::uint64_t>();
      if (dim > (std::uint64_t(1) << 40) || (dim && count > (std::uint64_t(1) << 40) / dim)) throw bad("shape is too large");
      count *= dim;
      r.shape.push_back(std::int64_t(dim));
    }
    r.begin = entry["data_offsets"][0].get<std::uint64_t>();
    r.end = entry["data_offsets"][1].get<std::uint64_t>();
    if (r.begin > r.end || r.end > data_size) {
      throw bad("data_offsets [" + std::to_string(r.begin) + ", " + std::to_string(r.end) + "] fall outside the " +
                std::to_string(data_size) + "-byte data section (truncated file?)");
    }
    const std::uint64_t element = r.dtype == "F32" ? 4 : 8;
    if (r.end - r.begin != count * element) {
      throw bad("shape " + detail::shape_string(r.shape) + " of " + r.dtype + " needs " + std::to_string(count * element) +
                " bytes, data_offsets give " + std::to_string(r.end - r.begin));
    }
    file.tensors[name] = r;
  }
  // Tensors must not share bytes.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (const auto& t : file.tensors) ranges.push_back({t.second.begin, t.second.end});
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) throw fail("two tensors overlap in the data section");
  }
  file.data.assign(bytes + 8 + header_length, bytes + size);
  return file;
}

/// Reads and validates a whole safetensors file.
inline SafetensorsFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError("safetensors: cannot open '" + path + "': " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0, std::ios::beg);
  if (size < 0) throw DataError("safetensors: cannot read '" + path + "' (is it a folder?)");
  std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), size);
  if (in.gcount() != size) throw DataError("safetensors: '" + path + "' ended early while reading");
  return parse_safetensors(bytes.data(), bytes.size(), path);
}

/// Loads a file into parameters (for example Sequential::parameters()). Every parameter must be in
/// the file with the same shape and finite values, and the file must hold nothing else; otherwise
/// DataError and no parameter is changed.
template <typename T>
void load_safetensors(const SafetensorsFile& file, const std::vector<Parameter<T>>& parameters) {
  const std::string& path = file.path;
  auto fail = [&](const std::string& what) { return DataError("safetensors: '" + path + "': " + what); };
  std::vector<std::vector<T>> staged;
  for (const auto& p : parameters) {
    auto it = file.tensors.find(p.name);
    if (it == file.tensors.end()) throw fail("missing tensor '" + p.name + "' (expected shape " + p.value.shape().str() + ")");
    std::vector<std::int64_t> expected;
    for (int d = 0; d < p.value.rank(); ++d) expected.push_back(p.value.size(d));
    if (it->second.shape != expected) {
      throw fail("tensor '" + p.name + "' has shape " + detail::shape_string(it->second.shape) + ", the network expects " +
                 p.value.shape().str());
    }
    staged.push_back(file.values<T>(p.name));
    for (std::size_t i = 0; i < staged.back().size(); ++i) {
      if (!std::isfinite(staged.back()[i])) {
        throw fail("tensor '" + p.name + "' holds a non-finite value (" + std::to_string(staged.back()[i]) + ") at element " +
                   std::to_string(i));
      }
    }
  }
  for (const auto& t : file.tensors) {
    bool known = false;
    for (const auto& p : parameters) known = known || p.name == t.first;
    if (!known) throw fail("unexpected tensor '" + t.first + "': the network has no such parameter");
  }
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    Tensor<T> value = parameters[i].value;
    std::copy(staged[i].begin(), staged[i].end(), value.data());
  }
}
/// Loads a safetensors file's tensors into `parameters` by name; nothing is changed unless every tensor fits.
template <typename T>
void load_safetensors(const std::string& path, const std::vector<Parameter<T>>& parameters) {
  load_safetensors(read_safetensors(path), parameters);
}

/// Every tensor of a file as a state dict of new tensors, in the file's order of data offsets;
/// DataError naming the file and the tensor for a non-finite value or a shape of rank above 4.
template <typename T>
StateDict<T> to_state_dict(const SafetensorsFile& file) {
  std::vector<std::pair<std::uint64_t, std::string>> order;
  for (const auto& t : file.tensors) order.push_back({t.second.begin, t.first});
  std::sort(order.begin(), order.end());
  StateDict<T> dict;
  for (const auto& entry : order) {
    const std::string& name = entry.second;
    const TensorRecord& r = file.tensors.at(name);
    auto fail = [&](const std::string& what) { return DataError("safetensors: '" + file.path + "': tensor '" + name + "' " + what); };
    if (r.shape.size() > std::size_t(Shape::max_rank)) throw fail("has " + std::to_string(r.shape.size()) + " dimensions, at most 4 are supported");
    Shape shape;
    switch (r.shape.size()) {
      case 1: shape = Shape{r.shape[0]}; break;
      case 2: shape = Shape{r.shape[0], r.shape[1]}; break;
      case 3: shape = Shape{r.shape[0], r.shape[1], r.shape[2]}; break;
      case 4: shape = Shape{r.shape[0], r.shape[1], r.shape[2], r.shape[3]}; break;
      default: break;
    }
    const std::vector<T> values = file.values<T>(name);
    for (std::size_t i = 0; i < values.size(); ++i)
      if (!std::isfinite(values[i])) throw fail("holds a non-finite value (" + std::to_string(values[i]) + ") at element " + std::to_string(i));
    dict.add(name, Tensor<T>::from_vector(shape, values), r.dtype == "I64");
  }
  return dict;
}
/// Reads a whole file as a state dict: model.load_state_dict(io::load_safetensors<float>(path)).
template <typename T>
StateDict<T> load_safetensors(const std::string& path) {
  return to_state_dict<T>(read_safetensors(path));
}

}  // namespace io
}  // namespace headnet
