// headnet/simd/vec.hpp: the few vector operations the kernels are written against, once per
// instruction set (as ggml's GGML_F32_VEC_* macros are).
//
// Each is a struct of static functions over one register type `reg` of `width` floats:
//   zero()              all lanes 0
//   load(p) / loadu(p)  width floats from p (load: p aligned to the register size)
//   store / storeu      the same, the other way
//   broadcast(p)        *p in every lane
//   fma(a, b, c)        a * b + c, one rounding where the hardware fuses it
//   add(a, b)           a + b
//   keep_positive(v, m) v where m > 0, else 0 (a ReLU's backward mask; NaN in m gives 0)
//   hsum(v)             the sum of the lanes
//   pin(v)              keeps v in a register (see below)
// and tile_rows, the rows of a register tile (kernels/conv2d_direct_impl.hpp): each tile keeps
// 2 x tile_rows accumulators, which with the loaded operands must fit the register file (16
// registers for AVX2, 32 for AVX-512; measured in docs/benchmarks.md).
//
// Each struct is compiled for its own target (#pragma GCC target), whatever the flags of the
// translation unit: see simd/isa.hpp.
#pragma once

#include <cstdint>
#include <cstring>

#include "headnet/simd/isa.hpp"

#if HEADNET_SIMD_X86
#include <immintrin.h>
#endif

namespace headnet {
namespace simd {

/// Plain C++, 8 floats a "register": with g++ and clang two generic 4-float vectors, which the
/// compiler maps to the target's own registers (SSE on any x86-64, NEON on AArch64); elsewhere an
/// array of 8 floats, vectorised as far as the compiler manages. (The array ran the direct kernels
/// at 4-33 GFLOP/s where im2col + GEMM ran at 19-63: g++ 12 kept every lane in memory. One 8-float
/// vector would change the calling convention of x86-64 builds without AVX.)
struct Portable {
  static constexpr Isa isa = Isa::portable;  ///< the instruction set
  static constexpr int width = 8;            ///< floats per register
  static constexpr int tile_rows = 6;        ///< rows of a register tile
#if defined(__GNUC__)
  /// Half a "register".
  typedef float half __attribute__((vector_size(16)));
  /// A "register" of 8 floats.
  struct reg {
    half lo, hi;  ///< lanes 0-3 and 4-7
  };
  /// All lanes 0.
  static reg zero() { return reg{half{}, half{}}; }
  /// 8 floats from p.
  static reg loadu(const float* p) {
    reg r;
    std::memcpy(&r, p, sizeof r);
    return r;
  }
  /// 8 floats from p.
  static reg load(const float* p) { return loadu(p); }
  /// 8 floats to p.
  static void storeu(float* p, const reg& v) { std::memcpy(p, &v, sizeof v); }
  /// 8 floats to p.
  static void store(float* p, const reg& v) { storeu(p, v); }
  /// *p in every lane.
  static reg broadcast(const float* p) {
    const half h = half{} + *p;
    return reg{h, h};
  }
  /// a * b + c (one rounding where the compiler contracts it to the target's FMA).
  static reg fma(const reg& a, const reg& b, const reg& c) { return reg{a.lo * b.lo + c.lo, a.hi * b.hi + c.hi}; }
  /// a + b.
  static reg add(const reg& a, const reg& b) { return reg{a.lo + b.lo, a.hi + b.hi}; }
  /// v where m > 0, else 0.
  static reg keep_positive(const reg& v, const reg& m) {
    typedef std::int32_t bits __attribute__((vector_size(16)));
    bits lo, hi;
    std::memcpy(&lo, &v.lo, sizeof lo);
    std::memcpy(&hi, &v.hi, sizeof hi);
    lo &= (m.lo > 0.0f);  // all ones where m > 0 (false for NaN)
    hi &= (m.hi > 0.0f);
    reg r;
    std::memcpy(&r.lo, &lo, sizeof lo);
    std::memcpy(&r.hi, &hi, sizeof hi);
    return r;
  }
  /// The sum of the lanes.
  static float hsum(const reg& v) {
    float s = 0;
    for (int i = 0; i < 4; ++i) s += v.lo[i];
    for (int i = 0; i < 4; ++i) s += v.hi[i];
    return s;
  }
#else
  /// A "register" of 8 floats.
  struct reg {
    float lane[8];  ///< the lanes
  };
  /// All lanes 0.
  static reg zero() { return reg{}; }
  /// 8 floats from p.
  static reg loadu(const float* p) {
    reg r;
    for (int i = 0; i < width; ++i) r.lane[i] = p[i];
    return r;
  }
  /// 8 floats from p.
  static reg load(const float* p) { return loadu(p); }
  /// 8 floats to p.
  static void storeu(float* p, const reg& v) {
    for (int i = 0; i < width; ++i) p[i] = v.lane[i];
  }
  /// 8 floats to p.
  static void store(float* p, const reg& v) { storeu(p, v); }
  /// *p in every lane.
  static reg broadcast(const float* p) {
    reg r;
    for (int i = 0; i < width; ++i) r.lane[i] = *p;
    return r;
  }
  /// a * b + c.
  static reg fma(const reg& a, const reg& b, const reg& c) {
    reg r;
    for (int i = 0; i < width; ++i) r.lane[i] = a.lane[i] * b.lane[i] + c.lane[i];
    return r;
  }
  /// a + b.
  static reg add(const reg& a, const reg& b) {
    reg r;
    for (int i = 0; i < width; ++i) r.lane[i] = a.lane[i] + b.lane[i];
    return r;
  }
  /// v where m > 0, else 0.
  static reg keep_positive(const reg& v, const reg& m) {
    reg r;
    for (int i = 0; i < width; ++i) r.lane[i] = m.lane[i] > 0.0f ? v.lane[i] : 0.0f;
    return r;
  }
  /// The sum of the lanes.
  static float hsum(const reg& v) {
    float s = 0;
    for (int i = 0; i < width; ++i) s += v.lane[i];
    return s;
  }
#endif
  /// Nothing to pin.
  static void pin(reg&) {}
};

}  // namespace simd
}  // namespace headnet

#if HEADNET_SIMD_AVX2
#if !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
namespace headnet {
namespace simd {

/// 256-bit AVX2 with FMA.
struct Avx2 {
  static constexpr Isa isa = Isa::avx2;  ///< the instruction set
  static constexpr int width = 8;        ///< floats per register
  static constexpr int tile_rows = 6;    ///< rows of a register tile: 12 accumulators of 16 registers
  using reg = __m256;                    ///< a register
  /// All lanes 0.
  static reg zero() { return _mm256_setzero_ps(); }
  /// 8 floats from p, 32-byte aligned.
  static reg load(const float* p) { return _mm256_load_ps(p); }
  /// 8 floats from p.
  static reg loadu(const float* p) { return _mm256_loadu_ps(p); }
  /// 8 floats to p, 32-byte aligned.
  static void store(float* p, reg v) { _mm256_store_ps(p, v); }
  /// 8 floats to p.
  static void storeu(float* p, reg v) { _mm256_storeu_ps(p, v); }
  /// *p in every lane.
  static reg broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  /// a * b + c.
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  /// a + b.
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  /// v where m > 0, else 0.
  static reg keep_positive(reg v, reg m) {
    return _mm256_and_ps(v, _mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_GT_OQ));
  }
  /// The sum of the lanes.
  static float hsum(reg v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  /// Keeps v in a register: without it g++ folds a loaded vector into each FMA that uses it,
  /// loading it again per FMA, and the unaligned loads (two cache lines half the time) then
  /// saturate the load ports before the FMA units.
  static void pin(reg& v) { __asm__("" : "+x"(v)); }
};

}  // namespace simd
}  // namespace headnet
#if !defined(__clang__)
#pragma GCC pop_options
#endif
#endif  // HEADNET_SIMD_AVX2

#if HEADNET_SIMD_AVX512
#if !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f")
#endif
namespace headnet {
namespace simd {

/// 512-bit AVX-512F.
struct Avx512 {
  static constexpr Isa isa = Isa::avx512;  ///< the instruction set
  static constexpr int width = 16;         ///< floats per register
  static constexpr int tile_rows = 12;     ///< rows of a register tile: 24 accumulators of 32 registers
  using reg = __m512;                      ///< a register
  /// All lanes 0.
  static reg zero() { return _mm512_setzero_ps(); }
  /// 16 floats from p, 64-byte aligned.
  static reg load(const float* p) { return _mm512_load_ps(p); }
  /// 16 floats from p.
  static reg loadu(const float* p) { return _mm512_loadu_ps(p); }
  /// 16 floats to p, 64-byte aligned.
  static void store(float* p, reg v) { _mm512_store_ps(p, v); }
  /// 16 floats to p.
  static void storeu(float* p, reg v) { _mm512_storeu_ps(p, v); }
  /// *p in every lane.
  static reg broadcast(const float* p) { return _mm512_set1_ps(*p); }
  /// a * b + c.
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  /// a + b.
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  /// v where m > 0, else 0.
  static reg keep_positive(reg v, reg m) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ), v);
  }
  /// The sum of the lanes (through memory: g++ 12 warns about _mm512_reduce_add_ps's undefined
  /// upper halves, and a tile sums its lanes once, at its end).
  static float hsum(reg v) {
    alignas(64) float lane[16];
    _mm512_store_ps(lane, v);
    for (int step = 8; step > 0; step /= 2)
      for (int i = 0; i < step; ++i) lane[i] += lane[i + step];
    return lane[0];
  }
  /// Keeps v in a register (see Avx2::pin); "v" allows all 32 vector registers.
  static void pin(reg& v) { __asm__("" : "+v"(v)); }
};

}  // namespace simd
}  // namespace headnet
#if !defined(__clang__)
#pragma GCC pop_options
#endif
#endif  // HEADNET_SIMD_AVX512
