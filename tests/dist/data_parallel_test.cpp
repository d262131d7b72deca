// Data-parallel training against one process, run under mpirun (tests/CMakeLists.txt: -np 1 and
// -np 2). Every rank also trains the single-process reference itself, without MPI, so each check
// compares two runs in one program:
// - N ranks at batch B/N give the weights of one process at batch B after 20 SGD steps (1e-5
//   relative; the sums run in another order), for the tutorial network and, with SyncBatchNorm, a
//   network with BatchNorm (running statistics included); -np 1 gives them bit for bit;
// - after every step all ranks hold bit-identical weights (rank 0's bytes broadcast and compared);
// - per-rank BatchNorm trains without error and keeps the ranks identical;
// - a checkpoint written with N ranks is refused by a run of another size.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <headnet/data/cifar10.hpp>
#include <headnet/dist/data_parallel.hpp>
#include <headnet/headnet.hpp>
#include <headnet/models/tutorial_net.hpp>
#include <headnet/train/trainer.hpp>

using namespace headnet;

namespace {

int rank = 0, world = 1, failures = 0, checks = 0;

void check(bool ok, const std::string& what) {
  ++checks;
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "rank %d: FAILED: %s\n", rank, what.c_str());
  }
}

data::ImageSet random_set(int n, std::uint64_t seed) {
  data::ImageSet set;
  Generator g(seed);
  set.pixels.resize(std::size_t(n) * 3 * 32 * 32);
  for (auto& p : set.pixels) p = std::uint8_t(g.next() % 256);
  for (int i = 0; i < n; ++i) set.labels.push_back(std::int32_t(g.next() % 10));
  return set;
}

Sequential<float> batchnorm_net() {
  Sequential<float> net;
  net.add("conv", Conv2d<float>(3, 8, 3, 1, 1, false));
  net.add("bn", BatchNorm2d<float>(8));
  net.add("relu", ReLU<float>());
  net.add("pool", MaxPool2d<float>(4));
  net.add("flatten", Flatten<float>());
  net.add("fc", Linear<float>(8 * 8 * 8, 10));
  return net;
}

std::vector<float> flat_parameters(Layer<float>& net) {
  std::vector<float> all;
  for (const auto& p : net.parameters()) all.insert(all.end(), p.value.begin(), p.value.end());
  return all;
}

std::vector<float> flat_state(Layer<float>& net) {
  std::vector<float> all;
  for (const auto& e : net.state_dict()) all.insert(all.end(), e.value.begin(), e.value.end());
  return all;
}

// Whether every rank holds rank 0's bytes.
bool same_on_all_ranks(const std::vector<float>& mine) {
  std::vector<float> first = mine;
  MPI_Bcast(first.data(), int(first.size()), MPI_FLOAT, 0, MPI_COMM_WORLD);
  int same = std::memcmp(first.data(), mine.data(), mine.size() * sizeof(float)) == 0, all = 0;
  MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
  return all != 0;
}

// Trains `net` for `steps` steps of SGD; distributed over the ranks when `ddp`, alone otherwise.
void run_sgd(Sequential<float>& net, const data::ImageSet& set, int global_batch, int steps, dist::DataParallel<float>* ddp,
           bool check_every_step, const std::string& checkpoint = "") {
  const int batch = ddp ? global_batch / world : global_batch;
  data::BatchLoader loader(set, batch, true, 3);
  if (ddp) loader.set_shard(rank, world);
  SGD<float> sgd(net.trainable_parameters(), SGDOptions(0.02).momentum(0.9));
  train::TrainerOptions options;
  options.epochs = 100;
  options.max_steps = steps;
  options.progress = false;
  options.checkpoint_path = checkpoint;
  options.checkpoint_every = checkpoint.empty() ? 0 : 1;
  train::Trainer trainer(net, sgd, loader, options);
  if (ddp) trainer.set_distributed(ddp);
  int step = 0;
  if (ddp && check_every_step)
    trainer.on_step = [&](const train::StepInfo&) {
      ++step;
      // Parameters only: with per-rank BatchNorm the running statistics differ until the next
      // forward pass broadcasts rank 0's.
      check(same_on_all_ranks(flat_parameters(net)), "bit-identical weights on every rank after step " + std::to_string(step));
    };
  trainer.fit();
}

// max |a - b| / max |b| over each tensor of the two models' state dicts.
double relative_difference(Layer<float>& a, Layer<float>& b) {
  double worst = 0;
  const auto sa = a.state_dict(), sb = b.state_dict();
  auto ib = sb.begin();
  for (auto ia = sa.begin(); ia != sa.end(); ++ia, ++ib) {
    double diff = 0, scale = 0;
    for (std::int64_t k = 0; k < ia->value.numel(); ++k) {
      diff = std::max(diff, std::fabs(double(ia->value.data()[k]) - double(ib->value.data()[k])));
      scale = std::max(scale, std::fabs(double(ib->value.data()[k])));
    }
    worst = std::max(worst, scale > 0 ? diff / scale : diff);
  }
  return worst;
}

void compare(Layer<float>& distributed, Layer<float>& reference, const std::string& what) {
  const double d = relative_difference(distributed, reference);
  if (world == 1) {
    check(flat_state(distributed) == flat_state(reference), what + ": -np 1 gives the single-process weights bit for bit");
  } else {
    check(d <= 1e-5, what + ": " + std::to_string(world) + " ranks match one process within 1e-5 (got " + std::to_string(d) + ")");
  }
  if (rank == 0) std::printf("%s: largest relative difference to one process %.3g\n", what.c_str(), d);
}

}  // namespace

int main(int argc, char** argv) {
  dist::Session mpi(argc, argv, true);
  rank = mpi.rank(), world = mpi.size();
  set_num_threads(1);
  const data::ImageSet set = random_set(96, 7);
  const int batch = 8, steps = 20;
  try {
    {  // the tutorial network
      manual_seed(0);
      auto reference = models::tutorial_net<float>(6, 16);
      run_sgd(reference, set, batch, steps, nullptr, false);
      manual_seed(rank == 0 ? 0 : 100 + std::uint64_t(rank));  // other ranks start elsewhere: rank 0's weights must win
      auto net = models::tutorial_net<float>(6, 16);
      dist::DataParallel<float> ddp(net);
      check(same_on_all_ranks(flat_state(net)), "the initial weights are rank 0's on every rank");
      run_sgd(net, set, batch, steps, &ddp, true);
      compare(net, reference, "tutorial network, 20 SGD steps");
      // Small buckets: several allreduces per step, the same result.
      manual_seed(0);
      auto small = models::tutorial_net<float>(6, 16);
      dist::DataParallelOptions o;
      o.bucket_bytes = 4096;
      dist::DataParallel<float> ddp_small(small, MPI_COMM_WORLD, o);
      check(ddp_small.buckets() > 5, "4 KB buckets split the gradients");
      run_sgd(small, set, batch, steps, &ddp_small, false);
      check(flat_state(small) == flat_state(net), "the bucket size does not change the result");
    }
    {  // BatchNorm: SyncBatchNorm equals one process; per-rank statistics train and stay equal
      manual_seed(0);
      auto reference = batchnorm_net();
      run_sgd(reference, set, batch, steps, nullptr, false);
      manual_seed(0);
      auto synced = batchnorm_net();
      dist::DataParallelOptions o;
      o.sync_batchnorm = true;
      dist::DataParallel<float> ddp(synced, MPI_COMM_WORLD, o);
      run_sgd(synced, set, batch, steps, &ddp, true);
      compare(synced, reference, "BatchNorm network with SyncBatchNorm, 20 SGD steps (running statistics included)");
      manual_seed(0);
      auto per_rank = batchnorm_net();
      dist::DataParallel<float> ddp_local(per_rank);
      run_sgd(per_rank, set, batch, steps, &ddp_local, true);
      bool finite = true;
      for (float v : flat_state(per_rank)) finite = finite && std::isfinite(v);
      check(finite, "per-rank BatchNorm trains to finite weights");
      if (world > 1) check(relative_difference(per_rank, reference) > 1e-6, "per-rank BatchNorm statistics differ from one process's");
    }
    {  // a checkpoint records the world size; another size is refused
      const std::string path = std::string(argc > 1 ? argv[1] : ".") + "/dist_checkpoint.safetensors";
      manual_seed(0);
      auto net = models::tutorial_net<float>(6, 16);
      dist::DataParallel<float> ddp(net);
      run_sgd(net, set, batch, 2, &ddp, false, path);
      MPI_Barrier(MPI_COMM_WORLD);
      data::BatchLoader loader(set, batch, true, 3);
      SGD<float> sgd(net.trainable_parameters(), SGDOptions(0.02).momentum(0.9));
      train::Trainer alone(net, sgd, loader);  // no set_distributed: one process
      if (world > 1) {
        try {
          alone.load_checkpoint(path);
          check(false, "a checkpoint of " + std::to_string(world) + " ranks is refused by one process");
        } catch (const DataError& e) {
          check(std::string(e.what()).find("written by " + std::to_string(world) + " processes, this run has 1") != std::string::npos,
                std::string("the refusal names both sizes: ") + e.what());
        }
      } else {
        alone.load_checkpoint(path);  // same size: accepted
        check(true, "a one-process checkpoint resumes in one process");
      }
    }
  } catch (const std::exception& e) {
    return mpi.abort("data_parallel_test", e.what());
  }
  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) std::printf("%d ranks: %d checks per rank, %d failed in all\n", world, checks, total);
  return total == 0 ? 0 : 1;
}
