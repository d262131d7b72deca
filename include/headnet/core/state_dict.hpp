// headnet/core/state_dict.hpp: StateDict<T>, a model's named tensors in PyTorch's order.
//
// Contract
// - An ordered list of (name, tensor) entries with unique names: what Layer::state_dict() returns
//   (every parameter and buffer, "layer1.0.bn1.running_var") and what load_state_dict() and
//   io::save_safetensors take. Order is PyTorch's: a module's own parameters, then its own buffers,
//   then each child's entries in turn.
// - Entries are handles: a state dict taken from a model shares its storage, as PyTorch's does.
//   clone() makes an independent snapshot.
// - An entry marked `integer` (BatchNorm's num_batches_tracked) holds whole numbers that files
//   store as int64, so that PyTorch reads the dtype it expects.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "headnet/core/error.hpp"
#include "headnet/core/tensor.hpp"

namespace headnet {

/// One named tensor of a state dict.
template <typename T>
struct StateEntry {
  std::string name;  ///< dotted key, as PyTorch names it (e.g. `conv1.weight`)
  Tensor<T> value;  ///< the values (a copy, or a view of the layer's tensor)
  bool integer = false;  ///< an integer buffer (saved as int64, e.g. `num_batches_tracked`)
};

/// An ordered list of named tensors: a model's parameters and buffers, or an optimiser's state.
template <typename T>
class StateDict {
 public:
  /// One entry.
  using Entry = StateEntry<T>;

  /// Appends an entry; throws on a duplicate name.
  void add(std::string name, Tensor<T> value, bool integer = false) {
    if (find(name)) throw Error("StateDict: duplicate key '" + name + "'");
    entries_.push_back({std::move(name), std::move(value), integer});
  }

  /// The entry called `name`, or nullptr.
  const Entry* find(const std::string& name) const {
    for (const auto& e : entries_)
      if (e.name == name) return &e;
    return nullptr;
  }
  /// Whether an entry is called `name`.
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  /// A handle to the entry's tensor (sharing its storage).
  Tensor<T> at(const std::string& name) const {
    const Entry* e = find(name);
    if (!e) throw Error("StateDict: no key '" + name + "'");
    return e->value;
  }

  /// The keys, in order.
  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    for (const auto& e : entries_) k.push_back(e.name);
    return k;
  }
  /// The number of entries.
  std::size_t size() const { return entries_.size(); }
  /// Whether there are no entries.
  bool empty() const { return entries_.empty(); }
  /// The first entry.
  typename std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  /// Past the last entry.
  typename std::vector<Entry>::const_iterator end() const { return entries_.end(); }

  /// An independent copy of every tensor (a snapshot that later training does not change).
  StateDict clone() const {
    StateDict copy;
    for (const auto& e : entries_) copy.entries_.push_back({e.name, e.value.clone(), e.integer});
    return copy;
  }

  /// The entries whose names start with `prefix` ("model."), with the prefix removed.
  StateDict with_prefix_removed(const std::string& prefix) const {
    StateDict out;
    for (const auto& e : entries_)
      if (e.name.compare(0, prefix.size(), prefix) == 0) out.entries_.push_back({e.name.substr(prefix.size()), e.value, e.integer});
    return out;
  }
  /// Appends every entry of `other` with `prefix` in front of its name.
  void append(const StateDict& other, const std::string& prefix = "") {
    for (const auto& e : other) add(prefix + e.name, e.value, e.integer);
  }

 private:
  std::vector<Entry> entries_;
};

}  // namespace headnet
