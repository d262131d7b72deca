// headnet/train/distributed.hpp: what the Trainer asks of a data-parallel runtime.
//
// The Trainer knows nothing of MPI: a runtime (dist/data_parallel.hpp, over MPI) implements this
// interface and is handed to Trainer::set_distributed(). Every rank runs the same loop on its own
// shard of each batch; the runtime keeps the replicas equal (buffers from rank 0 before each
// forward, gradients averaged after each backward), and only rank 0 writes checkpoints.
#pragma once

namespace headnet {
namespace train {

/// The hooks of a data-parallel runtime, called by the Trainer on every rank.
class Distributed {
 public:
  virtual ~Distributed() = default;
  /// This process's rank, 0 .. world_size() - 1.
  virtual int rank() const = 0;
  /// The number of processes training together.
  virtual int world_size() const = 0;
  /// Before each forward pass (PyTorch's DDP broadcasts rank 0's buffers here).
  virtual void before_forward() = 0;
  /// Before each backward pass: gradients may start moving as layers finish.
  virtual void before_backward() = 0;
  /// After each backward pass: every gradient holds the mean (or the sum) over the ranks.
  virtual void after_backward() = 0;
  /// The whole batch's loss from this rank's part of it (the same result on every rank): the mean
  /// over the ranks for a mean-reduced loss, the sum for a sum-reduced one.
  virtual double combine_loss(double loss) = 0;
};

}  // namespace train
}  // namespace headnet
