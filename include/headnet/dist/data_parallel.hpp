// headnet/dist/data_parallel.hpp: data-parallel training over MPI, in the spirit of PyTorch's
// DistributedDataParallel.
//
//   dist::Session mpi(argc, argv);
//   auto net = models::resnet9<float>();                        // same seed on every rank
//   dist::DataParallel<float> ddp(net);                          // rank 0's weights to everyone
//   data::BatchLoader loader(train, 256 / mpi.size(), true, seed);
//   loader.set_shard(mpi.rank(), mpi.size());                    // each rank its part of every batch
//   train::Trainer trainer(net, sgd, loader, options);
//   trainer.set_distributed(&ddp);                               // gradients averaged every step
//   trainer.fit();                                               // run with: mpirun -np 4 ./app
//
// What happens each step, on every rank:
// - before the forward pass, rank 0's buffers (BatchNorm's running statistics) are broadcast, so
//   the replicas stay equal and a checkpoint written by rank 0 holds everyone's state;
// - during the backward pass, the gradients go into flat buckets of about bucket_bytes, filled in
//   the order backward produces them (last layer first). When a top-level layer of a Sequential
//   has finished its backward, every bucket it completes is summed over the ranks with a
//   non-blocking MPI_Iallreduce, so communication overlaps the backward pass of the layers before
//   it; after the backward pass the wrapper waits for them and divides by the number of ranks
//   (or not, with sum_gradients, for a loss summed over the batch);
// - every rank then takes the same optimiser step on the same averaged gradients, so the weights
//   stay bit-identical (tested after every step).
// BatchNorm keeps per-rank batch statistics by default; with sync_batchnorm, every BatchNorm layer
// takes its statistics over all ranks' batches together (SyncBatchNorm: two more allreduces of
// 2C doubles per layer and step).
//
// Buffers and buckets are allocated once; MPI itself may allocate inside its collectives.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "headnet/dist/mpi.hpp"
#include "headnet/layers/batchnorm.hpp"
#include "headnet/layers/layer.hpp"
#include "headnet/layers/sequential.hpp"
#include "headnet/train/distributed.hpp"

namespace headnet {
namespace dist {

/// How DataParallel moves tensors.
struct DataParallelOptions {
  std::size_t bucket_bytes = std::size_t(1) << 20;  ///< gradient bytes per allreduce (PyTorch: 25 MB)
  bool sync_batchnorm = false;                      ///< BatchNorm statistics over all ranks' batches
  bool broadcast_buffers = true;                    ///< rank 0's buffers to all before each forward
  /// Sum the gradients over the ranks instead of averaging them: for a loss reduced by sum over the
  /// batch (cifar10-fast's), whose single-process gradient is the sum over all ranks' samples.
  bool sum_gradients = false;
};

/// Keeps replicas of a model equal across MPI ranks: the Trainer's train::Distributed runtime.
template <typename T>
class DataParallel : public train::Distributed {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "DataParallel: float or double");

 public:
  /// Wraps `model` (collective: every rank constructs it at the same point): broadcasts rank 0's
  /// parameters and buffers, plans the gradient buckets and hooks into the model's backward pass.
  explicit DataParallel(Layer<T>& model, MPI_Comm comm = MPI_COMM_WORLD, DataParallelOptions options = DataParallelOptions())
      : model_(model), comm_(comm), options_(options) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    plan_buckets();
    std::vector<Tensor<T>> weights;
    for (const auto& p : model_.parameters()) weights.push_back(p.value);
    broadcast(weights, "broadcasting the initial parameters");
    broadcast(buffers_, "broadcasting the initial buffers");
    if (options_.sync_batchnorm) {
      model_.for_each_layer([&](Layer<T>& layer) {
        if (auto* bn = dynamic_cast<BatchNorm<T>*>(&layer)) {
          MPI_Comm c = comm_;
          bn->set_statistics_reducer([c](double* values, std::size_t count) {
            check_mpi(MPI_Allreduce(MPI_IN_PLACE, values, int(count), MPI_DOUBLE, MPI_SUM, c), "SyncBatchNorm: MPI_Allreduce");
          });
        }
      });
    }
    if (auto* sequential = dynamic_cast<Sequential<T>*>(&model_)) {
      sequential->set_after_backward([this](std::size_t child) { layer_done(child); });
      hooked_ = sequential;
    }
  }
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;
  ~DataParallel() override {
    if (hooked_) hooked_->set_after_backward(nullptr);
    if (options_.sync_batchnorm)
      model_.for_each_layer([](Layer<T>& layer) {
        if (auto* bn = dynamic_cast<BatchNorm<T>*>(&layer)) bn->set_statistics_reducer(nullptr);
      });
  }

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }

  void before_forward() override {
    if (options_.broadcast_buffers && !buffers_.empty()) broadcast(buffers_, "broadcasting the buffers");
  }

  void before_backward() override {
    for (auto& b : buckets_) b.ready = 0, b.launched = false;
    in_backward_ = true;
  }

  void after_backward() override {
    in_backward_ = false;
    for (std::size_t i = 0; i < buckets_.size(); ++i)
      if (!buckets_[i].launched) launch(i);  // parameters outside the hooked layers, or no hook
    if (!requests_.empty()) {
      check_mpi(MPI_Waitall(int(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE), "averaging the gradients: MPI_Waitall");
    }
    requests_.clear();
    const T scale = options_.sum_gradients ? T(1) : T(1) / T(size_);
    for (auto& b : buckets_) {
      std::size_t offset = 0;
      for (std::size_t p : b.params) {
        Tensor<T> grad = params_[p].grad;
        const T* source = b.flat.data() + offset;
        for (std::int64_t k = 0; k < grad.numel(); ++k) grad.data()[k] = source[k] * scale;
        offset += std::size_t(grad.numel());
      }
    }
  }

  double combine_loss(double loss) override {
    double sum = loss;
    check_mpi(MPI_Allreduce(&loss, &sum, 1, MPI_DOUBLE, MPI_SUM, comm_), "combining the loss: MPI_Allreduce");
    return options_.sum_gradients ? sum : sum / double(size_);
  }

  /// The number of gradient buckets (each one allreduce per step).
  std::size_t buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<std::size_t> params;  // indices into params_, in the order backward finishes them
    std::vector<T> flat;              // their gradients, packed
    std::size_t ready = 0;            // how many are final this step
    bool launched = false;
  };

  static MPI_Datatype type() { return std::is_same<T, float>::value ? MPI_FLOAT : MPI_DOUBLE; }

  void plan_buckets() {
    params_ = model_.trainable_parameters();
    for (const auto& b : model_.buffers()) buffers_.push_back(b.value);
    // Which top-level child owns each parameter ("conv1.weight" -> child "conv1").
    const auto kids = model_.children();
    owner_.assign(params_.size(), kids.size());  // kids.size(): no child (waits for after_backward)
    for (std::size_t p = 0; p < params_.size(); ++p)
      for (std::size_t k = 0; k < kids.size(); ++k)
        if (!kids[k].name.empty() && params_[p].name.rfind(kids[k].name + ".", 0) == 0) owner_[p] = k;
    // Last parameters first: the order in which backward produces them.
    std::size_t bytes = options_.bucket_bytes;
    for (std::size_t p = params_.size(); p-- > 0;) {
      const std::size_t size = std::size_t(params_[p].grad.numel()) * sizeof(T);
      if (buckets_.empty() || bytes + size > options_.bucket_bytes) {
        buckets_.emplace_back();
        bytes = 0;
      }
      buckets_.back().params.push_back(p);
      bytes += size;
    }
    bucket_of_.assign(params_.size(), 0);
    for (std::size_t b = 0; b < buckets_.size(); ++b) {
      std::size_t n = 0;
      for (std::size_t p : buckets_[b].params) bucket_of_[p] = b, n += std::size_t(params_[p].grad.numel());
      buckets_[b].flat.resize(n);
    }
    requests_.reserve(buckets_.size());
  }

  // Child `child` of the hooked Sequential finished its backward: its parameters are final.
  void layer_done(std::size_t child) {
    if (!in_backward_) return;
    for (std::size_t p = 0; p < params_.size(); ++p) {
      if (owner_[p] != child) continue;
      Bucket& b = buckets_[bucket_of_[p]];
      if (++b.ready == b.params.size()) launch(bucket_of_[p]);
    }
    if (!requests_.empty()) {  // let MPI progress the transfers already started
      int done = 0;
      MPI_Testall(int(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE);
    }
  }

  void launch(std::size_t index) {
    Bucket& b = buckets_[index];
    std::size_t offset = 0;
    for (std::size_t p : b.params) {
      const Tensor<T>& grad = params_[p].grad;
      std::copy(grad.begin(), grad.end(), b.flat.begin() + std::ptrdiff_t(offset));
      offset += std::size_t(grad.numel());
    }
    b.launched = true;
    if (size_ == 1) return;
    requests_.push_back(MPI_REQUEST_NULL);
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, b.flat.data(), int(b.flat.size()), type(), MPI_SUM, comm_, &requests_.back()),
              "averaging the gradients: MPI_Iallreduce");
  }

  // Rank 0's values of `tensors` to every rank, packed into one message.
  void broadcast(std::vector<Tensor<T>>& tensors, const char* what) {
    if (size_ == 1) return;
    std::size_t n = 0;
    for (const auto& t : tensors) n += std::size_t(t.numel());
    packed_.resize(n);
    std::size_t offset = 0;
    for (const auto& t : tensors) std::copy(t.begin(), t.end(), packed_.begin() + std::ptrdiff_t(offset)), offset += std::size_t(t.numel());
    check_mpi(MPI_Bcast(packed_.data(), int(n), type(), 0, comm_), what);
    offset = 0;
    for (auto& t : tensors) {
      Tensor<T> view = t;
      std::copy(packed_.begin() + std::ptrdiff_t(offset), packed_.begin() + std::ptrdiff_t(offset + std::size_t(t.numel())), view.begin());
      offset += std::size_t(t.numel());
    }
  }

  Layer<T>& model_;
  MPI_Comm comm_;
  DataParallelOptions options_;
  int rank_ = 0, size_ = 1;
  std::vector<Parameter<T>> params_;
  std::vector<Tensor<T>> buffers_;
  std::vector<std::size_t> owner_, bucket_of_;
  std::vector<Bucket> buckets_;
  std::vector<MPI_Request> requests_;
  std::vector<T> packed_;
  Sequential<T>* hooked_ = nullptr;
  bool in_backward_ = false;
};

}  // namespace dist
}  // namespace headnet
