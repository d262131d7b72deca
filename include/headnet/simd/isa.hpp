// headnet/simd/isa.hpp: which vector instruction set the kernels use, chosen at run time.
//
// The vector kernels (kernels/conv2d_direct.hpp) are compiled once per instruction set in the same
// binary, as PyTorch's DispatchStub compiles its CPU kernels once per capability: g++ builds each
// copy for its own target (#pragma GCC target), so a binary built for plain x86-64 or x86-64-v3
// still runs 512-bit code on a CPU that has AVX-512, and -march=native is not needed to be fast.
// The copy that runs is the widest the CPU has (cpuid, with the operating system's consent to use
// the wide registers), unless overridden:
//   - the environment variable HEADNET_ISA=portable|avx2|avx512 (read once, at first use), which is
//     how the tests and CI force the narrower paths on a wide machine;
//   - simd::set_isa() for the whole process, or Conv2d::set_isa() for one layer.
// Asking for a path the CPU cannot run is an error naming it, never an illegal instruction.
//
//   portable  plain C++, 8 floats a register: any CPU, any compiler; with g++ and clang on the
//             compiler's generic vectors (SSE, NEON), elsewhere on arrays it may vectorise.
//   avx2      256-bit AVX2 + FMA (Intel Haswell, AMD Zen and later).
//   avx512    512-bit AVX-512F (Intel Skylake-SP, AMD Zen 4 and later).
// With compilers other than g++ (clang), a path is compiled only when the compiler flags already
// enable its instructions (-mavx2 -mfma, -mavx512f); compiled() says which are.
#pragma once

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#define HEADNET_SIMD_X86 1
#else
#define HEADNET_SIMD_X86 0
#endif

// Whether each x86 path is compiled in (see the top of the file).
#if HEADNET_SIMD_X86 && defined(__GNUC__) && !defined(__clang__)
#define HEADNET_SIMD_AVX2 1
#define HEADNET_SIMD_AVX512 1
#else  // 0 or 1 here, not an expression with defined(): these also appear outside #if
#if HEADNET_SIMD_X86 && defined(__AVX2__) && defined(__FMA__)
#define HEADNET_SIMD_AVX2 1
#else
#define HEADNET_SIMD_AVX2 0
#endif
#if HEADNET_SIMD_X86 && defined(__AVX512F__)
#define HEADNET_SIMD_AVX512 1
#else
#define HEADNET_SIMD_AVX512 0
#endif
#endif

namespace headnet {
namespace simd {

/// An instruction set the vector kernels are compiled for, narrowest first.
enum class Isa { portable = 0, avx2 = 1, avx512 = 2 };

/// Every Isa, narrowest first.
inline std::vector<Isa> all_isas() { return {Isa::portable, Isa::avx2, Isa::avx512}; }

/// "portable", "avx2" or "avx512".
inline const char* name(Isa isa) {
  switch (isa) {
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    default: return "portable";
  }
}

/// Floats in one vector register of `isa` (the portable path's "register" holds 8).
inline int vector_width(Isa isa) { return isa == Isa::avx512 ? 16 : 8; }

/// The Isa called `text`; throws std::invalid_argument naming the choices otherwise.
inline Isa parse_isa(const std::string& text) {
  for (Isa isa : all_isas())
    if (text == name(isa)) return isa;
  throw std::invalid_argument("unknown instruction set '" + text + "' (expected portable, avx2 or avx512)");
}

/// Whether this build contains the kernels for `isa`.
inline bool compiled(Isa isa) {
  switch (isa) {
    case Isa::avx2: return HEADNET_SIMD_AVX2;
    case Isa::avx512: return HEADNET_SIMD_AVX512;
    default: return true;
  }
}

/// Whether this CPU (and its operating system) can run `isa`'s instructions.
inline bool cpu_supports(Isa isa) {
#if HEADNET_SIMD_X86 && defined(__GNUC__)
  // __builtin_cpu_supports reads cpuid once and also checks XGETBV, i.e. that the OS saves the
  // wide registers on a context switch.
  switch (isa) {
    case Isa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return true;
  }
#else
  return isa == Isa::portable;
#endif
}

/// Whether `isa` can run here: compiled in and supported by the CPU.
inline bool available(Isa isa) { return compiled(isa) && cpu_supports(isa); }

/// Whether the build's compiler flags already enable `isa`'s instructions (`-march=native` on such
/// a CPU, `-mavx2 -mfma`): then the code compiled for the flags is that instruction set's code too.
inline bool flags_enable(Isa isa) {
  switch (isa) {
    case Isa::avx512:
#if defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
      return true;
#else
      return false;
#endif
    case Isa::avx2:
#if defined(__AVX2__) && defined(__FMA__)
      return true;
#else
      return false;
#endif
    default: return true;
  }
}

/// Which copy to call, for `isa`, of loops written in plain C++ that the compiler vectorises and
/// that are compiled once per instruction set (Winograd's transforms, BatchNorm, the activations):
/// `isa`'s own where the build's flags do not reach it, so that a binary built without `-march`
/// still runs them on the CPU's vectors; where they do, the portable copy, which is compiled for
/// those flags and tuning and can be inlined.
inline Isa loops_copy(Isa isa) { return flags_enable(isa) ? Isa::portable : isa; }

/// The widest Isa available here.
inline Isa best_isa() {
  if (available(Isa::avx512)) return Isa::avx512;
  if (available(Isa::avx2)) return Isa::avx2;
  return Isa::portable;
}

namespace detail {

inline void require_available(Isa isa, const std::string& who) {
  if (available(isa)) return;
  throw std::runtime_error(who + " asks for the " + name(isa) + " kernels, but " +
                           (compiled(isa) ? "this CPU does not support them" : "this build does not contain them") +
                           " (available here: best is " + name(best_isa()) + ")");
}

// -1: not chosen yet (the environment is read at first use).
inline std::atomic<int>& chosen_isa() {
  static std::atomic<int> isa{-1};
  return isa;
}

}  // namespace detail

/// The Isa the kernels use unless a layer forces another: HEADNET_ISA if set, else best_isa().
/// Throws std::runtime_error if HEADNET_ISA names an unknown or unavailable path.
inline Isa active_isa() {
  int isa = detail::chosen_isa().load(std::memory_order_relaxed);
  if (isa >= 0) return static_cast<Isa>(isa);
  Isa chosen = best_isa();
  if (const char* env = std::getenv("HEADNET_ISA"); env && *env) {
    try {
      chosen = parse_isa(env);
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(std::string("HEADNET_ISA: ") + e.what());
    }
    detail::require_available(chosen, "HEADNET_ISA");
  }
  detail::chosen_isa().store(static_cast<int>(chosen), std::memory_order_relaxed);
  return chosen;
}

/// Makes `isa` the kernels' default for the whole process (overrides HEADNET_ISA). Throws
/// std::runtime_error if it cannot run here.
inline void set_isa(Isa isa) {
  detail::require_available(isa, "simd::set_isa");
  detail::chosen_isa().store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace simd
}  // namespace headnet
