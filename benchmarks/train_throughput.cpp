// headnet-train-throughput: images/s of whole training steps (forward, loss, backward, SGD step)
// for the tutorial network, its wide variant, the fast recipe's network (airbench, widths 64/256/256)
// and ResNet-18 (CIFAR variant), on synthetic data. With --json, also the parameter count (the
// gradient size a data-parallel step must allreduce; docs/distributed.md).
//
// For each (network, batch, threads): a warm-up of --warmup steps, then --repeats timed runs of
// --steps steps each; prints the median and the spread, and with --json the raw figures.
// OpenMP's idle spinning is bounded as the trainers bound it (bound_openmp_spinning,
// core/parallel.hpp), so that the figures are the trainers'; OMP_WAIT_POLICY or GOMP_SPINCOUNT, or
// HEADNET_KEEP_OPENMP_SPIN=1 for libgomp's default, choose otherwise.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <headnet/headnet.hpp>
#include <headnet/models/airbench.hpp>
#include <headnet/models/resnet.hpp>
#include <headnet/models/tutorial_net.hpp>

int main(int argc, char** argv) {
  headnet::bound_openmp_spinning(argv);  // measure what the trainers run
  CLI::App app{"Training throughput of the tutorial network and its wide variant", "headnet-train-throughput"};
  std::vector<std::string> nets{"tutorial", "wide"};
  std::vector<int> batches{4, 32, 128}, thread_counts{1, 2};
  int steps = 0, warmup = 0, repeats = 5;
  double seconds = 0.5;
  std::string json_path, algorithm_name = "automatic";
  app.add_option("--nets", nets, "tutorial (conv1 6), wide (conv1 128), fast (airbench) and/or resnet18")->capture_default_str();
  app.add_option("--batch", batches, "Batch sizes")->capture_default_str();
  app.add_option("--threads", thread_counts, "Thread counts")->capture_default_str();
  app.add_option("--steps", steps, "Steps per timed run (0: about --seconds)")->capture_default_str();
  app.add_option("--seconds", seconds, "Target duration of a timed run when --steps is 0")->capture_default_str();
  app.add_option("--warmup", warmup, "Warm-up steps (0: as many as one timed run)")->capture_default_str();
  app.add_option("--repeats", repeats, "Timed runs; the median is reported")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--json", json_path, "Also write the results to this JSON file");
  app.add_option("--algorithm", algorithm_name,
                 "Convolution path: automatic, im2col_gemm, direct, winograd_4x4, winograd_3x3 or winograd_2x2")
      ->capture_default_str()
      ->check(CLI::IsMember({"automatic", "im2col_gemm", "direct", "winograd_4x4", "winograd_3x3", "winograd_2x2"}));
  CLI11_PARSE(app, argc, argv);

  using namespace headnet;
  const kernels::ConvAlgorithm algorithm = kernels::parse_conv_algorithm(algorithm_name);
  nlohmann::json results = nlohmann::json::array();
  std::printf("%-9s %6s %8s %14s %14s %14s\n", "network", "batch", "threads", "median img/s", "min img/s", "max img/s");
  for (const auto& name : nets) {
    if (name != "tutorial" && name != "wide" && name != "fast" && name != "resnet18") {
      std::fprintf(stderr, "unknown network '%s' (tutorial, wide, fast or resnet18)\n", name.c_str());
      return 2;
    }
    for (int batch : batches) {
      for (int threads : thread_counts) {
        set_num_threads(threads);
        manual_seed(0);
        auto net = name == "fast"       ? models::airbench<float>()
                   : name == "resnet18" ? models::resnet18_cifar<float>()
                                        : models::tutorial_net<float>(name == "wide" ? 128 : 6, 16);
        set_conv_algorithm(net, algorithm);
        std::int64_t parameters = 0;
        for (const auto& p : net.parameters()) parameters += p.value.numel();
        SGD<float> sgd(net.parameters(), SGDOptions(0.001).momentum(0.9));
        CrossEntropyLoss<float> criterion;
        Generator gen(1);
        Tensor<float> images({batch, 3, 32, 32});
        for (float& v : images) v = float(gen.uniform(-1, 1));
        std::vector<std::int32_t> labels(static_cast<std::size_t>(batch));
        for (auto& l : labels) l = std::int32_t(gen.below(10));
        auto step = [&] {
          sgd.zero_grad();
          criterion.forward(net.forward(images), labels);
          net.backward(criterion.backward());
          sgd.step();
        };
        auto run = [&](int n) {
          const auto start = std::chrono::steady_clock::now();
          for (int i = 0; i < n; ++i) step();
          return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        };
        int n = steps;
        if (n == 0) {  // calibrate to about `seconds` per run
          n = 1;
          while (run(n) < seconds / 4) n *= 2;
          n *= 4;
        }
        run(warmup ? warmup : n);
        std::vector<double> rates;
        for (int r = 0; r < repeats; ++r) rates.push_back(double(n) * batch / run(n));
        std::sort(rates.begin(), rates.end());
        const double median = rates[rates.size() / 2];
        std::printf("%-9s %6d %8d %14.0f %14.0f %14.0f\n", name.c_str(), batch, threads, median, rates.front(),
                    rates.back());
        std::fflush(stdout);
        results.push_back({{"network", name}, {"batch", batch}, {"threads", threads}, {"steps_per_run", n},
                           {"images_per_second", rates}, {"median", median}, {"parameters", parameters}});
      }
    }
  }
  if (!json_path.empty()) {
    std::FILE* f = std::fopen(json_path.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", json_path.c_str());
      return 1;
    }
    std::fputs(results.dump(2).c_str(), f);
    std::fclose(f);
  }
  return 0;
}
