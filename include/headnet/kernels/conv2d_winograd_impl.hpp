// headnet/kernels/conv2d_winograd_impl.hpp: the element-wise stage of the Winograd convolutions in
// float, written once against the vector operations of simd/vec.hpp. Not a header to include:
// kernels/conv2d_winograd.hpp includes it once per instruction set (simd/for_each_isa.hpp), inside
// namespace winograd::<isa> with `V` the vector type and the compiler's target set to that
// instruction set.
//
// At one position p of the transformed tiles, M (C_out x lanes) = U (C_out x C_in) * V (C_in x
// lanes): the register tile keeps R = V::tile_rows output channels x 2 registers of tiles (AVX-512:
// 12 x 32), and per input channel loads 2 vectors of V and broadcasts R weights, as the direct
// forward does with pixels. U comes packed by transform_weights in blocks of R rows,
// [block][C_in][R], so that the R broadcasts of one input channel are adjacent.
//
// (No include guard: included once per instruction set.)

constexpr int W = V::width;                ///< floats per register
constexpr int rows_per_block = V::tile_rows;  ///< output channels per register tile and per block of packed U
constexpr int lanes_per_tile = 2 * W;      ///< tiles (lanes) per register tile

using reg = typename V::reg;

/// M[co][lane] = sum_ci U[co][ci] V[ci][lane] for co < C_out and every lane below `lanes` rounded up
/// to lanes_per_tile (the rows of V and M must hold that many). U packed as above, ldv / ldm the
/// row strides of V and M.
inline void products(const float* U, const float* Vt, float* M, int C_out, int C_in, int lanes, std::int64_t ldv,
                     std::int64_t ldm) {
  constexpr int R = rows_per_block;
  for (int block = 0; block * R < C_out; ++block) {
    const float* u_block = U + std::int64_t(block) * R * C_in;
    const int rows = std::min(R, C_out - block * R);
    for (int l0 = 0; l0 < lanes; l0 += lanes_per_tile) {
      reg acc0[R], acc1[R];
      for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = V::zero();
      const float* v = Vt + l0;
      const float* u = u_block;
      for (int ci = 0; ci < C_in; ++ci, v += ldv, u += R) {
        const reg v0 = V::loadu(v), v1 = V::loadu(v + W);
        for (int r = 0; r < R; ++r) {
          const reg w = V::broadcast(u + r);
          acc0[r] = V::fma(w, v0, acc0[r]);
          acc1[r] = V::fma(w, v1, acc1[r]);
        }
      }
      float* out = M + std::int64_t(block) * R * ldm + l0;
      for (int r = 0; r < rows; ++r) {
        V::storeu(out + r * ldm, acc0[r]);
        V::storeu(out + r * ldm + W, acc1[r]);
      }
    }
  }
}
