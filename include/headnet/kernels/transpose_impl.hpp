// headnet/kernels/transpose_impl.hpp: the transposes the kernel sources share (the by-channel
// layouts of the direct kernels, the transformed input of Winograd's weight gradient). Not a header
// to include: kernels/conv2d_direct_impl.hpp and kernels/conv2d_winograd_impl.hpp include it, once
// per instruction set, inside their namespace, with HEADNET_ISA_X86 set (simd/for_each_isa.hpp).
//
// (No include guard: included once per kernel source and instruction set.)

#if HEADNET_ISA_X86
// out[j * ld + i] = r[i][j] for i, j < 8: the 8 x 8 block r, transposed, stored as 8 rows of 8.
inline void store_transposed_8x8(const __m256* r, float* out, std::int64_t ld) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(out + 0 * ld, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(out + 1 * ld, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(out + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(out + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(out + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(out + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(out + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(out + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

// dst[c * dst_ld + r] = src[r * src_ld + c] for r < rows, c < cols: the weight packings of the
// by-channel layouts, which put channels along the vector. On x86 in 8 x 8 blocks (the last
// block of columns moved back to end at cols, rewriting a few): element by element, the wide
// conv2's packings took 18 and 33 us a pass, serial time before each parallel region, long enough
// for the other thread to fall asleep (core/parallel.hpp) and cost a wake-up too.
inline void transpose_into(const float* src, std::int64_t src_ld, int rows, int cols, float* dst, std::int64_t dst_ld) {
  int r0 = 0;
#if HEADNET_ISA_X86
  if (cols >= 8)
    for (; r0 + 8 <= rows; r0 += 8)
      for (int c = 0; c < cols; c += 8) {
        const int c0 = std::min(c, cols - 8);
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + (r0 + i) * src_ld + c0);
        store_transposed_8x8(r, dst + c0 * dst_ld + r0, dst_ld);
      }
#endif
  for (int r = r0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) dst[c * dst_ld + r] = src[r * src_ld + c];
}
