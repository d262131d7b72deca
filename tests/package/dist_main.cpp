// A user's MPI program built against headnet::dist: a DataParallel over one process (a singleton
// MPI run, started without mpirun) trains like the plain loop.
#include <headnet/dist/data_parallel.hpp>
#include <headnet/headnet.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  using namespace headnet;
  dist::Session mpi(argc, argv, true);
  manual_seed(1);
  Sequential<float> net;
  net.add("fc", Linear<float>(4, 2));
  dist::DataParallel<float> ddp(net);
  SGD<float> sgd(net.parameters(), SGDOptions(0.1));
  CrossEntropyLoss<float> loss;
  Tensor<float> x({2, 4});
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data()[i] = i < 4 ? 1.0f : -1.0f;
  std::vector<std::int32_t> labels{0, 1};
  float first = 0, last = 0;
  for (int step = 0; step < 10; ++step) {
    sgd.zero_grad();
    ddp.before_forward();
    last = loss.forward(net.forward(x), labels);
    if (step == 0) first = last;
    ddp.before_backward();
    net.backward(loss.backward());
    ddp.after_backward();
    sgd.step();
  }
  std::printf("headnet::dist on %d process: loss %.4f -> %.4f\n", mpi.size(), first, last);
  return last < first ? 0 : 1;
}
