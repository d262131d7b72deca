// headnet/core/parallel.hpp: thread count control.
//
// headnet parallelises with OpenMP. Kernels split a batch across threads and keep Eigen's GEMM
// single-threaded inside each thread (Eigen does not nest inside an OpenMP region); with a single
// image they let Eigen use the threads instead. set_num_threads() sets both, so the one setting a
// user changes is the one that takes effect.
//
// On a shared machine OpenMP's waiting threads matter as much as its working ones: see
// bound_openmp_spinning below. The direct convolution kernels run on a pool of headnet's own
// threads instead (core/thread_pool.hpp), with as many threads as num_threads() says.
#pragma once

#include <cstdlib>

#include <Eigen/Core>

#if defined(__linux__)
#include <unistd.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

namespace headnet {

/// Sets the threads OpenMP and Eigen use (at least 1).
inline void set_num_threads(int threads) {
  if (threads < 1) threads = 1;
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
  Eigen::setNbThreads(threads);
}

/// The threads a parallel region gets.
inline int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// The calling thread's index in its OpenMP parallel region (0 outside one, and on the threads of
/// core/thread_pool.hpp, whose jobs are given their thread's index instead).
inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/// GOMP_SPINCOUNT that bound_openmp_spinning sets: how many times an idle OpenMP thread polls
/// before it sleeps. libgomp's default (300,000 polls, several milliseconds) keeps both threads
/// busy between parallel regions; with another CPU-bound process on the machine, a thread then
/// spins at a barrier for a peer that the scheduler has taken off its core, and training slowed
/// 4-8x where a fair share is 2x. Measured in docs/benchmarks.md ("Under load"): with this bound a
/// contended run stays near its fair share (1.7x); idle, the long kernels lose nothing measurable
/// and the smallest network up to about 13% in one of two repeats.
constexpr const char* bounded_spin_count = "1000";

/// Restarts the program with OpenMP's idle spinning bounded (GOMP_SPINCOUNT=bounded_spin_count),
/// unless the user already chose a wait policy (OMP_WAIT_POLICY or GOMP_SPINCOUNT set) or set
/// HEADNET_KEEP_OPENMP_SPIN. Call it first thing in main(), before anything starts a thread:
/// libgomp reads its wait policy once, when it is loaded, so a process can only change it by
/// starting again with the variable set (execv of /proc/self/exe with the same arguments; the
/// process keeps its id). Does nothing where that is not possible (not Linux, exec fails). The
/// trainers call it; programs that embed headnet may too.
inline void bound_openmp_spinning(char** argv) {
#if defined(__linux__) && defined(_OPENMP)
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT") || std::getenv("HEADNET_KEEP_OPENMP_SPIN"))
    return;
  if (setenv("GOMP_SPINCOUNT", bounded_spin_count, 1) != 0) return;
  execv("/proc/self/exe", argv);
  unsetenv("GOMP_SPINCOUNT");  // exec failed: carry on as we were
#else
  (void)argv;
#endif
}

}  // namespace headnet
