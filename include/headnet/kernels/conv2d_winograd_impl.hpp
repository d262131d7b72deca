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
// The transforms' small products with constant matrices (left_multiply, at the end) are here too,
// as plain loops the compiler vectorises for this copy's target.
//
// (No include guard: included once per instruction set.)

constexpr int W = V::width;                ///< floats per register
constexpr int rows_per_block = V::tile_rows;  ///< output channels per register tile and per block of packed U
constexpr int lanes_per_tile = 2 * W;      ///< tiles (lanes) per register tile

using reg = typename V::reg;

static_assert(rows_per_block <= 12, "HEADNET_FOR_ROWS covers 12 rows");

#include "headnet/kernels/transpose_impl.hpp"  // transpose_into

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

// The weight gradient's products at one position: dU (C_out x C_in) += dM (C_out x lanes) V^T, V
// (C_in x lanes), a sum over the chunk's tiles. Both operands hold tiles along their rows, so V is
// first transposed into Vt (lanes x C_in, rows of weight_products_columns(C_in)); then the register
// tile is the forward's, R output channels x 2 registers of input channels, with per tile one row
// of Vt loaded and R values of dM broadcast straight from its rows. (Dot products along the tiles
// would need no transpose, but each register tile would end in 2 R horizontal sums after only
// 128 / W steps of a chunk; not tried.)

/// Row length of weight_products' transposed V: C_in rounded up to whole register tiles.
inline std::int64_t weight_products_columns(int C_in) { return (std::int64_t(C_in) + 2 * W - 1) / (2 * W) * (2 * W); }

// dU[j][0, 2W) += the tile's sums for the CB rows of one block; d: dM at the block's first row,
// vt: Vt at the tile's first column. Only `cols` columns are written (the last tile of C_in).
template <int CB>
inline void weight_products_tile(const float* d, std::int64_t ldm, const float* vt, std::int64_t ldt, int lanes,
                                 float* out, std::int64_t ld, int cols) {
  HEADNET_FOR_ROWS(HEADNET_TILE_ZERO_ROW)
  for (int l = 0; l < lanes; ++l, vt += ldt) {
    reg x0 = V::loadu(vt), x1 = V::loadu(vt + W);
    V::pin(x0);
    V::pin(x1);
#define HEADNET_FMA(j)                           \
  if constexpr (CB > j) {                        \
    const reg dj = V::broadcast(d + j * ldm + l); \
    acc##j##0 = V::fma(dj, x0, acc##j##0);       \
    acc##j##1 = V::fma(dj, x1, acc##j##1);       \
  }
    HEADNET_FOR_ROWS(HEADNET_FMA)
#undef HEADNET_FMA
  }
  if (cols == 2 * W) {
#define HEADNET_ADD(j)                                                 \
  if constexpr (CB > j) {                                              \
    V::storeu(out + j * ld, V::add(V::loadu(out + j * ld), acc##j##0)); \
    V::storeu(out + j * ld + W, V::add(V::loadu(out + j * ld + W), acc##j##1)); \
  }
    HEADNET_FOR_ROWS(HEADNET_ADD)
#undef HEADNET_ADD
  } else {
    alignas(64) float row[2 * W];
#define HEADNET_ADD_PART(j)                                            \
  if constexpr (CB > j) {                                              \
    V::storeu(row, acc##j##0);                                         \
    V::storeu(row + W, acc##j##1);                                     \
    for (int c = 0; c < cols; ++c) out[j * ld + c] += row[c];          \
  }
    HEADNET_FOR_ROWS(HEADNET_ADD_PART)
#undef HEADNET_ADD_PART
  }
}

/// dU[co][ci] += sum_l dM[co][l] V[ci][l] for co < C_out, ci < C_in, l < lanes; ldm, ldv and ldu
/// the row strides; Vt: scratch of lanes x weight_products_columns(C_in) floats.
inline void weight_products(const float* dM, std::int64_t ldm, const float* Vsrc, std::int64_t ldv, int C_out,
                            int C_in, int lanes, float* dU, std::int64_t ldu, float* Vt) {
  constexpr int R = rows_per_block;
  const std::int64_t ldt = weight_products_columns(C_in);
  transpose_into(Vsrc, ldv, C_in, lanes, Vt, ldt);
  if (ldt > C_in)  // the last tile's columns past C_in: zeros, not whatever the buffer held
    for (int l = 0; l < lanes; ++l) std::fill(Vt + l * ldt + C_in, Vt + (l + 1) * ldt, 0.0f);
  // Columns outer: a tile's slice of Vt (lanes x 2W floats, 16 KB at 128 tiles with AVX-512) stays
  // in L1 while every block of rows reads it.
  for (int c0 = 0; c0 < C_in; c0 += 2 * W) {
    const int cols = std::min(2 * W, C_in - c0);
    for (int co0 = 0; co0 < C_out; co0 += R) {
      const int rows = std::min(R, C_out - co0);
      HEADNET_DISPATCH_ROWS(weight_products_tile, rows, dM + co0 * ldm, ldm, Vt + c0, ldt, lanes,
                            dU + co0 * ldu + c0, ldu, cols)
    }
  }
}

/// out[i][j][.] = sum_k L[i][k] in[k][j][.] over `lanes` tiles, for each j < cols: the transforms'
/// products with constant matrices. L is `rows_out` x `depth`, in and out hold `lanes`-long rows at
/// the given strides; a template argument, so that its coefficients are constants in every copy
/// (zeros skipped). Plain loops, vectorised by the compiler for this copy's target.
template <int rows_out, int depth, const auto& L, typename T>
inline void left_multiply(int cols, const T* in, std::int64_t in_row, std::int64_t in_col, T* out,
                          std::int64_t out_row, std::int64_t out_col, int lanes) {
  // Blocks of 16 lanes: the `depth` input rows of a block sit in registers, every output row is
  // formed there and stored once, and the unrolled loops turn the constant coefficients into
  // immediates (zeros vanish). Then the lanes that remain, one at a time.
  // (In the AVX-512 copy g++ 12 keeps some of the block's input rows in a stack array instead, a
  // few products reading their row from there: not measured, no AVX-512 machine yet. Written with
  // one register per output row and the inputs read from memory by each product, the AVX2 copy
  // ran the fast recipe's forward passes at 0.75-0.8x the speed of these loops, slower than SSE2.)
  constexpr int B = 16;
  int l0 = 0;
  for (; l0 + B <= lanes; l0 += B)
    for (int j = 0; j < cols; ++j) {
      T x[depth][B];
#pragma GCC unroll 8
      for (int k = 0; k < depth; ++k)
        for (int l = 0; l < B; ++l) x[k][l] = in[k * in_row + j * in_col + l0 + l];
#pragma GCC unroll 8
      for (int i = 0; i < rows_out; ++i) {
        T o[B] = {};
#pragma GCC unroll 8
        for (int k = 0; k < depth; ++k) {
          const T c = static_cast<T>(L[i][k]);
          if (c == T(0)) continue;
          for (int l = 0; l < B; ++l) o[l] += c * x[k][l];
        }
        for (int l = 0; l < B; ++l) out[i * out_row + j * out_col + l0 + l] = o[l];
      }
    }
  for (; l0 < lanes; ++l0)
    for (int j = 0; j < cols; ++j)
      for (int i = 0; i < rows_out; ++i) {
        T o = T(0);
        for (int k = 0; k < depth; ++k) o += static_cast<T>(L[i][k]) * in[k * in_row + j * in_col + l0];
        out[i * out_row + j * out_col + l0] = o;
      }
}
