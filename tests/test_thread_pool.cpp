// The pool the direct kernels run on (core/thread_pool.hpp): every unit exactly once, on a thread
// index the caller sized its buffers for, whether the workers are spinning, asleep or late; nested
// and concurrent jobs run on their calling thread. The kernels' results on 1 and 2 threads
// (same bits) are checked in test_conv_direct.cpp.
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <headnet/core/thread_pool.hpp>

namespace {

using headnet::detail::ThreadPool;

// Runs `jobs` jobs of 1-40 units on 1-4 threads, some after a pause long enough for the workers to
// fall asleep, some with a slow unit; counts the units run more or less than once and the thread
// indices out of range.
void check_jobs(int jobs, int& wrong_counts, int& wrong_threads) {
  auto& pool = ThreadPool::instance();
  for (int job = 0; job < jobs; ++job) {
    const int units = 1 + job % 40, threads = 1 + job % 4;
    std::vector<std::atomic<int>> runs(static_cast<std::size_t>(units));
    std::atomic<int> bad_thread{0};
    auto body = [&](int t, int u) {
      if (t < 0 || t >= threads) bad_thread.fetch_add(1);
      runs[static_cast<std::size_t>(u)].fetch_add(1);
      if (job % 97 == 0 && u == units - 1) std::this_thread::sleep_for(std::chrono::microseconds(200));
    };
    pool.run(threads, units, body);
    for (auto& r : runs) wrong_counts += r.load() != 1;
    wrong_threads += bad_thread.load();
    if (job % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // workers go to sleep
  }
}

}  // namespace

TEST_CASE("The pool runs every unit once, on a thread the caller asked for", "[thread_pool]") {
  int wrong_counts = 0, wrong_threads = 0;
  check_jobs(3000, wrong_counts, wrong_threads);
  CHECK(wrong_counts == 0);
  CHECK(wrong_threads == 0);
  CHECK(ThreadPool::instance().workers() >= 1);  // the jobs above asked for up to 4 threads
  int nothing = 0;
  auto never = [&](int, int) { ++nothing; };
  ThreadPool::instance().run(4, 0, never);
  CHECK(nothing == 0);
}

TEST_CASE("A job started inside a job runs on the calling thread", "[thread_pool]") {
  auto& pool = ThreadPool::instance();
  std::atomic<int> inner_runs{0}, inner_elsewhere{0};
  auto outer = [&](int, int) {
    const auto caller = std::this_thread::get_id();
    auto inner = [&](int t, int) {
      inner_runs.fetch_add(1);
      if (t != 0 || std::this_thread::get_id() != caller) inner_elsewhere.fetch_add(1);
    };
    pool.run(2, 5, inner);
  };
  pool.run(2, 8, outer);
  CHECK(inner_runs.load() == 40);
  CHECK(inner_elsewhere.load() == 0);
}

TEST_CASE("Two threads starting jobs at once each get all their units run", "[thread_pool]") {
  int counts[2] = {0, 0}, threads[2] = {0, 0};
  std::thread other([&] { check_jobs(1000, counts[1], threads[1]); });
  check_jobs(1000, counts[0], threads[0]);
  other.join();
  CHECK(counts[0] + counts[1] == 0);
  CHECK(threads[0] + threads[1] == 0);
}
