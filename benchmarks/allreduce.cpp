// headnet-allreduce: how long MPI_Allreduce (sum, float) of each network's gradients takes between
// the ranks of this run; the measured side of docs/distributed.md's scaling model.
//   mpirun -np 2 build/benchmarks/headnet-allreduce [--json FILE]
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <headnet/dist/mpi.hpp>
#include <headnet/models/airbench.hpp>
#include <headnet/models/resnet.hpp>
#include <headnet/models/tutorial_net.hpp>

int main(int argc, char** argv) {
  headnet::dist::Session mpi(argc, argv, true);
  std::string json_path = argc > 2 && std::string(argv[1]) == "--json" ? argv[2] : "";
  // The gradients of the tutorial, wide, fast-recipe and ResNet-18 networks: their parameter counts.
  auto count = [](headnet::Layer<float>&& net) {
    long n = 0;
    for (const auto& p : net.parameters()) n += long(p.value.numel());
    return n;
  };
  const std::vector<std::pair<const char*, long>> nets{{"tutorial", count(headnet::models::tutorial_net<float>(6, 16))},
                                                        {"wide", count(headnet::models::tutorial_net<float>(128, 16))},
                                                        {"fast", count(headnet::models::airbench<float>())},
                                                        {"resnet18", count(headnet::models::resnet18_cifar<float>())}};
  std::FILE* json = mpi.main() && !json_path.empty() ? std::fopen(json_path.c_str(), "w") : nullptr;
  if (json) std::fprintf(json, "[\n");
  if (mpi.main()) std::printf("%d ranks\n%-9s %12s %12s %14s\n", mpi.size(), "network", "parameters", "MB", "median ms");
  for (std::size_t k = 0; k < nets.size(); ++k) {
    std::vector<float> buffer(std::size_t(nets[k].second), 1.0f);
    std::vector<double> times;
    for (int r = 0; r < 25; ++r) {
      MPI_Barrier(MPI_COMM_WORLD);
      const double start = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, buffer.data(), int(buffer.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      const double t = MPI_Wtime() - start;
      if (r >= 5) times.push_back(t);  // the first runs set up connections
    }
    double slowest = 0;  // the collective ends when its slowest rank does
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    MPI_Reduce(&median, &slowest, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (mpi.main()) {
      std::printf("%-9s %12ld %12.2f %14.3f\n", nets[k].first, nets[k].second, nets[k].second * 4.0 / 1e6, slowest * 1e3);
      if (json)
        std::fprintf(json, "  {\"network\": \"%s\", \"parameters\": %ld, \"ranks\": %d, \"median_seconds\": %.9f}%s\n", nets[k].first,
                     nets[k].second, mpi.size(), slowest, k + 1 < nets.size() ? "," : "");
    }
  }
  if (json) std::fprintf(json, "]\n"), std::fclose(json);
  return 0;
}
