// headnet/layers/graph.hpp: Graph, layers wired as any directed acyclic graph (what ONNX holds).
//
// Sequential and Residual describe chains and skip connections; a model read from an ONNX file may
// be any DAG. A Graph holds numbered values (0 is the input) and nodes in a valid order, each node
// either a layer applied to one value or the sum of two values:
//   Graph<float> g;
//   int h = g.add("conv1", std::make_unique<Conv2d<float>>(3, 16, 3, 1, 1), g.input());
//   int r = g.add("relu1", std::make_unique<ReLU<float>>(), h);
//   int s = g.add_sum("add1", r, g.input());     // same shapes, no broadcasting
//   g.set_output(s);
// Node names are the layers' names in the state dict and may contain dots ("layer1.0.conv1"), so
// that a model read from PyTorch's ONNX export keeps PyTorch's parameter names.
//
// forward runs the nodes in order, keeping each value as the handle its producer returned (no
// copies). backward runs them in reverse; a value used by one node receives that node's dx handle,
// a value used by several receives their sum in a buffer of the graph's, allocated once per shape.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "headnet/layers/layer.hpp"

namespace headnet {

/// Layers wired as any directed acyclic graph of values (what ONNX import builds); a value used
/// twice gets the sum of its gradients.
template <typename T>
class Graph : public Layer<T> {
 public:
  /// The handle of the graph's input value.
  int input() const { return 0; }

  /// Applies `layer` to value `from`; returns the new value's number.
  int add(std::string name, std::unique_ptr<Layer<T>> layer, int from) {
    if (!layer) throw ShapeError("Graph::add: null layer");
    check_name(name);
    check_value(from, name);
    layer->train(this->training_);
    nodes_.push_back({std::move(name), std::move(layer), {from, -1}, value_count_, Tensor<T>()});
    refresh();
    return value_count_++;
  }
  /// Adds values a and b (which must have the same shape); returns the sum's number.
  int add_sum(std::string name, int a, int b) {
    check_name(name);
    check_value(a, name);
    check_value(b, name);
    nodes_.push_back({std::move(name), nullptr, {a, b}, value_count_, Tensor<T>()});
    refresh();
    return value_count_++;
  }
  /// Makes `value` the graph's output.
  void set_output(int value) {
    check_value(value, "output");
    output_ = value;
  }
  /// The handle of the output value.
  int output() const { return output_; }
  /// The number of values (input and node outputs).
  int value_count() const { return value_count_; }

  /// The nodes, for walking the graph (the ONNX writer does).
  struct NodeView {
    const std::string& name;  ///< the node's name
    Layer<T>* layer;  ///< null for a sum
    int a;  ///< the first input value
    int b;  ///< the second input value (-1 for a layer)
    int out;  ///< the output value
  };
  /// The nodes, in evaluation order.
  std::vector<NodeView> nodes() {
    std::vector<NodeView> v;
    for (auto& n : nodes_) v.push_back({n.name, n.layer.get(), n.in[0], n.in[1], n.out});
    return v;
  }

  std::string type() const override { return "Graph"; }

  Shape output_shape(const Shape& input) const override {
    std::vector<Shape> shapes(value_count_);
    shapes[0] = input;
    for (const auto& n : nodes_) {
      if (n.layer) {
        try {
          shapes[n.out] = n.layer->output_shape(shapes[n.in[0]]);
        } catch (const ShapeError& e) {
          throw ShapeError("node '" + n.name + "' (" + n.layer->type() + "): " + e.what());
        }
      } else {
        if (shapes[n.in[0]] != shapes[n.in[1]]) {
          throw ShapeError("node '" + n.name + "' (Add): the inputs' shapes " + shapes[n.in[0]].str() + " and " +
                           shapes[n.in[1]].str() + " differ");
        }
        shapes[n.out] = shapes[n.in[0]];
      }
    }
    return shapes[output_];
  }

  Tensor<T> forward(const Tensor<T>& x) override {
    if (x.shape() != checked_input_shape_) {
      output_shape(x.shape());
      checked_input_shape_ = x.shape();
    }
    values_[0] = x;
    for (auto& n : nodes_) {
      if (n.layer) {
        values_[n.out] = n.layer->forward(values_[n.in[0]]);
      } else {
        const Tensor<T>& a = values_[n.in[0]];
        const Tensor<T>& b = values_[n.in[1]];
        n.sum.resize(a.shape());
        add(a.data(), b.data(), n.sum.data(), a.numel());
        values_[n.out] = n.sum;
      }
    }
    return values_[output_];
  }

  /// Gradients flow from the output back through every node; a value's gradient is the sum of what
  /// its consumers send.
  Tensor<T> backward(const Tensor<T>& dy) override {
    for (auto& g : received_) g = 0;
    receive(output_, dy);
    for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) {
      if (received_[it->out] == 0) continue;  // a value the output does not depend on
      const Tensor<T> g = grads_[it->out];
      if (it->layer) {
        const bool needs_dx = it->in[0] != 0 || this->needs_input_grad_;
        const Tensor<T> dx = it->layer->backward(g);
        if (needs_dx) receive(it->in[0], dx);
      } else {
        receive(it->in[0], g);
        receive(it->in[1], g);
      }
    }
    if (!this->needs_input_grad_ || received_[0] == 0) return Tensor<T>();
    return grads_[0];
  }

  std::vector<Child<T>> children() override {
    std::vector<Child<T>> kids;
    for (auto& n : nodes_)
      if (n.layer) kids.push_back({n.name, n.layer.get()});
    return kids;
  }
  /// Only the nodes that read the graph's input may skip dx.
  bool child_needs_input_grad(std::size_t index, bool needed) const override {
    std::size_t i = 0;
    for (const auto& n : nodes_) {
      if (!n.layer) continue;
      if (i++ == index) return n.in[0] != 0 || needed;
    }
    return true;
  }

 private:
  struct Node {
    std::string name;
    std::unique_ptr<Layer<T>> layer;  // null: a sum
    int in[2];
    int out;
    Tensor<T> sum;  // a sum's output
  };

  static void add(const T* a, const T* b, T* out, std::int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (std::int64_t(1) << 17))
    for (std::int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
  }

  // Value v receives gradient g: kept as a handle the first time, summed into the graph's own
  // buffer after that.
  void receive(int v, const Tensor<T>& g) {
    if (received_[v] == 0) {
      grads_[v] = g;
    } else {
      Tensor<T>& acc = accumulators_[v];
      if (received_[v] == 1) {
        acc.resize(g.shape());
        add(grads_[v].data(), g.data(), acc.data(), g.numel());
        grads_[v] = acc;
      } else {
        add(acc.data(), g.data(), acc.data(), g.numel());
      }
    }
    ++received_[v];
  }

  void check_name(const std::string& name) const {
    if (name.empty()) throw ShapeError("Graph: a node needs a name");
    for (const auto& n : nodes_)
      if (n.name == name) throw ShapeError("Graph: duplicate node name '" + name + "'");
  }
  void check_value(int v, const std::string& who) const {
    if (v < 0 || v >= value_count_) {
      throw ShapeError("Graph: '" + who + "' reads value " + std::to_string(v) + ", which does not exist yet (values 0-" +
                       std::to_string(value_count_ - 1) + ")");
    }
  }
  void refresh() {
    values_.resize(value_count_ + 1);
    grads_.resize(value_count_ + 1);
    accumulators_.resize(value_count_ + 1);
    received_.resize(value_count_ + 1);
    output_ = value_count_;  // the newest value, until set_output says otherwise
    checked_input_shape_ = Shape();
    this->forget_structure();
    // A new child must know whether it owes dx.
    this->set_needs_input_grad(this->needs_input_grad_);
  }

  std::vector<Node> nodes_;
  int value_count_ = 1;  // value 0 is the input
  int output_ = 0;
  std::vector<Tensor<T>> values_{1}, grads_{1}, accumulators_{1};
  std::vector<int> received_ = std::vector<int>(1);
  Shape checked_input_shape_;
};

}  // namespace headnet
