// headnet/io/onnx.hpp: models in ONNX, written for other runtimes and read back from them.
//
//   io::save_onnx("model.onnx", net, Shape{1, 3, 32, 32});     // any model of headnet's layers
//   Graph<float> g = io::load_onnx<float>("model.onnx");       // PyTorch's export, or ours
//
// Writing: opset 17 (20 only for a tanh-approximated GELU, which ONNX has no older form of), float32
// initialisers as raw little-endian data named as in the state dict ("block1.conv1.weight"), one
// input "input" and one output "output" whose first dimension is the dynamic batch "N". Eval-mode
// semantics: BatchNorm with its running statistics, Dropout as Identity. GELU is written in the
// Erf form PyTorch writes (x * (1 + erf(x / sqrt 2)) * 0.5), SiLU as x * Sigmoid(x).
//
// Reading: a graph of the operators below becomes a Graph (layers/graph.hpp) that can be evaluated
// and trained further; nodes that carry weights are named after their weights ("conv1" for
// "conv1.weight"), so a PyTorch export keeps PyTorch's parameter names.
//   Conv (2-D, square kernel, symmetric padding, no dilation), Gemm, MatMul (+ Add of a bias),
//   Relu, LeakyRelu, Sigmoid, Tanh, Gelu and its Erf decomposition, x * Sigmoid(x), MaxPool,
//   AveragePool, GlobalAveragePool, BatchNormalization (inference), Add of two tensors, Mul by a
//   scalar, Flatten, Reshape that merges neighbouring dimensions (a flatten), Softmax and LogSoftmax over dimension 1,
//   Identity, Dropout, Constant, and Pad of zero width (torch.onnx writes one before AveragePool).
// Anything else is refused with a DataError naming the file, the node, its operator and what is
// supported. The whole file is parsed and checked before a model is built (sizes against the bytes
// that hold them, before allocation); a malformed file is refused whole.
#pragma once

#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "headnet/io/onnx_proto.hpp"
#include "headnet/io/safetensors.hpp"
#include "headnet/layers/activations.hpp"
#include "headnet/layers/avgpool2d.hpp"
#include "headnet/layers/batchnorm.hpp"
#include "headnet/layers/conv2d.hpp"
#include "headnet/layers/dropout.hpp"
#include "headnet/layers/flatten.hpp"
#include "headnet/layers/graph.hpp"
#include "headnet/layers/identity.hpp"
#include "headnet/layers/linear.hpp"
#include "headnet/layers/maxpool2d.hpp"
#include "headnet/layers/relu.hpp"
#include "headnet/layers/residual.hpp"
#include "headnet/layers/sequential.hpp"
#include "headnet/layers/softmax.hpp"

namespace headnet {
namespace io {

/// What the file says besides the graph.
struct OnnxInfo {
  Shape input_shape;  ///< with the batch dimension (dynamic in the file) set to 1
  std::string input_name;  ///< the graph input's name
  std::string output_name;  ///< the graph output's name
  std::string producer_name;  ///< the program that wrote the file
  std::string producer_version;  ///< that program's version
  std::int64_t opset = 0;  ///< the default domain's opset version
  std::map<std::string, std::string> metadata;  ///< metadata_props
};

/// How save_onnx() names things and what it adds.
struct OnnxExportOptions {
  std::string input_name = "input";  ///< the graph input's name
  std::string output_name = "output";  ///< the graph output's name
  std::map<std::string, std::string> metadata;  ///< written as metadata_props
};

namespace detail {

constexpr std::int64_t onnx_opset = 17;
constexpr std::int64_t onnx_opset_tanh_gelu = 20;  // Gelu(approximate="tanh") exists from opset 20

inline onnx::AttributeProto attr_int(const std::string& name, std::int64_t v) {
  onnx::AttributeProto a;
  a.name = name;
  a.type = onnx::ATTR_INT;
  a.i = v;
  return a;
}
inline onnx::AttributeProto attr_float(const std::string& name, float v) {
  onnx::AttributeProto a;
  a.name = name;
  a.type = onnx::ATTR_FLOAT;
  a.f = v;
  return a;
}
inline onnx::AttributeProto attr_ints(const std::string& name, std::vector<std::int64_t> v) {
  onnx::AttributeProto a;
  a.name = name;
  a.type = onnx::ATTR_INTS;
  a.ints = std::move(v);
  return a;
}
inline onnx::AttributeProto attr_string(const std::string& name, std::string v) {
  onnx::AttributeProto a;
  a.name = name;
  a.type = onnx::ATTR_STRING;
  a.s = std::move(v);
  return a;
}

// Turns a headnet module tree into ONNX nodes, one layer at a time, following the shapes.
template <typename T>
class OnnxWriter {
 public:
  onnx::GraphProto graph;
  std::int64_t opset = onnx_opset;

  // Emits `layer` (at dotted path `path`) applied to the value named `x` of shape `shape`; returns
  // the name of its output and updates `shape`.
  std::string emit(Layer<T>& layer, const std::string& path, const std::string& x, Shape& shape) {
    if (auto* seq = dynamic_cast<Sequential<T>*>(&layer)) {
      std::string h = x;
      for (std::size_t i = 0; i < seq->size(); ++i) {
        // A ReLU fused into the Conv2d before it is written by that Conv2d (below); a max-pool
        // fused into a Conv2d and an activation fused into a BatchNorm are written as their own nodes.
        if (seq->is_fused(i) && dynamic_cast<ReLU<T>*>(&(*seq)[i]) && dynamic_cast<Conv2d<T>*>(&(*seq)[i - 1])) continue;
        h = emit((*seq)[i], join(path, seq->name(i)), h, shape);
      }
      return h;
    }
    if (auto* res = dynamic_cast<Residual<T>*>(&layer)) {
      Shape body_shape = shape, shortcut_shape = shape;
      const std::string a = emit(res->body(), path, x, body_shape);
      std::string b = x;
      if (Layer<T>* shortcut = res->shortcut()) {
        std::string shortcut_name;
        for (const auto& c : res->children())
          if (c.layer == shortcut) shortcut_name = c.name;
        b = emit(*shortcut, join(path, shortcut_name), x, shortcut_shape);
      }
      shape = body_shape;
      const std::string sum = node("Add", join(path, "add"), {a, b});
      return res->relu() ? node("Relu", join(path, "relu"), {sum}) : sum;
    }
    if (auto* g = dynamic_cast<Graph<T>*>(&layer)) {
      std::vector<std::string> names(g->value_count());
      std::vector<Shape> shapes(g->value_count());
      names[0] = x;
      shapes[0] = shape;
      for (const auto& n : g->nodes()) {
        if (n.layer) {
          shapes[n.out] = shapes[n.a];
          names[n.out] = emit(*n.layer, join(path, n.name), names[n.a], shapes[n.out]);
        } else {
          shapes[n.out] = shapes[n.a];
          names[n.out] = node("Add", join(path, n.name), {names[n.a], names[n.b]});
        }
      }
      shape = shapes[g->output()];
      return names[g->output()];
    }
    const std::string where = path.empty() ? layer.type() : path;
    const Shape out_shape = layer.output_shape(shape);
    std::string y;
    if (auto* conv = dynamic_cast<Conv2d<T>*>(&layer)) {
      std::vector<std::string> inputs{x, initializer(join(path, "weight"), conv->weight())};
      if (conv->has_bias()) inputs.push_back(initializer(join(path, "bias"), conv->bias()));
      const std::int64_t k = conv->kernel_size(), s = conv->stride(), p = conv->padding();
      y = node("Conv", where, inputs,
               {attr_ints("dilations", {1, 1}), attr_int("group", conv->groups()), attr_ints("kernel_shape", {k, k}),
                attr_ints("pads", {p, p, p, p}), attr_ints("strides", {s, s})});
      if (conv->activation() == kernels::ConvActivation::relu) y = node("Relu", join(where, "relu"), {y});
    } else if (auto* linear = dynamic_cast<Linear<T>*>(&layer)) {
      std::vector<std::string> inputs{x, initializer(join(path, "weight"), linear->weight())};
      if (linear->has_bias()) inputs.push_back(initializer(join(path, "bias"), linear->bias()));
      y = node("Gemm", where, inputs, {attr_float("alpha", 1.f), attr_float("beta", 1.f), attr_int("transB", 1)});
    } else if (dynamic_cast<ReLU<T>*>(&layer)) {
      y = node("Relu", where, {x});
    } else if (auto* leaky = dynamic_cast<LeakyReLU<T>*>(&layer)) {
      y = node("LeakyRelu", where, {x}, {attr_float("alpha", static_cast<float>(leaky->negative_slope()))});
    } else if (dynamic_cast<Sigmoid<T>*>(&layer)) {
      y = node("Sigmoid", where, {x});
    } else if (dynamic_cast<Tanh<T>*>(&layer)) {
      y = node("Tanh", where, {x});
    } else if (dynamic_cast<SiLU<T>*>(&layer)) {
      y = node("Mul", join(where, "mul"), {x, node("Sigmoid", join(where, "sigmoid"), {x})});
    } else if (auto* gelu = dynamic_cast<GELU<T>*>(&layer)) {
      if (gelu->approximate() == "tanh") {
        opset = std::max(opset, onnx_opset_tanh_gelu);
        y = node("Gelu", where, {x}, {attr_string("approximate", "tanh")});
      } else {
        // The Erf form, as torch.onnx writes it: ((x * (erf(x / sqrt 2) + 1)) * 0.5.
        const std::string scaled = node("Div", join(where, "div"), {x, scalar(join(where, "sqrt2"), 1.4142135623730951)});
        const std::string erf = node("Erf", join(where, "erf"), {scaled});
        const std::string plus = node("Add", join(where, "add"), {erf, scalar(join(where, "one"), 1.0)});
        const std::string times = node("Mul", join(where, "mul"), {x, plus});
        y = node("Mul", join(where, "half"), {times, scalar(join(where, "half_value"), 0.5)});
      }
    } else if (auto* pool = dynamic_cast<MaxPool2d<T>*>(&layer)) {
      const std::int64_t k = pool->kernel_size(), s = pool->stride(), p = pool->padding();
      y = node("MaxPool", where, {x},
               {attr_int("ceil_mode", pool->ceil_mode()), attr_ints("kernel_shape", {k, k}), attr_ints("pads", {p, p, p, p}),
                attr_ints("strides", {s, s})});
    } else if (auto* avg = dynamic_cast<AvgPool2d<T>*>(&layer)) {
      const std::int64_t k = avg->kernel_size(), s = avg->stride(), p = avg->padding();
      y = node("AveragePool", where, {x},
               {attr_int("ceil_mode", avg->ceil_mode()), attr_int("count_include_pad", avg->count_include_pad()),
                attr_ints("kernel_shape", {k, k}), attr_ints("pads", {p, p, p, p}), attr_ints("strides", {s, s})});
    } else if (auto* adaptive = dynamic_cast<AdaptiveAvgPool2d<T>*>(&layer)) {
      const std::int64_t oh = adaptive->output_height(), ow = adaptive->output_width();
      if (oh == 1 && ow == 1) {
        y = node("GlobalAveragePool", where, {x});
      } else if (shape[2] % oh == 0 && shape[3] % ow == 0) {  // equal windows: an ordinary average pool
        const std::int64_t kh = shape[2] / oh, kw = shape[3] / ow;
        y = node("AveragePool", where, {x}, {attr_ints("kernel_shape", {kh, kw}), attr_ints("strides", {kh, kw})});
      } else {
        throw Error("save_onnx: layer '" + where + "' (" + layer.describe() + ") on a " + std::to_string(shape[2]) + "x" +
                    std::to_string(shape[3]) + " input has unequal windows, which ONNX has no operator for");
      }
    } else if (auto* bn = dynamic_cast<BatchNorm<T>*>(&layer)) {
      if (!bn->track_running_stats()) {
        throw Error("save_onnx: layer '" + where + "' (" + layer.describe() +
                    ") has no running statistics: in eval mode it normalises with each batch's, which ONNX cannot express");
      }
      const int c = bn->num_features();
      Tensor<T> ones({c}, T(1)), zeros({c});
      const std::string scale = initializer(join(path, "weight"), bn->affine() ? bn->weight() : ones);
      const std::string bias = initializer(join(path, "bias"), bn->affine() ? bn->bias() : zeros);
      y = node("BatchNormalization", where,
               {x, scale, bias, initializer(join(path, "running_mean"), bn->running_mean()),
                initializer(join(path, "running_var"), bn->running_var())},
               {attr_float("epsilon", static_cast<float>(bn->eps())), attr_float("momentum", static_cast<float>(1 - bn->momentum()))});
    } else if (auto* flatten = dynamic_cast<Flatten<T>*>(&layer)) {
      const int rank = shape.rank();
      const int start = flatten->start_dim() < 0 ? flatten->start_dim() + rank : flatten->start_dim();
      const int end = flatten->end_dim() < 0 ? flatten->end_dim() + rank : flatten->end_dim();
      if (start == 1 && end == rank - 1) {
        y = node("Flatten", where, {x}, {attr_int("axis", 1)});
      } else {
        // Reshape: 0 copies a dimension (the dynamic batch among them), -1 is the merged one.
        std::vector<std::int64_t> target;
        for (int d = 0; d < rank; ++d) {
          if (d < start) target.push_back(0);
          else if (d == start) target.push_back(-1);
          else if (d > end) target.push_back(shape[d]);
        }
        y = node("Reshape", where, {x, int_initializer(join(path, "shape"), target)});
      }
    } else if (auto* mul = dynamic_cast<Mul<T>*>(&layer)) {
      y = node("Mul", where, {x, scalar(join(path, "scale"), mul->scale())});
    } else if (dynamic_cast<Identity<T>*>(&layer) || dynamic_cast<Dropout<T>*>(&layer)) {
      y = node("Identity", where, {x});
    } else if (dynamic_cast<Softmax<T>*>(&layer)) {
      y = node("Softmax", where, {x}, {attr_int("axis", 1)});
    } else if (dynamic_cast<LogSoftmax<T>*>(&layer)) {
      y = node("LogSoftmax", where, {x}, {attr_int("axis", 1)});
    } else {
      throw Error("save_onnx: layer '" + where + "' (" + layer.type() +
                  ") has no ONNX form; supported: Sequential, Residual, Graph, Conv2d, Linear, ReLU, LeakyReLU, "
                  "Sigmoid, Tanh, SiLU, GELU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm1d/2d, Flatten, "
                  "Mul, Identity, Dropout, Softmax, LogSoftmax");
    }
    shape = out_shape;
    return y;
  }

 private:
  static std::string join(const std::string& path, const std::string& name) {
    return path.empty() ? name : name.empty() ? path : path + "." + name;
  }

  std::string unique(const std::string& name) {
    std::string n = name;
    for (int i = 1; !used_.insert(n).second; ++i) n = name + "_" + std::to_string(i);
    return n;
  }

  // Adds a node named `name` whose output value is also called `name`; returns that value.
  std::string node(const std::string& op, const std::string& name, std::vector<std::string> inputs,
                   std::vector<onnx::AttributeProto> attributes = {}) {
    onnx::NodeProto n;
    n.op_type = op;
    n.name = unique(name.empty() ? op : name);
    n.inputs = std::move(inputs);
    n.outputs = {n.name};
    n.attributes = std::move(attributes);
    graph.nodes.push_back(std::move(n));
    return graph.nodes.back().name;
  }

  std::string initializer(const std::string& name, const Tensor<T>& value) {
    onnx::TensorProto t;
    t.name = unique(name);
    t.data_type = onnx::FLOAT;
    for (int d = 0; d < value.shape().rank(); ++d) t.dims.push_back(value.shape()[d]);
    t.floats.assign(value.begin(), value.end());
    graph.initializers.push_back(std::move(t));
    return graph.initializers.back().name;
  }
  std::string scalar(const std::string& name, double v) {
    onnx::TensorProto t;
    t.name = unique(name);
    t.data_type = onnx::FLOAT;
    t.floats = {v};
    graph.initializers.push_back(std::move(t));
    return graph.initializers.back().name;
  }
  std::string int_initializer(const std::string& name, const std::vector<std::int64_t>& values) {
    onnx::TensorProto t;
    t.name = unique(name);
    t.data_type = onnx::INT64;
    t.dims = {std::int64_t(values.size())};
    t.ints = values;
    graph.initializers.push_back(std::move(t));
    return graph.initializers.back().name;
  }

  std::set<std::string> used_;
};

}  // namespace detail

/// Writes `model` as an ONNX model for inputs of `input_shape` (its first dimension, the batch, is
/// dynamic in the file). Atomic, as save_safetensors. Throws Error for a layer with no ONNX form.
template <typename T>
void save_onnx(const std::string& path, Layer<T>& model, const Shape& input_shape, const OnnxExportOptions& options = {}) {
  const Shape output_shape = model.output_shape(input_shape);  // a ShapeError names the layer
  detail::OnnxWriter<T> writer;
  Shape shape = input_shape;
  const std::string out = writer.emit(model, "", options.input_name, shape);

  onnx::ModelProto m;
  m.ir_version = 8;
  m.producer_name = "headnet";
  m.producer_version = "0.1.0";
  m.opset_import = {{"", writer.opset}};
  m.graph = std::move(writer.graph);
  m.graph.name = model.type();
  // The model's output is the last node's value; rename it to the requested output name.
  if (out == options.input_name) {
    onnx::NodeProto n;
    n.op_type = "Identity";
    n.name = options.output_name;
    n.inputs = {out};
    n.outputs = {options.output_name};
    m.graph.nodes.push_back(n);
  } else {
    for (auto& n : m.graph.nodes)
      for (auto& o : n.outputs)
        if (o == out) o = options.output_name;
    for (auto& n : m.graph.nodes)
      for (auto& i : n.inputs)
        if (i == out) i = options.output_name;
  }
  auto value_info = [](const std::string& name, const Shape& s) {
    onnx::ValueInfoProto v;
    v.name = name;
    v.elem_type = onnx::FLOAT;
    for (int d = 0; d < s.rank(); ++d) {
      v.dims.push_back(s[d]);
      v.dim_params.push_back(d == 0 ? "N" : "");
    }
    return v;
  };
  m.graph.inputs = {value_info(options.input_name, input_shape)};
  m.graph.outputs = {value_info(options.output_name, output_shape)};
  for (const auto& kv : options.metadata) m.metadata.push_back(kv);
  write_file_atomically(path, onnx::encode_model(m));
}

namespace detail {

// Builds a Graph from a parsed ONNX model, node by node; every refusal names the node.
template <typename T>
class OnnxReader {
 public:
  OnnxReader(const onnx::ModelProto& model, std::string what) : m_(model), what_(std::move(what)) {}

  Graph<T> build(OnnxInfo& info) {
    if (!m_.has_graph) fail("the file has no graph");
    const onnx::GraphProto& g = m_.graph;
    info.producer_name = m_.producer_name;
    info.producer_version = m_.producer_version;
    for (const auto& kv : m_.metadata) info.metadata[kv.first] = kv.second;
    for (const auto& o : m_.opset_import) {
      if (o.domain.empty() || o.domain == "ai.onnx") info.opset = o.version;
    }
    if (info.opset < 7) fail("opset " + std::to_string(info.opset) + " of the default domain: headnet reads opset 7 and later");
    opset_ = info.opset;
    if (g.has_sparse_initializers) fail("sparse initializers are not supported");

    for (const auto& t : g.initializers) add_constant(t, "initializer");
    for (const auto& n : g.nodes)
      for (std::size_t i = 0; i < n.inputs.size(); ++i) consumers_[n.inputs[i]].push_back(&n);
    for (const auto& o : g.outputs) consumers_[o.name].push_back(nullptr);  // a graph output is a use too

    const onnx::ValueInfoProto* input = nullptr;
    for (const auto& v : g.inputs) {
      if (constants_.count(v.name)) continue;  // older exporters list initialisers among the inputs
      if (input) fail("the graph has several inputs ('" + input->name + "', '" + v.name + "'): headnet models take one");
      input = &v;
    }
    if (!input) fail("the graph has no input");
    if (input->elem_type != onnx::FLOAT) {
      fail("input '" + input->name + "' has element type " + onnx::data_type_name(input->elem_type) + ", headnet reads FLOAT");
    }
    if (!input->has_shape || input->dims.size() < 2 || input->dims.size() > 4) {
      fail("input '" + input->name + "' needs a known shape of rank 2 to 4");
    }
    std::vector<std::int64_t> dims = input->dims;
    for (std::size_t d = 1; d < dims.size(); ++d)
      if (dims[d] < 1) fail("input '" + input->name + "': dimension " + std::to_string(d) + " is not a fixed size");
    dims[0] = 1;
    info.input_shape = Shape();
    for (auto d : dims) info.input_shape = append(info.input_shape, d);
    info.input_name = input->name;
    values_[input->name] = {graph_.input(), info.input_shape};

    // Constants first: they read nothing, and patterns (GELU's Erf form) look at constants that
    // exporters place after the nodes that use them.
    for (const auto& n : g.nodes) {
      if (n.op_type != "Constant") continue;
      node_ = &n;
      if (n.outputs.empty()) fail_node("has no output");
      translate(n);
      done_.insert(&n);
    }
    for (const auto& n : g.nodes) {
      if (done_.count(&n)) continue;
      node_ = &n;
      if (!n.domain.empty() && n.domain != "ai.onnx") fail_node("operators of domain '" + n.domain + "' are not supported");
      if (n.outputs.empty()) fail_node("has no output");
      translate(n);
    }
    if (g.outputs.size() != 1) fail("the graph has " + std::to_string(g.outputs.size()) + " outputs: headnet models have one");
    node_ = nullptr;
    info.output_name = g.outputs[0].name;
    graph_.set_output(value(g.outputs[0].name).id);
    return std::move(graph_);
  }

 private:
  struct Value {
    int id;
    Shape shape;
  };

  [[noreturn]] void fail(const std::string& message) const { throw DataError(what_ + ": " + message); }
  static std::string dims_str(const std::vector<std::int64_t>& dims) {
    std::string s;
    for (auto d : dims) s += (s.empty() ? "" : ", ") + std::to_string(d);
    return "(" + s + ")";
  }
  static Shape append(const Shape& s, std::int64_t d) {
    switch (s.rank()) {
      case 0: return Shape{d};
      case 1: return Shape{s[0], d};
      case 2: return Shape{s[0], s[1], d};
      default: return Shape{s[0], s[1], s[2], d};
    }
  }
  [[noreturn]] void fail_node(const std::string& message) const {
    fail("node '" + node_->name + "' (" + node_->op_type + "): " + message);
  }
  static const char* supported() {
    return "supported: Conv, Gemm, MatMul, Relu, LeakyRelu, Sigmoid, Tanh, Gelu (and its Erf form), MaxPool, "
           "AveragePool, GlobalAveragePool, BatchNormalization, Add, Mul, Flatten, Reshape, Softmax, LogSoftmax, "
           "Identity, Dropout, Constant, Pad (zero width)";
  }

  void add_constant(const onnx::TensorProto& t, const char* kind) {
    if (t.external) fail(std::string(kind) + " '" + t.name + "' keeps its data in an external file, which headnet does not read");
    if (!t.is_float() && !t.is_int()) {
      fail(std::string(kind) + " '" + t.name + "' has element type " + onnx::data_type_name(t.data_type) +
           " (headnet reads FLOAT, DOUBLE, INT32 and INT64)");
    }
    constants_[t.name] = t;
  }

  const Value& value(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) {
      if (constants_.count(name)) fail_node("input '" + name + "' is a constant where headnet needs a computed tensor");
      if (node_) fail_node("input '" + name + "' is not computed by an earlier node");
      fail("output '" + name + "' is not computed by any node");
    }
    return it->second;
  }
  bool is_constant(const std::string& name) const { return constants_.count(name) != 0; }
  const onnx::TensorProto& constant(const std::string& name, const char* role) const {
    auto it = constants_.find(name);
    if (it == constants_.end()) fail_node(std::string(role) + " '" + name + "' must be an initializer or a Constant");
    return it->second;
  }
  // A one-element floating constant, or nullptr.
  const onnx::TensorProto* scalar(const std::string& name) const {
    auto it = constants_.find(name);
    if (it == constants_.end() || !it->second.is_float() || it->second.numel() != 1) return nullptr;
    return &it->second;
  }

  // The nodes that read `name` (nullptr for the graph's output).
  const std::vector<const onnx::NodeProto*>& consumers(const std::string& name) {
    return consumers_[name];
  }
  // The only node reading `name`, if it is an `op` node, else nullptr.
  const onnx::NodeProto* only_consumer(const std::string& name, const char* op) {
    const auto& c = consumers(name);
    if (c.size() != 1 || c[0] == nullptr || c[0]->op_type != op || done_.count(c[0])) return nullptr;
    return c[0];
  }

  std::int64_t int_attr(const char* name, std::int64_t fallback) const {
    const auto* a = node_->attribute(name);
    if (!a) return fallback;
    if (a->type != onnx::ATTR_INT) fail_node(std::string("attribute '") + name + "' must be an integer");
    return a->i;
  }
  double float_attr(const char* name, double fallback) const {
    const auto* a = node_->attribute(name);
    if (!a) return fallback;
    if (a->type != onnx::ATTR_FLOAT) fail_node(std::string("attribute '") + name + "' must be a float");
    return a->f;
  }
  std::string string_attr(const char* name, const std::string& fallback) const {
    const auto* a = node_->attribute(name);
    if (!a) return fallback;
    if (a->type != onnx::ATTR_STRING) fail_node(std::string("attribute '") + name + "' must be a string");
    return a->s;
  }
  std::vector<std::int64_t> ints_attr(const char* name, std::vector<std::int64_t> fallback) const {
    const auto* a = node_->attribute(name);
    if (!a) return fallback;
    if (a->type != onnx::ATTR_INTS) fail_node(std::string("attribute '") + name + "' must be a list of integers");
    return a->ints;
  }
  // Refuses attributes that this operator does not take or that headnet does not support.
  void only_attributes(std::initializer_list<const char*> known) const {
    for (const auto& a : node_->attributes) {
      bool ok = false;
      for (const char* k : known) ok = ok || a.name == k;
      if (!ok || a.has_graph) fail_node("attribute '" + a.name + "' is not supported");
    }
  }
  void inputs_between(std::size_t lo, std::size_t hi) const {
    if (node_->inputs.size() < lo || node_->inputs.size() > hi) {
      fail_node("has " + std::to_string(node_->inputs.size()) + " inputs, expected " +
                (lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi)));
    }
  }
  // Extra outputs (MaxPool's indices, Dropout's mask) are refused when anything reads them.
  void single_output() const {
    for (std::size_t i = 1; i < node_->outputs.size(); ++i) {
      const auto& name = node_->outputs[i];
      auto it = consumers_.find(name);
      if (!name.empty() && it != consumers_.end() && !it->second.empty()) {
        fail_node("output " + std::to_string(i) + " ('" + name + "') is used, headnet computes only the first");
      }
    }
  }

  // The node's name as a dotted path: torch.onnx's "/layer1/conv1/Conv" becomes "layer1.conv1" (the
  // last segment, the operator, is dropped when a path remains).
  std::string node_path() const {
    std::string path;
    for (char c : node_->name) path.push_back(c == '/' ? '.' : c);
    while (!path.empty() && path.front() == '.') path.erase(path.begin());
    const std::size_t dot = path.find_last_of('.');
    if (dot != std::string::npos && path.compare(dot + 1, node_->op_type.size(), node_->op_type) == 0) path.erase(dot);
    return path;
  }

  // A name for a node's layer: its weight's prefix ("conv1" for "conv1.weight") when it has one,
  // else node_path(), else operator and index.
  std::string layer_name(const std::string& weight_name) {
    std::string base;
    const std::string suffix = ".weight";
    if (weight_name.size() > suffix.size() && weight_name.compare(weight_name.size() - suffix.size(), suffix.size(), suffix) == 0)
      base = weight_name.substr(0, weight_name.size() - suffix.size());
    if (base.empty()) base = node_path();
    if (base.empty()) base = node_->op_type + "_" + std::to_string(names_.size());
    std::string name = base;
    for (int i = 1; !names_.insert(name).second; ++i) name = base + "_" + std::to_string(i);
    return name;
  }

  // Adds `layer` reading value `x`; its output is called `output`.
  void add(std::unique_ptr<Layer<T>> layer, const Value& x, const std::string& output, const std::string& weight_name = "") {
    Shape shape;
    try {
      shape = layer->output_shape(x.shape);
    } catch (const ShapeError& e) {
      fail_node(std::string("cannot take its input: ") + e.what());
    }
    const int id = graph_.add(layer_name(weight_name), std::move(layer), x.id);
    values_[output] = {id, shape};
  }

  static void copy_values(const onnx::TensorProto& from, Tensor<T>& to) {
    for (std::int64_t i = 0; i < to.numel(); ++i) to.data()[i] = static_cast<T>(from.floats[static_cast<std::size_t>(i)]);
  }
  const onnx::TensorProto& float_constant(const std::string& name, const char* role, std::vector<std::int64_t> dims) const {
    const auto& t = constant(name, role);
    if (!t.is_float()) fail_node(std::string(role) + " '" + name + "' must be FLOAT or DOUBLE");
    std::int64_t n = 1;
    for (auto d : dims) n *= d;
    if (t.numel() != n) {
      std::string s;
      for (auto d : dims) s += (s.empty() ? "" : ", ") + std::to_string(d);
      fail_node(std::string(role) + " '" + name + "' has " + std::to_string(t.numel()) + " values, expected (" + s + ")");
    }
    return t;
  }

  // Square kernel, equal strides, symmetric padding and no dilation: what headnet's pooling and
  // convolution layers take.
  struct Window {
    std::int64_t kernel, stride, padding;
  };
  Window window(std::int64_t kernel_from_weight, const Shape& x) const {
    auto kernel = ints_attr("kernel_shape", {});
    if (kernel.empty() && kernel_from_weight > 0) kernel = {kernel_from_weight, kernel_from_weight};
    if (kernel.size() != 2 || kernel[0] != kernel[1] || kernel[0] < 1) fail_node("needs a square 2-D kernel_shape");
    if (kernel_from_weight > 0 && kernel[0] != kernel_from_weight) fail_node("kernel_shape differs from the weight's");
    const auto strides = ints_attr("strides", {1, 1});
    if (strides.size() != 2 || strides[0] != strides[1] || strides[0] < 1) fail_node("needs equal strides in both dimensions");
    for (auto d : ints_attr("dilations", {1, 1}))
      if (d != 1) fail_node("dilated windows are not supported");
    const std::string auto_pad = string_attr("auto_pad", "NOTSET");
    std::int64_t padding = 0;
    if (auto_pad == "NOTSET") {
      const auto pads = ints_attr("pads", {0, 0, 0, 0});
      if (pads.size() != 4 || pads[0] != pads[1] || pads[0] != pads[2] || pads[0] != pads[3] || pads[0] < 0) {
        fail_node("needs the same padding on all four sides");
      }
      padding = pads[0];
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      if (kernel[0] % 2 == 0 || strides[0] != 1) fail_node("auto_pad " + auto_pad + " is supported for odd kernels at stride 1");
      padding = (kernel[0] - 1) / 2;
    } else if (auto_pad != "VALID") {
      fail_node("auto_pad '" + auto_pad + "' is not supported");
    }
    if (x.rank() != 4) fail_node("expects an input (N, C, H, W), got " + x.str());
    return {kernel[0], strides[0], padding};
  }

  void translate(const onnx::NodeProto& n) {
    const std::string& op = n.op_type;
    const std::string& out = n.outputs[0];
    if (op == "Constant") {
      only_attributes({"value", "value_float", "value_floats", "value_int", "value_ints"});
      if (n.attributes.size() != 1) fail_node("needs exactly one value attribute");
      const auto& a = n.attributes[0];
      onnx::TensorProto t;
      if (a.name == "value") {
        if (a.type != onnx::ATTR_TENSOR) fail_node("attribute 'value' must be a tensor");
        t = a.t;
      } else if (a.name == "value_float") {
        t.data_type = onnx::FLOAT;
        t.floats = {a.f};
      } else if (a.name == "value_floats") {
        t.data_type = onnx::FLOAT;
        t.dims = {std::int64_t(a.floats.size())};
        t.floats.assign(a.floats.begin(), a.floats.end());
      } else if (a.name == "value_int") {
        t.data_type = onnx::INT64;
        t.ints = {a.i};
      } else {
        t.data_type = onnx::INT64;
        t.dims = {std::int64_t(a.ints.size())};
        t.ints = a.ints;
      }
      t.name = out;
      add_constant(t, "constant");
      return;
    }
    if (op == "Conv") return conv(n);
    if (op == "Gemm") return gemm(n);
    if (op == "MatMul") return matmul(n);
    if (op == "BatchNormalization") return batchnorm(n);
    if (op == "Div") return gelu_erf(n);
    if (op == "Sigmoid" && silu(n)) return;
    if (op == "Relu" || op == "Sigmoid" || op == "Tanh" || op == "Identity" || op == "Erf") {
      only_attributes({});
      inputs_between(1, 1);
      const Value& x = value(n.inputs[0]);
      if (op == "Relu") return add(std::make_unique<ReLU<T>>(), x, out);
      if (op == "Sigmoid") return add(std::make_unique<Sigmoid<T>>(), x, out);
      if (op == "Tanh") return add(std::make_unique<Tanh<T>>(), x, out);
      if (op == "Identity") return add(std::make_unique<Identity<T>>(), x, out);
      fail_node("Erf is supported only as part of GELU (x * (erf(x / sqrt 2) + 1) * 0.5)");
    }
    if (op == "LeakyRelu") {
      only_attributes({"alpha"});
      inputs_between(1, 1);
      return add(std::make_unique<LeakyReLU<T>>(float_attr("alpha", 0.01)), value(n.inputs[0]), out);
    }
    if (op == "Gelu") {
      only_attributes({"approximate"});
      inputs_between(1, 1);
      const std::string approximate = string_attr("approximate", "none");
      if (approximate != "none" && approximate != "tanh") fail_node("approximate '" + approximate + "' is not supported");
      return add(std::make_unique<GELU<T>>(approximate), value(n.inputs[0]), out);
    }
    if (op == "Dropout") {
      only_attributes({"ratio", "seed"});
      inputs_between(1, 3);
      single_output();
      double ratio = float_attr("ratio", 0.5);
      if (n.inputs.size() >= 2 && !n.inputs[1].empty()) ratio = float_constant(n.inputs[1], "ratio", {}).floats[0];
      if (n.inputs.size() == 3 && !n.inputs[2].empty()) {
        const auto& mode = constant(n.inputs[2], "training_mode");
        if ((mode.is_int() && mode.ints.size() == 1 && mode.ints[0]) || (mode.is_float() && mode.floats.size() == 1 && mode.floats[0]))
          fail_node("training_mode is true: headnet reads models for inference");
      }
      if (!(ratio >= 0 && ratio < 1)) fail_node("ratio must be in [0, 1)");
      return add(std::make_unique<Dropout<T>>(ratio), value(n.inputs[0]), out);
    }
    if (op == "MaxPool" || op == "AveragePool") {
      if (op == "MaxPool") {
        only_attributes({"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"});
        if (int_attr("storage_order", 0) != 0) fail_node("storage_order 1 is not supported");
      } else {
        only_attributes({"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"});
      }
      inputs_between(1, 1);
      single_output();
      const Value& x = value(n.inputs[0]);
      const Window w = window(0, x.shape);
      const bool ceil_mode = int_attr("ceil_mode", 0) != 0;
      try {
        if (op == "MaxPool") return add(std::make_unique<MaxPool2d<T>>(int(w.kernel), int(w.stride), int(w.padding), ceil_mode), x, out);
        return add(std::make_unique<AvgPool2d<T>>(int(w.kernel), int(w.stride), int(w.padding), ceil_mode,
                                                  int_attr("count_include_pad", 0) != 0),
                   x, out);
      } catch (const ShapeError& e) {
        fail_node(e.what());
      }
    }
    if (op == "GlobalAveragePool") {
      only_attributes({});
      inputs_between(1, 1);
      return add(std::make_unique<AdaptiveAvgPool2d<T>>(1), value(n.inputs[0]), out);
    }
    if (op == "Flatten") {
      only_attributes({"axis"});
      inputs_between(1, 1);
      const Value& x = value(n.inputs[0]);
      const std::int64_t axis = int_attr("axis", 1);
      if (axis != 1 && axis != 1 - x.shape.rank()) fail_node("axis " + std::to_string(axis) + " is not supported (only 1)");
      return add(std::make_unique<Flatten<T>>(1, -1), x, out);
    }
    if (op == "Reshape") {
      only_attributes({"allowzero"});
      inputs_between(2, 2);
      if (int_attr("allowzero", 0) != 0) fail_node("allowzero is not supported");
      const Value& x = value(n.inputs[0]);
      const auto& target = constant(n.inputs[1], "shape");
      if (!target.is_int()) fail_node("shape must be integers");
      const auto flatten = reshape_as_flatten(x.shape, target.ints);
      if (flatten.first < 1) fail_node("only a reshape that merges neighbouring dimensions after the batch (a flatten) is supported");
      return add(std::make_unique<Flatten<T>>(flatten.first, flatten.second), x, out);
    }
    if (op == "Softmax" || op == "LogSoftmax") {
      only_attributes({"axis"});
      inputs_between(1, 1);
      const Value& x = value(n.inputs[0]);
      std::int64_t axis = int_attr("axis", opset_ >= 13 ? -1 : 1);
      if (axis < 0) axis += x.shape.rank();
      if (axis != 1 || (opset_ < 13 && x.shape.rank() != 2)) fail_node("only axis 1 is supported");
      if (op == "Softmax") return add(std::make_unique<Softmax<T>>(), x, out);
      return add(std::make_unique<LogSoftmax<T>>(), x, out);
    }
    if (op == "Pad") {
      // torch.onnx writes AvgPool2d as a Pad (of zero width when there is no padding) and an
      // AveragePool: a zero-width Pad is a no-op, and its output is its input.
      only_attributes({"mode", "pads", "value"});
      inputs_between(1, 4);
      std::vector<std::int64_t> pads = ints_attr("pads", {});
      if (n.inputs.size() >= 2 && !n.inputs[1].empty()) {
        const auto& t = constant(n.inputs[1], "pads");
        if (!t.is_int()) fail_node("pads must be integers");
        pads = t.ints;
      }
      for (auto p : pads)
        if (p != 0) fail_node("only a Pad of zero width (a no-op) is supported; give the padding to Conv, MaxPool or AveragePool");
      values_[out] = value(n.inputs[0]);
      return;
    }
    if (op == "Add") {
      only_attributes({});
      inputs_between(2, 2);
      if (is_constant(n.inputs[0]) || is_constant(n.inputs[1])) {
        fail_node("adding a constant is supported only as a MatMul's bias or inside GELU's Erf form");
      }
      const Value& a = value(n.inputs[0]);
      const Value& b = value(n.inputs[1]);
      if (a.shape != b.shape) fail_node("the inputs' shapes " + a.shape.str() + " and " + b.shape.str() + " differ (no broadcasting)");
      values_[out] = {graph_.add_sum(layer_name(""), a.id, b.id), a.shape};
      return;
    }
    if (op == "Mul") {
      only_attributes({});
      inputs_between(2, 2);
      const int c = scalar(n.inputs[1]) ? 1 : scalar(n.inputs[0]) ? 0 : -1;
      if (c < 0) fail_node("only multiplication by a scalar constant is supported (besides GELU's and SiLU's forms)");
      return add(std::make_unique<Mul<T>>(scalar(n.inputs[c])->floats[0]), value(n.inputs[1 - c]), out);
    }
    fail_node(std::string("operator not supported; ") + supported());
  }

  // The Flatten(start, end) that a Reshape of `in` to `target` is (0 copies a dimension, -1 is
  // inferred), or {0, 0} when it is none. The batch (dimension 0) must stay: target[0] is 0, or -1
  // with every other dimension given.
  static std::pair<int, int> reshape_as_flatten(const Shape& in, const std::vector<std::int64_t>& target) {
    const int r = in.rank(), k = int(target.size());
    if (k < 1 || k > r || (target[0] != 0 && target[0] != -1)) return {0, 0};
    std::int64_t features = 1, known = 1;
    int inferred = -1;
    std::vector<std::int64_t> out(std::size_t(k), 0);
    for (int d = 1; d < r; ++d) features *= in[d];
    for (int d = 1; d < k; ++d) {
      const std::int64_t t = target[std::size_t(d)];
      if (t == -1) {
        if (inferred >= 0 || target[0] == -1) return {0, 0};
        inferred = d;
        continue;
      }
      if (t < 0 || (t == 0 && d >= r)) return {0, 0};
      out[std::size_t(d)] = t == 0 ? in[d] : t;
      known *= out[std::size_t(d)];
    }
    if (inferred >= 0) {
      if (known == 0 || features % known) return {0, 0};
      out[std::size_t(inferred)] = features / known;
    } else if (known != features) {
      return {0, 0};
    }
    for (int start = 1; start < k; ++start) {
      const int end = start + (r - k);
      bool same = true;
      std::int64_t merged = 1;
      for (int d = start; d <= end; ++d) merged *= in[d];
      for (int d = 1; d < start; ++d) same = same && out[std::size_t(d)] == in[d];
      same = same && out[std::size_t(start)] == merged;
      for (int d = start + 1; d < k; ++d) same = same && out[std::size_t(d)] == in[d + (r - k)];
      if (same) return {start, end};
    }
    return {0, 0};
  }

  void conv(const onnx::NodeProto& n) {
    only_attributes({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
    inputs_between(2, 3);
    const Value& x = value(n.inputs[0]);
    const auto& w = constant(n.inputs[1], "weight");
    if (!w.is_float() || w.dims.size() != 4) fail_node("weight '" + n.inputs[1] + "' must be a 4-D float tensor");
    if (w.dims[2] != w.dims[3]) fail_node("only square kernels are supported");
    const Window win = window(w.dims[2], x.shape);
    const std::int64_t groups = int_attr("group", 1), out_channels = w.dims[0];
    if (groups < 1 || x.shape[1] != w.dims[1] * groups) {
      fail_node("weight " + dims_str(w.dims) + " with group " + std::to_string(groups) + " does not fit input " + x.shape.str());
    }
    const bool bias = n.inputs.size() == 3 && !n.inputs[2].empty();
    std::unique_ptr<Conv2d<T>> layer;
    try {
      layer = std::make_unique<Conv2d<T>>(Conv2dOptions(int(x.shape[1]), int(out_channels), int(win.kernel))
                                              .stride(int(win.stride))
                                              .padding(int(win.padding))
                                              .groups(int(groups))
                                              .bias(bias));
    } catch (const ShapeError& e) {
      fail_node(e.what());
    }
    copy_values(w, layer->weight());
    if (bias) copy_values(float_constant(n.inputs[2], "bias", {out_channels}), layer->bias());
    add(std::move(layer), x, n.outputs[0], n.inputs[1]);
  }

  void gemm(const onnx::NodeProto& n) {
    only_attributes({"alpha", "beta", "transA", "transB"});
    inputs_between(2, 3);
    const Value& x = value(n.inputs[0]);
    if (x.shape.rank() != 2) fail_node("expects a 2-D input, got " + x.shape.str());
    if (float_attr("alpha", 1) != 1 || int_attr("transA", 0) != 0) fail_node("only alpha 1 and transA 0 are supported");
    const auto& b = constant(n.inputs[1], "weight");
    if (!b.is_float() || b.dims.size() != 2) fail_node("weight '" + n.inputs[1] + "' must be a 2-D float tensor");
    const bool trans_b = int_attr("transB", 0) != 0;
    const std::int64_t in = trans_b ? b.dims[1] : b.dims[0], out = trans_b ? b.dims[0] : b.dims[1];
    if (in != x.shape[1]) fail_node("weight " + dims_str(b.dims) + " does not fit input " + x.shape.str());
    const bool bias = n.inputs.size() == 3 && !n.inputs[2].empty();
    if (bias && float_attr("beta", 1) != 1) fail_node("only beta 1 is supported");
    linear(x, b, trans_b, in, out, bias ? &float_constant(n.inputs[2], "bias", {out}) : nullptr, n.outputs[0], n.inputs[1]);
  }

  // MatMul by a constant (K, N) matrix, and an Add of a constant (N) vector right after it: Linear.
  void matmul(const onnx::NodeProto& n) {
    only_attributes({});
    inputs_between(2, 2);
    const Value& x = value(n.inputs[0]);
    if (x.shape.rank() != 2) fail_node("expects a 2-D input, got " + x.shape.str());
    const auto& b = constant(n.inputs[1], "weight");
    if (!b.is_float() || b.dims.size() != 2 || b.dims[0] != x.shape[1]) {
      fail_node("weight '" + n.inputs[1] + "' must be a float matrix with " + std::to_string(x.shape[1]) + " rows");
    }
    const onnx::TensorProto* bias = nullptr;
    std::string output = n.outputs[0];
    if (const auto* add_node = only_consumer(output, "Add")) {
      const std::string& other = add_node->inputs.size() == 2 ? add_node->inputs[add_node->inputs[0] == output ? 1 : 0] : "";
      auto it = constants_.find(other);
      if (it != constants_.end() && it->second.is_float() && it->second.numel() == b.dims[1] && add_node->attributes.empty()) {
        bias = &it->second;
        done_.insert(add_node);
        output = add_node->outputs[0];
      }
    }
    linear(x, b, false, b.dims[0], b.dims[1], bias, output, n.inputs[1]);
  }

  void linear(const Value& x, const onnx::TensorProto& w, bool transposed, std::int64_t in, std::int64_t out,
              const onnx::TensorProto* bias, const std::string& output, const std::string& weight_name) {
    auto layer = std::make_unique<Linear<T>>(int(in), int(out), bias != nullptr);
    T* dst = layer->weight().data();  // (out, in)
    for (std::int64_t o = 0; o < out; ++o)
      for (std::int64_t i = 0; i < in; ++i)
        dst[o * in + i] = static_cast<T>(w.floats[static_cast<std::size_t>(transposed ? o * in + i : i * out + o)]);
    if (bias) copy_values(*bias, layer->bias());
    add(std::move(layer), x, output, weight_name);
  }

  void batchnorm(const onnx::NodeProto& n) {
    only_attributes({"epsilon", "momentum", "training_mode", "spatial", "is_test", "consumed_inputs"});
    inputs_between(5, 5);
    single_output();
    if (int_attr("training_mode", 0) != 0) fail_node("training_mode 1 is not supported: headnet reads inference graphs");
    if (int_attr("spatial", 1) != 1) fail_node("spatial 0 is not supported");
    const Value& x = value(n.inputs[0]);
    if (x.shape.rank() < 2 || x.shape.rank() > 4) fail_node("expects an input of rank 2 to 4, got " + x.shape.str());
    const std::int64_t c = x.shape[1];
    const auto& scale = float_constant(n.inputs[1], "scale", {c});
    const auto& bias = float_constant(n.inputs[2], "B", {c});
    const auto& mean = float_constant(n.inputs[3], "mean", {c});
    const auto& var = float_constant(n.inputs[4], "var", {c});
    const double eps = float_attr("epsilon", 1e-5), momentum = 1 - float_attr("momentum", 0.9);
    if (!(eps > 0) || !(momentum >= 0 && momentum <= 1)) fail_node("epsilon must be > 0 and momentum in [0, 1]");
    std::unique_ptr<BatchNorm<T>> layer;
    if (x.shape.rank() == 4) {
      layer = std::make_unique<BatchNorm2d<T>>(int(c), eps, momentum);
    } else {
      layer = std::make_unique<BatchNorm1d<T>>(int(c), eps, momentum);
    }
    copy_values(scale, layer->weight());
    copy_values(bias, layer->bias());
    copy_values(mean, layer->running_mean());
    copy_values(var, layer->running_var());
    layer->eval();
    add(std::move(layer), x, n.outputs[0], n.inputs[1]);
  }

  // GELU's Erf form, as torch.onnx writes it: Div(x, sqrt 2) -> Erf -> Add 1 -> Mul by x -> Mul 0.5.
  void gelu_erf(const onnx::NodeProto& div) {
    const char* form = "Div is supported only as the start of GELU's Erf form, x * (erf(x / sqrt 2) + 1) * 0.5";
    if (div.inputs.size() != 2 || !div.attributes.empty()) fail_node(form);
    const std::string& x = div.inputs[0];
    const auto* sqrt2 = scalar(div.inputs[1]);
    if (!sqrt2 || std::fabs(sqrt2->floats[0] - 1.4142135623730951) > 1e-6) fail_node(form);
    const auto* erf = only_consumer(div.outputs[0], "Erf");
    const auto* plus = erf ? only_consumer(erf->outputs[0], "Add") : nullptr;
    if (!plus || plus->inputs.size() != 2) fail_node(form);
    const std::string& erf_out = erf->outputs[0];
    const auto* one = scalar(plus->inputs[plus->inputs[0] == erf_out ? 1 : 0]);
    if (!one || one->floats[0] != 1) fail_node(form);
    const auto* times = only_consumer(plus->outputs[0], "Mul");
    if (!times || times->inputs.size() != 2) fail_node(form);
    const std::string& other = times->inputs[times->inputs[0] == plus->outputs[0] ? 1 : 0];
    if (other != x) fail_node(form);
    const auto* half = only_consumer(times->outputs[0], "Mul");
    if (!half || half->inputs.size() != 2) fail_node(form);
    const auto* half_value = scalar(half->inputs[half->inputs[0] == times->outputs[0] ? 1 : 0]);
    if (!half_value || half_value->floats[0] != 0.5) fail_node(form);
    for (const auto* part : {erf, plus, times, half}) done_.insert(part);
    add(std::make_unique<GELU<T>>(), value(x), half->outputs[0]);
  }

  // x * Sigmoid(x): SiLU. False when the Sigmoid is not part of that form.
  bool silu(const onnx::NodeProto& sigmoid) {
    if (sigmoid.inputs.size() != 1) return false;
    const auto* mul = only_consumer(sigmoid.outputs[0], "Mul");
    if (!mul || mul->inputs.size() != 2) return false;
    const std::string& other = mul->inputs[mul->inputs[0] == sigmoid.outputs[0] ? 1 : 0];
    if (other != sigmoid.inputs[0]) return false;
    done_.insert(mul);
    add(std::make_unique<SiLU<T>>(), value(sigmoid.inputs[0]), mul->outputs[0]);
    return true;
  }

  const onnx::ModelProto& m_;
  std::string what_;
  std::int64_t opset_ = 0;
  Graph<T> graph_;
  std::map<std::string, onnx::TensorProto> constants_;
  std::map<std::string, Value> values_;
  std::map<std::string, std::vector<const onnx::NodeProto*>> consumers_;
  std::set<const onnx::NodeProto*> done_;
  std::set<std::string> names_;
  const onnx::NodeProto* node_ = nullptr;
};

}  // namespace detail

/// Builds a headnet Graph from ONNX bytes; `what` names them in errors (the file's path).
template <typename T>
Graph<T> parse_onnx(const unsigned char* data, std::size_t size, const std::string& what, OnnxInfo* info = nullptr) {
  const onnx::ModelProto model = onnx::decode_model(data, size, what);
  OnnxInfo local;
  Graph<T> graph = detail::OnnxReader<T>(model, what).build(info ? *info : local);
  graph.eval();
  return graph;
}

/// Reads an ONNX file into a Graph in eval mode (call train() to train it further).
template <typename T>
Graph<T> load_onnx(const std::string& path, OnnxInfo* info = nullptr) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open the file");
  const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw DataError(path + ": read error");
  if (bytes.empty()) throw DataError(path + ": the file is empty");
  return parse_onnx<T>(bytes.data(), bytes.size(), path, info);
}

}  // namespace io
}  // namespace headnet
