// headnet/core/thread_pool.hpp: the threads the direct convolution kernels run on.
//
// Why not an OpenMP parallel region: at the end of a region libgomp's calling thread waits for
// every thread of the team, including one that had nothing to do because it was still waking up.
// A thread that sleeps between regions (after the bounded spin of bound_openmp_spinning) takes
// 30-90 us to wake on a virtual machine (measured on AMD EPYC, 2 cores: an empty region after
// 50 us of serial work cost 29 us at the median, 86 us at the 90th percentile), and a training
// step at batch 4 has several regions after serial work (the linear layers, the optimiser, the
// weight packing). Longer spinning hides the wake-up when the machine is idle but, with another
// program running, spinning threads take the cores that the threads doing the work need
// (docs/benchmarks.md, "Under load").
//
// ThreadPool::run(threads, units, body) instead hands out units one at a time to whoever asks:
// the calling thread starts at once and takes units until none are left; a worker that wakes late
// finds none and goes back to waiting, and the caller only ever waits for units a worker has
// actually started. Workers spin a little while after a job (long enough to bridge the serial
// gaps of a training step; after the first 50 us yielding their core between polls to any thread
// that wants it) and then sleep; a thread that finds, while spinning, that the system's scheduler
// took its core for a while (another program wants the CPU) stops spinning for the next
// `contention_hold_ms` and sleeps at once instead.
//
// What a body must be: it may not throw (as in an OpenMP region, a throw from a worker calls
// std::terminate) and may not start another pool job (a nested run, or a run from a second
// thread while the pool is busy, runs its units on the calling thread alone, thread index 0).
// Nothing here allocates after the workers exist. In a child of fork() the caller runs every unit.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <immintrin.h>
#endif
#if defined(__unix__)
#include <sys/resource.h>
#include <unistd.h>
#endif

namespace headnet {
namespace detail {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

class ThreadPool {
 public:
  /// How long an idle thread spins before it sleeps: enough for the gaps between the parallel
  /// passes of a training step (up to about 75 us on the wide network at batch 4). Environment
  /// variable HEADNET_POOL_SPIN_US overrides it (0: sleep at once).
  static constexpr int default_spin_us = 200;
  /// For the first polling_us of a spin (most gaps of a step) a thread only polls; after that it
  /// offers its core to any other thread that wants it (sched_yield) between polls, such as an
  /// OpenMP worker woken for the next pass (BatchNorm, Winograd), which a polling pool thread would
  /// otherwise keep off its core for the rest of the spin (an OpenMP region cost 50-100 us more in
  /// headnet-wakeup with the pool's jobs interleaved).
  static constexpr int polling_us = 50;
  /// A thread that was off its core for this long while spinning concludes that another program
  /// wants the CPU...
  static constexpr int preempted_us = 500;
  /// ...and the pool stops spinning for this long (renewed while it goes on).
  static constexpr int contention_hold_ms = 100;
  /// Units and threads a job can have (they share one 64-bit word with the job's number).
  static constexpr int max_units = 0xFFFF, max_threads = 63;

  static ThreadPool& instance() {
    static ThreadPool pool;
    return pool;
  }

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  ~ThreadPool() {
#if defined(__unix__)
    if (getpid() != owner_) return;  // a child of fork(): the workers are not in this process (leaked)
#endif
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (auto& worker : *workers_) worker.join();
    delete workers_;
  }

  /// Calls body(thread, unit) once for every unit in [0, units), on the calling thread (thread 0)
  /// and up to threads - 1 workers (thread 1, 2, ...), and returns when all have returned. Which
  /// thread runs which unit depends on timing; what a unit computes must not.
  template <typename Body>
  void run(int threads, int units, Body& body) {
    if (units <= 0) return;
    threads = std::min({threads, units, max_threads});
    std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
    if (threads <= 1 || inside_job() || !busy.owns_lock() || units > max_units) {
      for (int u = 0; u < units; ++u) body(0, u);
      return;
    }
    grow(threads - 1);
    call_ = [](void* b, int t, int u) { (*static_cast<Body*>(b))(t, u); };
    context_ = &body;
    done_.store(0);
    const std::uint64_t job = (state_.load() >> 38) + 1;
    state_.store(job << 38 | std::uint64_t(threads) << 32 | std::uint64_t(units) << 16);
    if (sleepers_.load() > 0) {
      { std::lock_guard<std::mutex> lock(mutex_); }
      wake_.notify_all();
    }
    inside_job() = true;
    take_units(job, 0);
    inside_job() = false;
    // Wait for the units the workers took: spin, then sleep until the last one finishes.
    auto finished = [&] { return done_.load(std::memory_order_acquire) == units; };
    if (!finished() && !spin_until(finished)) {
      std::unique_lock<std::mutex> lock(mutex_);
      caller_waiting_.store(true);
      finished_.wait(lock, [&] { return done_.load() == units; });
      caller_waiting_.store(false);
    }
  }

  /// Workers started so far (they are started the first time a job needs them).
  int workers() const { return static_cast<int>(workers_->size()); }

 private:
  // state_: bits 38-63 the job's number, 32-37 its threads, 16-31 its units, 0-15 the next unit
  // to hand out. A unit is taken by a compare-and-swap on the whole word, so a worker that read an
  // earlier job's word takes nothing from a later job.
  static int threads_of(std::uint64_t s) { return int(s >> 32 & 63); }
  static int units_of(std::uint64_t s) { return int(s >> 16 & 0xFFFF); }
  static int next_of(std::uint64_t s) { return int(s & 0xFFFF); }

  ThreadPool() {
    if (const char* s = std::getenv("HEADNET_POOL_SPIN_US")) spin_us_ = std::max(0, std::atoi(s));
  }

  static bool& inside_job() {
    thread_local bool inside = false;
    return inside;
  }

  // Takes and runs units of job `job` until none are left.
  void take_units(std::uint64_t job, int thread) {
    std::uint64_t s = state_.load(std::memory_order_acquire);
    while (s >> 38 == job && thread < threads_of(s) && next_of(s) < units_of(s)) {
      if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      // Unit next_of(s) is ours: the job cannot finish, nor call_ and context_ change, before it is done.
      call_(context_, thread, next_of(s));
      if (done_.fetch_add(1) + 1 == units_of(s) && caller_waiting_.load()) {  // seq_cst: see run()
        { std::lock_guard<std::mutex> lock(mutex_); }
        finished_.notify_one();
      }
      s = state_.load(std::memory_order_acquire);
    }
  }

  // Spins until ready() or the spin budget runs out; false if it ran out. Notes contention.
  template <typename Ready>
  bool spin_until(Ready ready) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    if (start < contended_until()) return ready();
    auto last = start;
    bool yielding = false;
    for (int i = 1;; ++i) {
      if (ready()) return true;
      if (yielding)
        std::this_thread::yield();
      else
        cpu_relax();
      if (yielding || i % 64 == 0) {
        const auto now = clock::now();
        if (now - last > std::chrono::microseconds(preempted_us) && preempted_in_this_system()) {
          contended_until_.store((now + std::chrono::milliseconds(contention_hold_ms)).time_since_epoch().count(),
                                 std::memory_order_relaxed);
          return ready();
        }
        if (now - start > std::chrono::microseconds(spin_us_)) return ready();
        yielding = now - start > std::chrono::microseconds(polling_us);
        last = now;
      }
    }
  }

  // Whether this thread was switched out for another thread of this system since the last call:
  // its involuntary context switches (Linux: getrusage(RUSAGE_THREAD)). A virtual machine's host
  // also takes cores away, but the guest's scheduler does not see that and spinning there costs
  // no other program anything; taking it for contention put the pool in sleep-at-once mode on
  // the noisy 2-core EPYC every few seconds. Elsewhere, every long absence counts.
  static bool preempted_in_this_system() {
#if defined(RUSAGE_THREAD)
    thread_local long last = -1;
    rusage usage{};
    if (getrusage(RUSAGE_THREAD, &usage) != 0) return true;
    const bool preempted = last >= 0 && usage.ru_nivcsw > last;
    last = usage.ru_nivcsw;
    return preempted;
#else
    return true;
#endif
  }

  std::chrono::steady_clock::time_point contended_until() const {
    return std::chrono::steady_clock::time_point(
        std::chrono::steady_clock::duration(contended_until_.load(std::memory_order_relaxed)));
  }

  // Starts workers up to `count`. In a child of fork() the parent's workers do not exist and none
  // are started: the caller runs every unit.
  void grow(int count) {
    if (static_cast<int>(workers_->size()) >= count) return;  // every job asks: no system call then
#if defined(__unix__)
    if (getpid() != owner_) return;
#endif
    while (static_cast<int>(workers_->size()) < count) {
      const int index = static_cast<int>(workers_->size()) + 1;
      workers_->emplace_back([this, index] { work(index); });
    }
  }

  void work(int index) {
    std::uint64_t seen = state_.load() >> 38;
    for (;;) {
      auto arrived = [&] { return state_.load() >> 38 != seen || stop_.load(); };  // seq_cst: see run()
      if (!spin_until(arrived)) {
        std::unique_lock<std::mutex> lock(mutex_);
        sleepers_.fetch_add(1);
        wake_.wait(lock, arrived);
        sleepers_.fetch_sub(1);
        lock.unlock();
        preempted_in_this_system();  // a new baseline: switches while asleep are not contention
      }
      if (stop_.load()) return;
      seen = state_.load(std::memory_order_acquire) >> 38;
      inside_job() = true;
      take_units(seen, index);
      inside_job() = false;
    }
  }

  std::atomic<std::uint64_t> state_{0};
  std::atomic<int> done_{0}, sleepers_{0};
  std::atomic<bool> stop_{false}, caller_waiting_{false};
  std::atomic<std::chrono::steady_clock::rep> contended_until_{0};
  void (*call_)(void*, int, int) = nullptr;
  void* context_ = nullptr;
  int spin_us_ = default_spin_us;
  std::mutex run_mutex_, mutex_;
  std::condition_variable wake_, finished_;
  std::vector<std::thread>* workers_ = new std::vector<std::thread>;  // leaked in a child of fork()
#if defined(__unix__)
  pid_t owner_ = getpid();
#endif
};

}  // namespace detail
}  // namespace headnet
