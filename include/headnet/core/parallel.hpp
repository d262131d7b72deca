// headnet/core/parallel.hpp: thread count control.
//
// headnet parallelises with OpenMP. Kernels split a batch across threads and keep Eigen's GEMM
// single-threaded inside each thread (Eigen does not nest inside an OpenMP region); with a single
// image they let Eigen use the threads instead. set_num_threads() sets both, so the one setting a
// user changes is the one that takes effect.
#pragma once

#include <Eigen/Core>

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

/// The calling thread's index in its parallel region (0 outside one).
inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace headnet
