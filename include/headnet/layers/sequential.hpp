// headnet/layers/sequential.hpp: Sequential, layers applied one after another.
//
// Contract
// - Layers are added at run time, optionally named ("conv1"); parameters() then reports
//   "conv1.weight", and unnamed layers are called by their index ("0.weight"), as in PyTorch.
// - The first forward with a new input shape checks the whole chain before computing anything and
//   throws ShapeError naming the layer: "layer 6 'fc1' (Linear): expects 400 input features, got 576
//   (input (4, 576))". check(shape) does the same without data.
// - Sequential is itself a Layer, so a block (a residual branch, say) can hold one; its layers are
//   its children, so train/eval, names, state dicts and resets reach them (layer.hpp).
// - backward returns dx like any layer. A network's input rarely needs a gradient: a model's root
//   calls set_needs_input_grad(false) (models:: factories and the Trainer do), which saves the
//   first layer's largest product; only the first layer is told, the others must pass dx on.
// - Fusion: a layer may take over the one after it (Layer::fuse_next): a ReLU right after a Conv2d
//   becomes part of the convolution's output, and so does a MaxPool2d(2) after either, a GELU or
//   ReLU after a BatchNorm part of the normalisation's, and forward and backward skip it. Results are the
//   same (tests/test_fusion.cpp); the activations are not written, read and written again.
//   set_fusion(false) keeps every layer separate (then each layer's own output is what it alone
//   computes, for a user who inspects the conv's output before its ReLU).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "headnet/layers/layer.hpp"

namespace headnet {

/// Layers applied one after the other, named "0", "1", ... or as given, as torch.nn.Sequential.
template <typename T>
class Sequential : public Layer<T> {
 public:
  /// net.add("conv1", Conv2d<float>(3, 6, 5)) or net.add(ReLU<float>()); returns the stored layer.
  template <typename L, typename = std::enable_if_t<std::is_base_of<Layer<T>, std::decay_t<L>>::value>>
  std::decay_t<L>& add(std::string name, L&& layer) {
    auto owned = std::make_unique<std::decay_t<L>>(std::forward<L>(layer));
    auto& ref = *owned;
    add(std::move(name), std::unique_ptr<Layer<T>>(std::move(owned)));
    return ref;
  }
  /// Appends a layer (moved in) and returns it.
  template <typename L, typename = std::enable_if_t<std::is_base_of<Layer<T>, std::decay_t<L>>::value>>
  std::decay_t<L>& add(L&& layer) {
    return add(std::string(), std::forward<L>(layer));
  }

  /// Appends a named layer.
  Layer<T>& add(std::string name, std::unique_ptr<Layer<T>> layer) {
    if (!layer) throw ShapeError("Sequential::add: null layer");
    for (const auto& entry : layers_) {
      if (!name.empty() && entry.name == name) throw ShapeError("Sequential::add: duplicate layer name '" + name + "'");
    }
    if (name.find('.') != std::string::npos) {
      throw ShapeError("Sequential::add: layer name '" + name + "' must not contain '.'");
    }
    layer->train(this->training_);
    layer->set_needs_input_grad(layers_.empty() ? this->needs_input_grad_ : true);
    layers_.push_back({std::move(name), std::move(layer), false});
    if (fusion_) fuse_last();
    checked_input_shape_ = Shape();
    this->forget_structure();
    return *layers_.back().layer;
  }

  /// The number of layers.
  std::size_t size() const { return layers_.size(); }
  /// Layer i.
  Layer<T>& operator[](std::size_t i) { return *layers_.at(i).layer; }
  /// Layer i, read-only.
  const Layer<T>& operator[](std::size_t i) const { return *layers_.at(i).layer; }
  /// The layer's name, or its index when it has none.
  std::string name(std::size_t i) const {
    return layers_.at(i).name.empty() ? std::to_string(i) : layers_.at(i).name;
  }
  /// The layer called `name`; throws Error when there is none.
  Layer<T>& layer(const std::string& name) {
    for (std::size_t i = 0; i < layers_.size(); ++i)
      if (this->name(i) == name) return *layers_[i].layer;
    throw ShapeError("Sequential: no layer named '" + name + "'");
  }

  std::string type() const override { return "Sequential"; }

  Shape output_shape(const Shape& input) const override {
    Shape shape = input;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      try {
        shape = layers_[i].layer->output_shape(shape);
      } catch (const ShapeError& e) {
        std::string where = "layer " + std::to_string(i);
        if (!layers_[i].name.empty()) where += " '" + layers_[i].name + "'";
        throw ShapeError(where + " (" + layers_[i].layer->type() + "): " + e.what());
      }
    }
    return shape;
  }
  /// Throws ShapeError naming the first layer that cannot take its input.
  Shape check(const Shape& input) const { return output_shape(input); }

  Tensor<T> forward(const Tensor<T>& x) override {
    if (layers_.empty()) return x;
    if (x.shape() != checked_input_shape_) {
      output_shape(x.shape());
      checked_input_shape_ = x.shape();
    }
    Tensor<T> h = x;
    for (auto& entry : layers_)
      if (!entry.fused) h = entry.layer->forward(h);
    return h;
  }

  Tensor<T> backward(const Tensor<T>& dy) override {
    Tensor<T> g = dy;
    for (std::size_t i = layers_.size(); i-- > 0;) {
      if (!layers_[i].fused) g = layers_[i].layer->backward(g);
      if (after_backward_) after_backward_(i);
    }
    return g;
  }

  /// Called with i after layer i's backward (fused layers included, last to first): its parameter
  /// gradients are then final, so a data-parallel wrapper can start sending them while the earlier
  /// layers compute (dist/data_parallel.hpp). Empty by default.
  void set_after_backward(std::function<void(std::size_t)> hook) { after_backward_ = std::move(hook); }

  /// Whether layers fuse (see the top of the file); on by default.
  bool fusion() const { return fusion_; }
  /// Turns fusion (Conv2d taking a following ReLU and MaxPool2d(2), BatchNorm a following GELU or
  /// ReLU) on or off.
  void set_fusion(bool on) {
    fusion_ = on;
    for (std::size_t i = 1; i < layers_.size(); ++i)
      if (layers_[i].fused) layers_[owner(i - 1)].layer->unfuse();
    for (auto& entry : layers_) entry.fused = false;
    if (on)
      for (std::size_t n = 2; n <= layers_.size(); ++n) fuse_last(n);
  }
  /// Whether layer i is computed by an earlier layer (the one before it, or the one that is fused into).
  bool is_fused(std::size_t i) const { return layers_.at(i).fused; }

  std::vector<Child<T>> children() override {
    std::vector<Child<T>> kids;
    for (std::size_t i = 0; i < layers_.size(); ++i) kids.push_back({name(i), layers_[i].layer.get()});
    return kids;
  }
  /// Only the first layer sees the network's input; every later one must pass dx on.
  bool child_needs_input_grad(std::size_t index, bool needed) const override { return index == 0 ? needed : true; }

  /// One line per layer with its output shape for the given input, and the parameter count.
  std::string summary(const Shape& input) {
    std::string s;
    Shape shape = input;
    std::int64_t total = 0;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      shape = layers_[i].layer->output_shape(shape);
      const std::int64_t count = layers_[i].layer->parameter_count();
      total += count;
      s += "  " + name(i) + ": " + layers_[i].layer->describe() + " -> " + shape.str() +
           (count ? ", " + std::to_string(count) + " parameters" : "") + "\n";
    }
    return s + "  total: " + std::to_string(total) + " parameters\n";
  }

 private:
  struct Entry {
    std::string name;
    std::unique_ptr<Layer<T>> layer;
    bool fused;  // computed by an earlier layer: owner(index - 1)
  };
  std::function<void(std::size_t)> after_backward_;
  // The layer that computes layer i: itself, or the one it is fused into.
  std::size_t owner(std::size_t i) const {
    while (i > 0 && layers_[i].fused) --i;
    return i;
  }
  // Offers layer n-1 (of the first n) to the layer that computes layer n-2 (so a Conv2d with its
  // ReLU then takes a MaxPool2d(2)).
  void fuse_last(std::size_t n) {
    if (n < 2) return;
    layers_[n - 1].fused = layers_[owner(n - 2)].layer->fuse_next(*layers_[n - 1].layer);
  }
  void fuse_last() { fuse_last(layers_.size()); }
  std::vector<Entry> layers_;
  bool fusion_ = true;
  Shape checked_input_shape_;
};

}  // namespace headnet
