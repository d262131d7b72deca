// headnet-wakeup: what starting parallel work costs after serial work, OpenMP against headnet's
// own pool (core/thread_pool.hpp), on 2 threads.
//
// A training step at small batch alternates serial work (the linear layers, the loss, the
// optimiser) with short parallel passes; a thread that went to sleep during the serial gap has to
// be woken for the next pass. For each gap: --repeats times, the calling thread busy-waits the gap,
// then runs 4 units of --unit-us microseconds of busy work on 2 threads as an OpenMP region
// (schedule(dynamic, 1)); then the same as ThreadPool jobs. Printed is the median and 90th
// percentile of (elapsed - 2 units), the overhead over a perfect split. OpenMP's spinning is bounded
// as the trainers bound it (GOMP_SPINCOUNT=1000, core/parallel.hpp) unless the environment chose.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <CLI/CLI.hpp>

#include <headnet/core/parallel.hpp>
#include <headnet/core/thread_pool.hpp>

namespace {

void busy_wait(double us) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() < us) {
  }
}

double micros_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  headnet::bound_openmp_spinning(argv);
  CLI::App app{"Overhead of starting 2-thread work after a serial gap: OpenMP and headnet's pool", "headnet-wakeup"};
  std::vector<double> gaps{0, 20, 50, 100, 300, 1000};
  int repeats = 2000;
  double unit_us = 25;
  app.add_option("--gaps", gaps, "Serial gaps before each job, microseconds")->capture_default_str();
  app.add_option("--repeats", repeats, "Jobs per gap")->capture_default_str()->check(CLI::Range(10, 1000000));
  app.add_option("--unit-us", unit_us, "Busy work per unit (4 units a job), microseconds")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  headnet::set_num_threads(2);
  auto& pool = headnet::detail::ThreadPool::instance();
  auto unit = [&](int, int) { busy_wait(unit_us); };
  std::printf("%8s %22s %22s\n", "gap us", "OpenMP median / p90", "pool median / p90");
  for (double gap : gaps) {
    // One kind of job at a time: the other kind's idle threads would compete for the cores.
    std::vector<double> openmp, pooled;
    for (int r = 0; r < repeats; ++r) {
      busy_wait(gap);
      const auto start = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(dynamic, 1) num_threads(2)
      for (int u = 0; u < 4; ++u) busy_wait(unit_us);
      openmp.push_back(micros_since(start) - 2 * unit_us);
    }
    busy_wait(2000);  // OpenMP's threads go to sleep
    for (int r = 0; r < repeats; ++r) {
      busy_wait(gap);
      const auto start = std::chrono::steady_clock::now();
      pool.run(2, 4, unit);
      pooled.push_back(micros_since(start) - 2 * unit_us);
    }
    busy_wait(2000);  // the pool's threads go to sleep
    auto at = [](std::vector<double>& v, double q) {
      std::sort(v.begin(), v.end());
      return v[static_cast<std::size_t>(q * double(v.size() - 1))];
    };
    std::printf("%8.0f %10.1f / %9.1f %10.1f / %9.1f\n", gap, at(openmp, 0.5), at(openmp, 0.9), at(pooled, 0.5),
                at(pooled, 0.9));
    std::fflush(stdout);
  }
  return 0;
}
