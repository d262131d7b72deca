// headnet/data/loader.hpp: Loader, what the Trainer draws batches from.
//
// Contract
// - next(images, labels) fills the next batch of the current epoch (images: a view of the loader's
//   own buffer, valid until the next call) and returns false at the epoch's end.
// - start_epoch() begins the next pass (reshuffling when the loader shuffles).
// - state() is everything needed to come back to this exact point: the generator as it was before
//   this epoch's shuffle, and the position in the epoch. set_state() returns there, redoing the
//   shuffle, without converting the batches it skips.
#pragma once

#include <cstdint>
#include <vector>

#include "headnet/core/random.hpp"
#include "headnet/core/tensor.hpp"

namespace headnet {
namespace data {

/// Where a loader is: enough to resume mid-epoch with the same batches.
struct LoaderState {
  Generator::State epoch_generator{};  ///< before this epoch's shuffle
  std::int64_t position = 0;           ///< samples of this epoch already drawn
  std::int64_t epoch = 0;              ///< passes started before this one (keys the augmentation)
};

/// A source of training batches; the Trainer takes any.
class Loader {
 public:
  virtual ~Loader() = default;
  /// Writes the next batch into `images` and `labels`; false at the end of the epoch.
  virtual bool next(Tensor<float>& images, std::vector<std::int32_t>& labels) = 0;
  /// Starts an epoch (shuffles, when the loader shuffles).
  virtual void start_epoch() = 0;
  virtual std::int64_t size() const = 0;  ///< samples per epoch
  /// Batches per epoch.
  virtual std::int64_t batches_per_epoch() const = 0;
  /// The loader's position, for checkpoints.
  virtual LoaderState state() const = 0;
  /// Restores a position saved by state().
  virtual void set_state(const LoaderState& state) = 0;
};

}  // namespace data
}  // namespace headnet
