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

static_assert(rows_per_block <= 12, "HEADNET_FOR_ROWS covers 12 rows");

// M[j][0, 2W) for the CB rows of one block (CB < R only in the last block of C_out); w is that
// block's packed weights, v the first of C_in rows of V. Accumulators in named variables and the
// two loaded vectors pinned (simd/register_tile.hpp, simd/vec.hpp): with an array, g++ 12 stored
// all 12 AVX2 accumulators to the stack on every input channel.
template <int CB>
inline void products_tile(const float* w, const float* v, int C_in, std::int64_t ldv, float* out, std::int64_t ld) {
  HEADNET_FOR_ROWS(HEADNET_TILE_ZERO_ROW)
  for (int ci = 0; ci < C_in; ++ci, v += ldv, w += rows_per_block) {
    reg x0 = V::loadu(v), x1 = V::loadu(v + W);
    V::pin(x0);
    V::pin(x1);
    HEADNET_FOR_ROWS(HEADNET_TILE_FMA_ROW)
  }
  HEADNET_FOR_ROWS(HEADNET_TILE_STORE_ROW)
}

/// M[co][lane] = sum_ci U[co][ci] V[ci][lane] for co < C_out and every lane below `lanes` rounded up
/// to lanes_per_tile (the rows of V and M must hold that many). U packed as above, ldv / ldm the
/// row strides of V and M.
inline void products(const float* U, const float* Vt, float* M, int C_out, int C_in, int lanes, std::int64_t ldv,
                     std::int64_t ldm) {
  constexpr int R = rows_per_block;
  for (int block = 0; block * R < C_out; ++block) {
    const float* u_block = U + std::int64_t(block) * R * C_in;
    const int rows = std::min(R, C_out - block * R);
    float* out = M + std::int64_t(block) * R * ldm;
    for (int l0 = 0; l0 < lanes; l0 += lanes_per_tile) {
      HEADNET_DISPATCH_ROWS(products_tile, rows, u_block, Vt + l0, C_in, ldv, out + l0, ldm)
    }
  }
}
