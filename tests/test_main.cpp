// Catch2's main, in its own translation unit so that the test files compile quickly.
//
// With HEADNET_ISA naming an instruction set this CPU cannot run, the whole run is skipped (exit 77,
// which CTest reports as "Skipped" under the test's name): kernels_on_avx512 on an AVX2-only machine
// must not pass by testing nothing, nor fail.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <headnet/simd/isa.hpp>

int main(int argc, char* argv[]) {
  if (const char* env = std::getenv("HEADNET_ISA"); env && *env) {
    try {
      const headnet::simd::Isa isa = headnet::simd::parse_isa(env);
      if (!headnet::simd::available(isa)) {
        std::printf("SKIPPED: HEADNET_ISA=%s, but this %s\n", env,
                    headnet::simd::compiled(isa) ? "CPU cannot run it" : "build does not contain it");
        return 77;
      }
      std::printf("Kernels: %s (HEADNET_ISA)\n", env);
    } catch (const std::exception& e) {
      std::printf("HEADNET_ISA: %s\n", e.what());
      return 2;
    }
  }
  return Catch::Session().run(argc, argv);
}
