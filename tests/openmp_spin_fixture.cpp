// Prints the OpenMP wait settings this process runs with after bound_openmp_spinning: the CTest
// test openmp_spinning_is_bounded checks that the program restarted itself with GOMP_SPINCOUNT set,
// and that a user's own choice is left alone.
#include <cstdio>
#include <cstdlib>

#include <headnet/core/parallel.hpp>

int main(int, char** argv) {
  headnet::bound_openmp_spinning(argv);
  const char* spin = std::getenv("GOMP_SPINCOUNT");
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  std::printf("GOMP_SPINCOUNT=%s OMP_WAIT_POLICY=%s\n", spin ? spin : "unset", policy ? policy : "unset");
  return 0;
}
