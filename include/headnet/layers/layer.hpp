// headnet/layers/layer.hpp: what every layer is, as PyTorch's nn.Module without autograd.
//
// Contract of a Layer<T>
// - forward(x) checks x's shape, computes y, caches what backward needs (usually a handle to x or
//   y, not a copy) and returns y. The returned tensor is the layer's own buffer: it stays valid
//   until the next forward, which overwrites it (and reuses its memory).
// - backward(dy) must follow the forward it belongs to. It *accumulates* (+=) parameter gradients
//   into the gradient buffers returned by parameters(), so that zero_grad() is explicit, and returns
//   dx, also a buffer of the layer's. After set_needs_input_grad(false) it skips dx and returns an
//   empty tensor (the first layer of a network never needs it).
// - output_shape(shape) says what forward would return, or throws ShapeError with a message that
//   names what was expected and what was given (without the layer's name: callers add context).
//
// What a layer declares (override these; each has an empty default):
// - own_parameters(): its trainable tensors as (name, value, gradient) handles sharing its storage,
//   unprefixed ("weight"), so that an optimiser holding them updates the layer in place.
// - own_buffers(): tensors that are saved and loaded but not trained (BatchNorm's running_mean).
// - children(): the layers it contains, named ("conv1"), as pointers valid while it lives. A child
//   with an empty name is transparent: its entries appear directly under the parent's prefix (a
//   Residual's body). Computed on each call, so a block that holds its children as members stays
//   movable.
// - reset_own_parameters(gen): draws its own initial values, as the constructor did.
// - child_needs_input_grad(i, needed): whether child i must return dx when the block must return
//   `needed`; the default (always) is right for any block, Sequential refines it for its first
//   child.
// - own_generators(): random streams (Dropout's) that a checkpoint must save to resume exactly.
//
// What the library does for every layer, walking the tree once (do not override):
// train()/eval(), reset_parameters(), set_needs_input_grad(), parameters() and buffers() with
// PyTorch's dotted names, state_dict() / load_state_dict(), set_requires_grad(), zero_grad().
//
// To add a layer: copy relu.hpp (no parameters) or linear.hpp (with parameters), put its arithmetic
// in kernels/, and add one line to the gradient-check table in tests/test_layers.cpp. To write a
// block: hold the children, list them in children(), write forward and backward (residual.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "headnet/core/error.hpp"
#include "headnet/core/random.hpp"
#include "headnet/core/shape.hpp"
#include "headnet/core/state_dict.hpp"
#include "headnet/core/tensor.hpp"

namespace headnet {

/// A trainable tensor of a layer and its gradient, as handles that share the layer's storage.
template <typename T>
struct Parameter {
  std::string name;  ///< "weight", or "conv1.weight" as parameters() names it
  Tensor<T> value;  ///< the values the optimiser updates in place
  Tensor<T> grad;  ///< the gradient backward() accumulates into
  /// false: frozen. Read when an optimiser is built (optimisers skip frozen parameters) and by the
  /// layer's backward, which then does not compute that gradient where it can avoid it.
  bool requires_grad = true;
};

/// A saved but untrained tensor of a layer (BatchNorm's running statistics).
template <typename T>
struct Buffer {
  std::string name;  ///< "running_mean", or "bn1.running_mean" as buffers() names it
  Tensor<T> value;  ///< the values, shared with the layer
  bool integer = false;  ///< whole numbers, stored as int64 in files (num_batches_tracked)
};

template <typename T>
class Layer;

/// A named child of a block, as children() lists them.
template <typename T>
struct Child {
  std::string name;  ///< empty: transparent (no name segment of its own)
  Layer<T>* layer;  ///< the child, owned by its parent
};

/// What load_state_dict(..., strict = false) reports, as PyTorch's NamedTuple.
struct LoadResult {
  std::vector<std::string> missing_keys;  ///< keys the model has and the state dict lacks
  std::vector<std::string> unexpected_keys;  ///< keys the state dict has and the model lacks
};

/// The base of every layer and block: forward, backward, parameters, buffers, state dicts (the
/// contract is at the top of layers/layer.hpp).
template <typename T>
class Layer {
 public:
  virtual ~Layer() = default;

  /// "Conv2d", "Linear", ...: what error messages and summaries call the layer.
  virtual std::string type() const = 0;
  /// "Conv2d(3, 6, kernel_size=5, stride=1, padding=0)": the type with its configuration.
  virtual std::string describe() const { return type(); }

  /// The output shape for an input of shape `input`; throws ShapeError when the input does not fit.
  virtual Shape output_shape(const Shape& input) const = 0;
  /// y = layer(x): checks x, caches what backward needs, returns the layer's own output buffer.
  virtual Tensor<T> forward(const Tensor<T>& input) = 0;
  /// dx from dy: accumulates parameter gradients (+=) and returns dx (empty if not needed).
  virtual Tensor<T> backward(const Tensor<T>& grad_output) = 0;

  // ---- What a layer declares (see the top of the file) ----
  /// This layer's own trainable tensors, unprefixed (override in layers that have some).
  virtual std::vector<Parameter<T>> own_parameters() { return {}; }
  /// This layer's own buffers, unprefixed (override in layers that have some).
  virtual std::vector<Buffer<T>> own_buffers() { return {}; }
  /// The contained layers, named (override in blocks).
  virtual std::vector<Child<T>> children() { return {}; }
  /// Draws this layer's own initial parameters from `gen`, as the constructor did.
  virtual void reset_own_parameters(Generator& /*gen*/) {}
  /// Whether child `index` must return dx when this block must return dx (`needed`).
  virtual bool child_needs_input_grad(std::size_t /*index*/, bool /*needed*/) const { return true; }
  /// This layer's own random generators, that checkpoints save (Dropout's).
  virtual std::vector<std::pair<std::string, Generator*>> own_generators() { return {}; }

  // ---- The walks ----

  /// Every trainable tensor of this layer and its descendants, named as PyTorch names them.
  std::vector<Parameter<T>> parameters() {
    std::vector<Parameter<T>> all;
    collect_parameters("", all);
    return all;
  }
  /// Only the parameters that are not frozen: what an optimiser should get.
  std::vector<Parameter<T>> trainable_parameters() {
    auto all = parameters();
    all.erase(std::remove_if(all.begin(), all.end(), [](const Parameter<T>& p) { return !p.requires_grad; }), all.end());
    return all;
  }
  /// Every buffer of this layer and its descendants, with PyTorch's dotted names.
  std::vector<Buffer<T>> buffers() {
    std::vector<Buffer<T>> all;
    collect_buffers("", all);
    return all;
  }
  /// Every generator of this layer and its descendants ("drop1.generator").
  std::vector<std::pair<std::string, Generator*>> generators() {
    std::vector<std::pair<std::string, Generator*>> all;
    walk("", [&](const std::string& prefix, Layer& layer) {
      for (auto& g : layer.own_generators()) all.push_back({prefix + g.first, g.second});
    });
    return all;
  }
  /// The layer and all its descendants with their dotted paths ("" for this one), depth first.
  std::vector<std::pair<std::string, Layer*>> named_modules() {
    std::vector<std::pair<std::string, Layer*>> all;
    walk("", [&](const std::string& prefix, Layer& layer) {
      all.push_back({prefix.empty() ? prefix : prefix.substr(0, prefix.size() - 1), &layer});
    });
    return all;
  }

  /// Parameters and buffers, in PyTorch's order (each module's parameters, then its buffers, then
  /// its children), sharing storage with the layer.
  StateDict<T> state_dict() {
    StateDict<T> dict;
    walk("", [&](const std::string& prefix, Layer& layer) {
      for (auto& p : layer.own_parameters()) dict.add(prefix + p.name, p.value);
      for (auto& b : layer.own_buffers()) dict.add(prefix + b.name, b.value, b.integer);
    });
    return dict;
  }

  /// Copies `dict` into the layer's parameters and buffers. Everything is checked before anything
  /// changes: a key whose shape differs is always an error; with `strict`, so is a missing or an
  /// unexpected key. The message lists every problem, as PyTorch's does:
  ///   Error(s) in loading state_dict for Sequential:
  ///       Missing key(s) in state_dict: "bn1.running_var".
  ///       size mismatch for conv1.weight: copying a param with shape (6, 3, 5, 5) from checkpoint,
  ///       the shape in current model is (6, 3, 3, 3).
  LoadResult load_state_dict(const StateDict<T>& dict, bool strict = true) {
    const StateDict<T> own = state_dict();
    LoadResult result;
    std::vector<std::string> mismatches;
    for (const auto& e : own) {
      const auto* given = dict.find(e.name);
      if (!given) {
        result.missing_keys.push_back(e.name);
      } else if (given->value.shape() != e.value.shape()) {
        mismatches.push_back("size mismatch for " + e.name + ": copying a param with shape " +
                             given->value.shape().str() + " from checkpoint, the shape in current model is " +
                             e.value.shape().str() + ".");
      }
    }
    for (const auto& e : dict)
      if (!own.contains(e.name)) result.unexpected_keys.push_back(e.name);
    auto quoted = [](const std::vector<std::string>& keys) {
      std::string s;
      for (const auto& k : keys) s += (s.empty() ? "\"" : ", \"") + k + "\"";
      return s;
    };
    std::string problems;
    if (strict && !result.unexpected_keys.empty())
      problems += "\n\tUnexpected key(s) in state_dict: " + quoted(result.unexpected_keys) + ".";
    if (strict && !result.missing_keys.empty())
      problems += "\n\tMissing key(s) in state_dict: " + quoted(result.missing_keys) + ".";
    for (const auto& m : mismatches) problems += "\n\t" + m;
    if (!problems.empty()) throw Error("Error(s) in loading state_dict for " + type() + ":" + problems);
    for (const auto& e : own) {
      const auto* given = dict.find(e.name);
      if (!given) continue;
      Tensor<T> target = e.value;
      std::copy(given->value.begin(), given->value.end(), target.begin());
    }
    return result;
  }

  /// Training or evaluation mode, for this layer and every descendant; layers such as BatchNorm and
  /// Dropout behave differently in each.
  void train(bool mode = true) {
    walk("", [&](const std::string&, Layer& layer) { layer.training_ = mode; });
  }
  /// Evaluation mode, for this layer and every descendant: train(false).
  void eval() { train(false); }
  /// Whether the layer is in training mode.
  bool is_training() const { return training_; }

  /// Draws fresh initial values from `gen` for this layer and its descendants, in state-dict order.
  void reset_parameters(Generator& gen) {
    walk("", [&](const std::string&, Layer& layer) { layer.reset_own_parameters(gen); });
  }
  /// Re-initialises from a generator seeded with `seed`.
  void reset_parameters(std::uint64_t seed) {
    Generator gen(seed);
    reset_parameters(gen);
  }

  /// Whether backward must return dx. Passed down to the children as child_needs_input_grad() says.
  void set_needs_input_grad(bool needed) {
    needs_input_grad_ = needed;
    auto kids = children();
    for (std::size_t i = 0; i < kids.size(); ++i) kids[i].layer->set_needs_input_grad(child_needs_input_grad(i, needed));
  }
  /// Whether backward must return dx.
  bool needs_input_grad() const { return needs_input_grad_; }

  /// Freezes (false) or unfreezes one parameter by its dotted name ("bn1.weight"), or every
  /// parameter of this layer and its descendants (the overload without a name, as PyTorch's
  /// requires_grad_). Do it before building the optimiser: optimisers take the trainable parameters
  /// they are given.
  void set_requires_grad(const std::string& name, bool requires_grad) {
    const std::size_t dot = name.find_last_of('.');
    const std::string path = dot == std::string::npos ? "" : name.substr(0, dot);
    const std::string own = dot == std::string::npos ? name : name.substr(dot + 1);
    for (auto& m : named_modules()) {
      if (m.first != path) continue;
      for (auto& p : m.second->own_parameters()) {
        if (p.name != own) continue;
        auto& frozen = m.second->frozen_;
        frozen.erase(std::remove(frozen.begin(), frozen.end(), own), frozen.end());
        if (!requires_grad) frozen.push_back(own);
        return;
      }
    }
    throw Error(type() + ": set_requires_grad: no parameter named '" + name + "'");
  }
  /// Freezes (false) or unfreezes (true) every parameter of this layer and its descendants.
  void set_requires_grad(bool requires_grad) {
    for (const auto& p : parameters()) set_requires_grad(p.name, requires_grad);
  }
  /// Whether this layer's own parameter `name` is trained (for its backward to skip the rest).
  bool requires_grad(const char* name) const {
    for (const auto& f : frozen_)
      if (f == name) return false;
    return true;
  }

  /// Zeroes every parameter gradient. The list of gradients is gathered on the first call (no
  /// allocation afterwards); a container that changes its children calls forget_structure().
  void zero_grad() {
    if (!grads_cached_) {
      cached_grads_.clear();
      for (auto& p : parameters()) cached_grads_.push_back(p.grad);
      grads_cached_ = true;
    }
    for (auto& g : cached_grads_) g.zero();
  }

  /// The number of parameter elements, frozen ones included.
  std::int64_t parameter_count() {
    std::int64_t n = 0;
    for (const auto& p : parameters()) n += p.value.numel();
    return n;
  }

  /// Fusion, used by Sequential: fuse_next(next) makes this layer compute `next` as part of its own
  /// output (Conv2d takes a following ReLU: y = max(conv(x) + b, 0), one pass over the activations
  /// instead of three; BatchNorm a following GELU or ReLU) and says whether it did; Sequential then
  /// skips `next`, and so must any code that walks a chain's layers itself (Sequential::is_fused:
  /// the trainer's NaN diagnosis, the ONNX writer). unfuse() undoes it.
  virtual bool fuse_next(const Layer<T>& /*next*/) { return false; }
  /// Undoes fuse_next().
  virtual void unfuse() {}

  /// Which kernels computed the last forward and backward, for layers that choose (Conv2d: e.g.
  /// "forward=direct/avx512 input_gradient=direct/avx512 weight_gradient=im2col_gemm"); empty
  /// otherwise. kernel_report() lists them for a whole network.
  virtual std::string kernel_paths() const { return ""; }

  /// Calls visit(layer) for this layer and every descendant, parents first.
  template <typename Visit>
  void for_each_layer(Visit&& visit) {
    walk("", [&](const std::string&, Layer& layer) { visit(layer); });
  }

  /// One line "name: kernel_paths()" per layer (this one or a descendant) that chooses its
  /// kernels, for the shapes of the last forward: which code each convolution runs.
  std::string kernel_report() {
    std::string s;
    walk("", [&](const std::string& at, Layer& layer) {
      const std::string paths = layer.kernel_paths();
      if (!paths.empty()) s += (at.empty() ? std::string("(this layer)") : at.substr(0, at.size() - 1)) + ": " + paths + "\n";
    });
    return s;
  }

 protected:
  /// output_shape() with the layer's type in front of any error, for a layer used on its own.
  Shape checked_output_shape(const Shape& input) const {
    try {
      return output_shape(input);
    } catch (const ShapeError& e) {
      throw ShapeError(type() + ": " + e.what());
    }
  }

  /// Throws unless backward is called after a forward whose output had the shape of grad_output.
  void check_grad_output(const Shape& expected, const Tensor<T>& grad_output) const {
    if (grad_output.shape() != expected) {
      throw ShapeError(type() + ": backward expects a gradient of shape " + expected.str() + ", got " +
                       grad_output.shape().str() + (expected.rank() == 0 ? " (was forward called?)" : ""));
    }
  }

  /// Called by a container whose children changed: the next zero_grad() gathers them again.
  void forget_structure() { grads_cached_ = false; }

  bool training_ = true;  ///< training mode (set by train()/eval())
  bool needs_input_grad_ = true;  ///< whether backward must return dx (set by set_needs_input_grad())

 private:
  // Calls visit(prefix, layer) for this layer and every descendant, parents first; prefix is the
  // dotted path with a trailing dot ("layer1.0."), or "" for this layer.
  template <typename Visit>
  void walk(const std::string& prefix, Visit&& visit) {
    visit(prefix, *this);
    for (auto& child : children()) child.layer->walk(child.name.empty() ? prefix : prefix + child.name + ".", visit);
  }
  void collect_parameters(const std::string& prefix, std::vector<Parameter<T>>& all) {
    walk(prefix, [&](const std::string& at, Layer& layer) {
      for (auto& p : layer.own_parameters()) {
        p.requires_grad = layer.requires_grad(p.name.c_str());
        p.name = at + p.name;
        all.push_back(std::move(p));
      }
    });
  }
  void collect_buffers(const std::string& prefix, std::vector<Buffer<T>>& all) {
    walk(prefix, [&](const std::string& at, Layer& layer) {
      for (auto& b : layer.own_buffers()) {
        b.name = at + b.name;
        all.push_back(std::move(b));
      }
    });
  }

  std::vector<std::string> frozen_;  // own parameters with requires_grad = false
  std::vector<Tensor<T>> cached_grads_;
  bool grads_cached_ = false;
};

}  // namespace headnet
