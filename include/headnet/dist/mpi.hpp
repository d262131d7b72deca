// headnet/dist/mpi.hpp: the MPI session of a data-parallel run (Open MPI from Debian).
//
//   int main(int argc, char** argv) {
//     dist::Session mpi(argc, argv);          // MPI_Init when started by mpirun, else one process
//     ...
//     catch (const std::exception& e) { mpi.abort(e.what()); }   // ends every rank, not just this
//   }
//
// Only code that links MPI includes this folder (CMake target headnet::dist, HEADNET_WITH_MPI);
// the rest of headnet knows nothing of it. The session makes MPI report errors instead of aborting
// silently (MPI_ERRORS_RETURN, turned into headnet::Error), and abort() takes the whole job down
// with a message naming this rank, so a failing rank never leaves the others waiting in a
// collective. A rank that dies outright (SIGKILL, out of memory) is mpirun's to notice: it ends the
// job and names the rank ("mpirun noticed that process rank 1 ... exited on signal 9").
#pragma once

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "headnet/core/error.hpp"

namespace headnet {
namespace dist {

/// Whether this process was started by mpirun / mpiexec (Open MPI, MPICH or a PMI launcher).
inline bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

/// Throws headnet::Error naming `what` and MPI's message when `rc` is not MPI_SUCCESS.
inline void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, text, &length);
  throw Error(std::string(what) + " failed: " + std::string(text, std::size_t(length)));
}

/// MPI for the lifetime of the object: initialised (when launched by mpirun, or when `force`)
/// with one thread calling MPI (the OpenMP threads never do), finalised at the end.
class Session {
 public:
  /// Starts MPI when launched by mpirun (or `force`); otherwise a session of one process without MPI.
  Session(int& argc, char**& argv, bool force = false) {
    if (!force && !launched_by_mpirun()) return;
    int provided = 0;
    check_mpi(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    active_ = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    if (active_) MPI_Finalize();
  }

  /// Whether MPI is running (false: a plain single process).
  bool active() const { return active_; }
  /// This process's rank (0 without MPI).
  int rank() const { return rank_; }
  /// The number of processes (1 without MPI).
  int size() const { return size_; }
  /// Whether this is rank 0, the one that prints and writes files.
  bool main() const { return rank_ == 0; }

  /// Prints "`program`: error on rank R of N: message" and ends every rank of the job with `code`
  /// (MPI_Abort); without MPI, just returns `code` for main() to return.
  int abort(const std::string& program, const std::string& message, int code = 1) {
    if (!active_) {
      std::fprintf(stderr, "%s: error: %s\n", program.c_str(), message.c_str());
      return code;
    }
    std::fprintf(stderr, "%s: error on rank %d of %d: %s\n", program.c_str(), rank_, size_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; in case an implementation does
  }

 private:
  bool active_ = false;
  int rank_ = 0, size_ = 1;
};

}  // namespace dist
}  // namespace headnet
