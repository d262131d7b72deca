// headnet/io/onnx_proto.hpp: the ONNX messages headnet reads and writes, and their wire encoding.
//
// The subset of onnx.proto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto) that a
// feed-forward model needs: ModelProto, OperatorSetIdProto, GraphProto, NodeProto, AttributeProto,
// TensorProto, ValueInfoProto with its tensor type and shape. Field numbers are onnx.proto's; a
// field headnet does not know is skipped on reading, as protobuf's own parsers do, except where
// skipping would change the model's meaning (external tensor data, sub-graphs, sparse initialisers),
// which is refused by the loader with a message.
//
// Tensors: FLOAT, DOUBLE, INT64 and INT32, from raw_data (little-endian) or the typed repeated
// fields; the element count implied by dims is checked against the bytes that hold the values
// before anything is allocated.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "headnet/io/protobuf.hpp"

namespace headnet {
namespace io {
namespace onnx {

/// TensorProto.DataType values headnet reads.
enum DataType : int { UNDEFINED = 0, FLOAT = 1, INT32 = 6, INT64 = 7, DOUBLE = 11 };
/// AttributeProto.AttributeType values headnet reads.
enum AttributeType : int { ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_STRING = 3, ATTR_TENSOR = 4, ATTR_FLOATS = 6, ATTR_INTS = 7 };

/// The name of a TensorProto.DataType, for errors.
inline const char* data_type_name(int t) {
  static const char* names[] = {"UNDEFINED", "FLOAT", "UINT8", "INT8",   "UINT16",    "INT16",      "INT32",  "INT64",
                                "STRING",    "BOOL",  "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16"};
  return t >= 0 && t < 17 ? names[t] : "unknown";
}

/// An ONNX TensorProto: an initialiser or constant, values decoded.
struct TensorProto {
  std::string name;  ///< the value's name in the graph
  std::vector<std::int64_t> dims;  ///< the shape
  int data_type = UNDEFINED;  ///< TensorProto.DataType (FLOAT, INT64, ...)
  /// Values, converted on reading: floating types into `floats` (as double, exact for FLOAT and
  /// DOUBLE), integer types into `ints`.
  std::vector<double> floats;
  std::vector<std::int64_t> ints;  ///< integer values (INT64, INT32)
  bool external = false;  ///< data_location EXTERNAL: values in another file, which headnet refuses

  /// The number of elements the dimensions declare.
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto d : dims) n *= d;
    return n;
  }
  /// Whether the values are floating point.
  bool is_float() const { return data_type == FLOAT || data_type == DOUBLE; }
  /// Whether the values are integers.
  bool is_int() const { return data_type == INT64 || data_type == INT32; }
};

/// An ONNX AttributeProto: a named attribute of a node, one of its value fields set.
struct AttributeProto {
  std::string name;  ///< the attribute's name (e.g. `kernel_shape`)
  int type = 0;  ///< AttributeProto.AttributeType
  float f = 0;  ///< a FLOAT attribute
  std::int64_t i = 0;  ///< an INT attribute
  std::string s;  ///< a STRING attribute
  TensorProto t;  ///< a TENSOR attribute
  std::vector<float> floats;  ///< a FLOATS attribute
  std::vector<std::int64_t> ints;  ///< an INTS attribute
  bool has_graph = false;  ///< a sub-graph (If, Loop, Scan): no operator headnet supports has one
};

/// An ONNX NodeProto: one operator applied to named values.
struct NodeProto {
  std::vector<std::string> inputs;  ///< the names of the values the node reads
  std::vector<std::string> outputs;  ///< the names of the values it writes
  std::string name;  ///< the node's name (may be empty)
  std::string op_type;  ///< the operator ("Conv", "Relu", ...)
  std::string domain;  ///< the operator's domain ("" is the default ONNX domain)
  std::vector<AttributeProto> attributes;  ///< the attributes, in file order

  /// The attribute called `attr_name`, or nullptr.
  const AttributeProto* attribute(const std::string& attr_name) const {
    for (const auto& a : attributes)
      if (a.name == attr_name) return &a;
    return nullptr;
  }
};

/// A graph input or output: name, element type and shape (-1 for a symbolic or unknown dimension).
struct ValueInfoProto {
  std::string name;  ///< the value's name
  int elem_type = UNDEFINED;  ///< TensorProto.DataType of the elements
  bool has_shape = false;  ///< whether the file gives a shape
  std::vector<std::int64_t> dims;  ///< the dimensions, -1 where symbolic or unknown
  std::vector<std::string> dim_params;  ///< "N" for the dynamic batch dimension, "" for fixed ones
};

/// An ONNX GraphProto: nodes, initialisers, inputs and outputs.
struct GraphProto {
  std::string name;  ///< the graph's name
  std::vector<NodeProto> nodes;  ///< the nodes, in file order (topologically sorted in a valid file)
  std::vector<TensorProto> initializers;  ///< the weights
  std::vector<ValueInfoProto> inputs;  ///< the graph's inputs
  std::vector<ValueInfoProto> outputs;  ///< the graph's outputs
  bool has_sparse_initializers = false;  ///< whether the file has sparse initialisers (headnet refuses them)
};

/// An ONNX OperatorSetIdProto: an operator domain and its version.
struct OperatorSetId {
  std::string domain;  ///< the domain ("" or "ai.onnx" for the default one)
  std::int64_t version = 0;  ///< the opset version
};

/// An ONNX ModelProto: the file's header and its graph.
struct ModelProto {
  std::int64_t ir_version = 0;  ///< the IR version
  std::vector<OperatorSetId> opset_import;  ///< the opsets the model uses
  std::string producer_name;  ///< the program that wrote the file
  std::string producer_version;  ///< that program's version
  std::string doc_string;  ///< the model's description
  GraphProto graph;  ///< the model's graph
  std::vector<std::pair<std::string, std::string>> metadata;  ///< metadata_props, as key-value pairs
  bool has_graph = false;  ///< whether the file has a graph
};

// ---------------------------------------------------------------------------------------------
// Writing

/// The protobuf encoding of a TensorProto.
inline ProtoWriter encode(const TensorProto& t) {
  ProtoWriter w;
  for (auto d : t.dims) w.int_field(1, d);
  w.int_field(2, t.data_type);
  w.bytes_field(8, t.name);
  if (t.external) {  // written only so that tests can check that the reader refuses it
    w.int_field(14, 1);
    return w;
  }
  std::string raw;
  if (t.data_type == FLOAT) {
    raw.resize(t.floats.size() * 4);
    for (std::size_t i = 0; i < t.floats.size(); ++i) {
      const float v = static_cast<float>(t.floats[i]);
      std::uint32_t bits;
      std::memcpy(&bits, &v, 4);
      for (int b = 0; b < 4; ++b) raw[4 * i + b] = static_cast<char>((bits >> (8 * b)) & 0xff);
    }
  } else if (t.data_type == INT64) {
    raw.resize(t.ints.size() * 8);
    for (std::size_t i = 0; i < t.ints.size(); ++i) {
      const auto bits = static_cast<std::uint64_t>(t.ints[i]);
      for (int b = 0; b < 8; ++b) raw[8 * i + b] = static_cast<char>((bits >> (8 * b)) & 0xff);
    }
  } else {
    throw Error(std::string("ONNX writer: tensor '") + t.name + "' has type " + data_type_name(t.data_type) +
                ", only FLOAT and INT64 are written");
  }
  w.bytes_field(9, raw);
  return w;
}

/// The protobuf encoding of an AttributeProto.
inline ProtoWriter encode(const AttributeProto& a) {
  ProtoWriter w;
  w.bytes_field(1, a.name);
  w.int_field(20, a.type);
  switch (a.type) {
    case ATTR_FLOAT: w.float_field(2, a.f); break;
    case ATTR_INT: w.int_field(3, a.i); break;
    case ATTR_STRING: w.bytes_field(4, a.s); break;
    case ATTR_TENSOR: w.message(5, encode(a.t)); break;
    case ATTR_FLOATS: w.packed_floats(7, a.floats); break;
    case ATTR_INTS: w.packed_ints(8, a.ints); break;
    default: throw Error("ONNX writer: attribute '" + a.name + "' of type " + std::to_string(a.type) + " is not written");
  }
  return w;
}

/// The protobuf encoding of a NodeProto.
inline ProtoWriter encode(const NodeProto& n) {
  ProtoWriter w;
  for (const auto& i : n.inputs) w.bytes_field(1, i);
  for (const auto& o : n.outputs) w.bytes_field(2, o);
  w.bytes_field(3, n.name);
  w.bytes_field(4, n.op_type);
  for (const auto& a : n.attributes) w.message(5, encode(a));
  if (!n.domain.empty()) w.bytes_field(7, n.domain);
  return w;
}

/// The protobuf encoding of a ValueInfoProto.
inline ProtoWriter encode(const ValueInfoProto& v) {
  ProtoWriter shape;
  for (std::size_t d = 0; d < v.dims.size(); ++d) {
    ProtoWriter dim;
    const std::string param = d < v.dim_params.size() ? v.dim_params[d] : std::string();
    if (!param.empty()) {
      dim.bytes_field(2, param);
    } else {
      dim.int_field(1, v.dims[d]);
    }
    shape.message(1, dim);
  }
  ProtoWriter tensor_type;
  tensor_type.int_field(1, v.elem_type);
  tensor_type.message(2, shape);
  ProtoWriter type;
  type.message(1, tensor_type);
  ProtoWriter w;
  w.bytes_field(1, v.name);
  w.message(2, type);
  return w;
}

/// The protobuf encoding of a GraphProto.
inline ProtoWriter encode(const GraphProto& g) {
  ProtoWriter w;
  for (const auto& n : g.nodes) w.message(1, encode(n));
  w.bytes_field(2, g.name);
  for (const auto& t : g.initializers) w.message(5, encode(t));
  for (const auto& v : g.inputs) w.message(11, encode(v));
  for (const auto& v : g.outputs) w.message(12, encode(v));
  return w;
}

/// The bytes of an ONNX file holding `m`.
inline std::string encode_model(const ModelProto& m) {
  ProtoWriter w;
  w.int_field(1, m.ir_version);
  w.bytes_field(2, m.producer_name);
  w.bytes_field(3, m.producer_version);
  if (!m.doc_string.empty()) w.bytes_field(6, m.doc_string);
  w.message(7, encode(m.graph));
  for (const auto& o : m.opset_import) {
    ProtoWriter opset;
    opset.bytes_field(1, o.domain);
    opset.int_field(2, o.version);
    w.message(8, opset);
  }
  for (const auto& kv : m.metadata) {
    ProtoWriter entry;
    entry.bytes_field(1, kv.first);
    entry.bytes_field(2, kv.second);
    w.message(14, entry);
  }
  return w.bytes();
}

// ---------------------------------------------------------------------------------------------
// Reading

namespace detail {

inline std::string text(const ProtoReader& r, const ProtoField& f, const char* field_name) {
  r.expect(f, WireType::length_delimited, field_name);
  return f.as_string();
}

inline TensorProto decode_tensor(const ProtoField& field, const std::string& what) {
  ProtoReader r(field, what);
  TensorProto t;
  const unsigned char* raw = nullptr;
  std::size_t raw_size = 0;
  bool has_raw = false;
  std::vector<float> float_data;
  std::vector<double> double_data;
  std::vector<std::int64_t> int_data;  // int32_data and int64_data both arrive as varints
  ProtoField f;
  while (r.next(f)) {
    switch (f.number) {
      case 1: r.append_ints(f, t.dims); break;
      case 2: r.expect(f, WireType::varint, "data_type"); t.data_type = static_cast<int>(f.as_int()); break;
      case 4: r.append_floats(f, float_data); break;
      case 5: case 7: r.append_ints(f, int_data); break;
      case 8: t.name = text(r, f, "name"); break;
      case 9: r.expect(f, WireType::length_delimited, "raw_data"); raw = f.data; raw_size = f.size; has_raw = true; break;
      case 10: r.append_doubles(f, double_data); break;
      case 14: r.expect(f, WireType::varint, "data_location"); t.external = f.value == 1; break;
      case 3: r.fail("tensor '" + t.name + "' is segmented, which is not supported");
      default: break;
    }
  }
  const std::string who = "tensor '" + t.name + "'";
  std::int64_t numel = 1;
  for (auto d : t.dims) {
    if (d < 0) r.fail(who + " has a negative dimension " + std::to_string(d));
    if (d > 0 && numel > std::numeric_limits<std::int64_t>::max() / 8 / d) r.fail(who + " has too many elements");
    numel *= d;
  }
  if (t.external) return t;
  const int elem_size = t.data_type == FLOAT || t.data_type == INT32 ? 4 : t.data_type == INT64 || t.data_type == DOUBLE ? 8 : 0;
  if (elem_size == 0) return t;  // a type headnet does not read: the loader refuses it where it is used
  if (has_raw) {
    if (static_cast<std::uint64_t>(raw_size) != static_cast<std::uint64_t>(numel) * elem_size) {
      r.fail(who + " has " + std::to_string(raw_size) + " bytes of raw_data, its shape needs " +
             std::to_string(numel * elem_size));
    }
    auto le = [&](std::size_t i) {
      std::uint64_t bits = 0;
      for (int b = 0; b < elem_size; ++b) bits |= static_cast<std::uint64_t>(raw[i * elem_size + b]) << (8 * b);
      return bits;
    };
    if (t.is_float()) {
      t.floats.resize(static_cast<std::size_t>(numel));
      for (std::size_t i = 0; i < t.floats.size(); ++i) {
        const std::uint64_t bits = le(i);
        if (t.data_type == FLOAT) {
          const auto b32 = static_cast<std::uint32_t>(bits);
          float v;
          std::memcpy(&v, &b32, 4);
          t.floats[i] = v;
        } else {
          double v;
          std::memcpy(&v, &bits, 8);
          t.floats[i] = v;
        }
      }
    } else {
      t.ints.resize(static_cast<std::size_t>(numel));
      for (std::size_t i = 0; i < t.ints.size(); ++i) {
        const std::uint64_t bits = le(i);
        t.ints[i] = t.data_type == INT32 ? static_cast<std::int64_t>(static_cast<std::int32_t>(static_cast<std::uint32_t>(bits)))
                                         : static_cast<std::int64_t>(bits);
      }
    }
    return t;
  }
  const std::size_t count = t.data_type == FLOAT ? float_data.size() : t.data_type == DOUBLE ? double_data.size() : int_data.size();
  if (static_cast<std::uint64_t>(count) != static_cast<std::uint64_t>(numel)) {
    r.fail(who + " holds " + std::to_string(count) + " values, its shape needs " + std::to_string(numel));
  }
  if (t.data_type == FLOAT) t.floats.assign(float_data.begin(), float_data.end());
  if (t.data_type == DOUBLE) t.floats = std::move(double_data);
  if (t.is_int()) {
    t.ints = std::move(int_data);
    if (t.data_type == INT32)
      for (auto& v : t.ints) v = static_cast<std::int32_t>(static_cast<std::uint32_t>(static_cast<std::uint64_t>(v)));
  }
  return t;
}

inline AttributeProto decode_attribute(const ProtoField& field, const std::string& what) {
  ProtoReader r(field, what);
  AttributeProto a;
  ProtoField f;
  while (r.next(f)) {
    switch (f.number) {
      case 1: a.name = text(r, f, "name"); break;
      case 20: r.expect(f, WireType::varint, "type"); a.type = static_cast<int>(f.as_int()); break;
      case 2: r.expect(f, WireType::fixed32, "f"); a.f = f.as_float(); break;
      case 3: r.expect(f, WireType::varint, "i"); a.i = f.as_int(); break;
      case 4: a.s = text(r, f, "s"); break;
      case 5: r.expect(f, WireType::length_delimited, "t"); a.t = decode_tensor(f, what + " attribute '" + a.name + "'"); break;
      case 6: case 11: a.has_graph = true; break;
      case 7: r.append_floats(f, a.floats); break;
      case 8: r.append_ints(f, a.ints); break;
      default: break;
    }
  }
  return a;
}

inline NodeProto decode_node(const ProtoField& field, const std::string& what) {
  ProtoReader r(field, what + ": NodeProto");
  NodeProto n;
  ProtoField f;
  std::vector<ProtoField> attributes;
  while (r.next(f)) {
    switch (f.number) {
      case 1: n.inputs.push_back(text(r, f, "input")); break;
      case 2: n.outputs.push_back(text(r, f, "output")); break;
      case 3: n.name = text(r, f, "name"); break;
      case 4: n.op_type = text(r, f, "op_type"); break;
      case 5: r.expect(f, WireType::length_delimited, "attribute"); attributes.push_back(f); break;
      case 7: n.domain = text(r, f, "domain"); break;
      default: break;
    }
  }
  for (const auto& a : attributes) n.attributes.push_back(decode_attribute(a, what + ": node '" + n.name + "'"));
  return n;
}

inline ValueInfoProto decode_value_info(const ProtoField& field, const std::string& what) {
  ProtoReader r(field, what + ": ValueInfoProto");
  ValueInfoProto v;
  ProtoField f;
  while (r.next(f)) {
    if (f.number == 1) v.name = text(r, f, "name");
    if (f.number != 2) continue;
    r.expect(f, WireType::length_delimited, "type");
    ProtoReader type(f, r.what());
    ProtoField tf;
    while (type.next(tf)) {
      if (tf.number != 1) continue;  // only tensor types
      type.expect(tf, WireType::length_delimited, "tensor_type");
      ProtoReader tensor(tf, r.what());
      ProtoField x;
      while (tensor.next(x)) {
        if (x.number == 1) {
          tensor.expect(x, WireType::varint, "elem_type");
          v.elem_type = static_cast<int>(x.as_int());
        } else if (x.number == 2) {
          tensor.expect(x, WireType::length_delimited, "shape");
          v.has_shape = true;
          ProtoReader shape(x, r.what());
          ProtoField d;
          while (shape.next(d)) {
            if (d.number != 1) continue;
            shape.expect(d, WireType::length_delimited, "dim");
            ProtoReader dim(d, r.what());
            ProtoField df;
            std::int64_t value = -1;
            std::string param;
            while (dim.next(df)) {
              if (df.number == 1) {
                dim.expect(df, WireType::varint, "dim_value");
                value = df.as_int();
              } else if (df.number == 2) {
                param = text(dim, df, "dim_param");
              }
            }
            v.dims.push_back(value);
            v.dim_params.push_back(param);
          }
        }
      }
    }
  }
  return v;
}

inline GraphProto decode_graph(const ProtoField& field, const std::string& what) {
  ProtoReader r(field, what + ": GraphProto");
  GraphProto g;
  ProtoField f;
  while (r.next(f)) {
    switch (f.number) {
      case 1: r.expect(f, WireType::length_delimited, "node"); g.nodes.push_back(decode_node(f, what)); break;
      case 2: g.name = text(r, f, "name"); break;
      case 5: r.expect(f, WireType::length_delimited, "initializer"); g.initializers.push_back(decode_tensor(f, what + ": initializer")); break;
      case 11: r.expect(f, WireType::length_delimited, "input"); g.inputs.push_back(decode_value_info(f, what)); break;
      case 12: r.expect(f, WireType::length_delimited, "output"); g.outputs.push_back(decode_value_info(f, what)); break;
      case 15: g.has_sparse_initializers = true; break;
      default: break;
    }
  }
  return g;
}

}  // namespace detail

/// Parses a serialized ModelProto. `what` names the source in errors (the file's path).
inline ModelProto decode_model(const unsigned char* data, std::size_t size, const std::string& what) {
  ProtoReader r(data, size, what + ": ModelProto");
  ModelProto m;
  ProtoField f;
  while (r.next(f)) {
    switch (f.number) {
      case 1: r.expect(f, WireType::varint, "ir_version"); m.ir_version = f.as_int(); break;
      case 2: m.producer_name = detail::text(r, f, "producer_name"); break;
      case 3: m.producer_version = detail::text(r, f, "producer_version"); break;
      case 6: m.doc_string = detail::text(r, f, "doc_string"); break;
      case 7:
        r.expect(f, WireType::length_delimited, "graph");
        m.graph = detail::decode_graph(f, what);
        m.has_graph = true;
        break;
      case 8: {
        r.expect(f, WireType::length_delimited, "opset_import");
        ProtoReader o(f, what + ": OperatorSetIdProto");
        OperatorSetId id;
        ProtoField of;
        while (o.next(of)) {
          if (of.number == 1) id.domain = detail::text(o, of, "domain");
          if (of.number == 2) {
            o.expect(of, WireType::varint, "version");
            id.version = of.as_int();
          }
        }
        m.opset_import.push_back(id);
        break;
      }
      case 14: {
        r.expect(f, WireType::length_delimited, "metadata_props");
        ProtoReader e(f, what + ": StringStringEntryProto");
        ProtoField ef;
        std::pair<std::string, std::string> kv;
        while (e.next(ef)) {
          if (ef.number == 1) kv.first = detail::text(e, ef, "key");
          if (ef.number == 2) kv.second = detail::text(e, ef, "value");
        }
        m.metadata.push_back(kv);
        break;
      }
      default: break;
    }
  }
  return m;
}

}  // namespace onnx
}  // namespace io
}  // namespace headnet
