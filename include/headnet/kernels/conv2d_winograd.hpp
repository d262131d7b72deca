// headnet/kernels/conv2d_winograd.hpp: 3x3 stride-1 convolutions with Winograd's minimal filtering,
// F(m x m, 3 x 3) for m = 4, 3 and 2: fewer multiplications than the definition.
//
// The output is cut into m x m tiles; each reads an a x a input tile, a = m + 2. For one tile d of
// one input channel and one 3x3 kernel g (Lavin and Gray, "Fast Algorithms for Convolutional
// Neural Networks", 2016; correlation, as in every CNN):
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A            (.) = element-wise, Y is m x m
// Summed over input channels, the element-wise stage is, at each of the a*a positions p of the
// transformed tile, a matrix product over channels:
//   forward          M[p] (C_out x tiles) = U[p] (C_out x C_in) * V[p] (C_in x tiles)
// with U = G g G^T (weights) and V = B^T d B (input), then Y = A^T M A per tile. F(4x4, 3x3) makes
// 36 products per tile where the definition makes 16 * 9 = 144 (4x fewer); F(3x3, 3x3) 25 for 81
// (3.24x fewer, and one tile is a whole 3x3 image); F(2x2, 3x3) 16 for 36 (2.25x fewer), with
// smaller rounding errors (docs/benchmarks.md has the measured errors).
//   input gradient   the same, on dy zero-padded by 2 - padding, with each kernel rotated by 180
//                    degrees and its channel axes swapped (the "full" convolution);
//   weight gradient  the adjoint of the forward: dU[p] (C_out x C_in) += dM[p] (C_out x tiles) *
//                    V[p]^T with dM = A dY A^T per tile of dy, then dW = G^T dU G.
//
// Work is cut into chunks of whole tiles (tiles_per_chunk), each transformed into a thread's
// buffers, multiplied position by position, and transformed back; every output value belongs to
// one chunk. In float the products of every pass run on our own register tiles
// (conv2d_winograd_impl.hpp, one copy per instruction set, chosen at run time like the direct
// kernels'); in double they use the single-threaded GEMM (kernels/gemm.hpp). The weight gradient
// keeps one partial dU per group of chunks (two groups per thread) and adds them in group order.
// Results are the same bits from run to run for a thread count; the chunk size depends on the
// thread count (so that every thread gets work), so another thread count may differ in the last
// bits. The transforms run over all tiles of a chunk at once, in blocks of 16 lanes held in
// registers; their coefficients are constants and the zeros among them vanish. In float the
// per-tile transforms are compiled per instruction set too (detail::left_multiply).
//
// Only 3x3, stride 1, padding 0 to 2 (supported()); any type (the tests check double against finite
// differences).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "headnet/core/parallel.hpp"
#include "headnet/kernels/conv2d_workspace.hpp"
#include "headnet/kernels/gemm.hpp"
#include "headnet/kernels/im2col.hpp"
#include "headnet/kernels/maxpool2d.hpp"
#include "headnet/simd/isa.hpp"
#include "headnet/simd/vec.hpp"

namespace headnet {
namespace kernels {
namespace winograd {

/// The transform matrices of F(m x m, 3 x 3): B^T (a x a), G (a x 3), A^T (m x a), a = m + 2.
template <int m>
struct Transform;

/// F(2x2, 3x3), interpolation points 0, 1, -1 and infinity.
template <>
struct Transform<2> {
  static constexpr int a = 4;  ///< input tile side
  static constexpr double BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};  ///< B^T
  static constexpr double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};  ///< G
  static constexpr double AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};  ///< A^T
  static constexpr double A[4][2] = {{1, 0}, {1, 1}, {1, -1}, {0, -1}};  ///< A (the weight gradient's)
};

/// F(3x3, 3x3), interpolation points 0, 1, -1, 2 and infinity (derived as Lavin and Gray do: A^T
/// from the points' powers, G from the Lagrange denominators, B^T by solving the identity
/// Y = correlation for every tile; the same derivation gives F(4x4, 3x3) below exactly). One tile
/// covers a 3x3 image: 25 products where F(4x4, 3x3) makes 36 and the definition 81.
template <>
struct Transform<3> {
  static constexpr int a = 5;  ///< input tile side
  static constexpr double BT[5][5] = {
      {2, -1, -2, 1, 0}, {0, -2, -1, 1, 0}, {0, 2, -3, 1, 0}, {0, -1, 0, 1, 0}, {0, 2, -1, -2, 1}};  ///< B^T
  static constexpr double G[5][3] = {{1.0 / 2, 0, 0},
                                     {-1.0 / 2, -1.0 / 2, -1.0 / 2},
                                     {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                     {1.0 / 6, 1.0 / 3, 2.0 / 3},
                                     {0, 0, 1}};  ///< G
  static constexpr double AT[3][5] = {{1, 1, 1, 1, 0}, {0, 1, -1, 2, 0}, {0, 1, 1, 4, 1}};  ///< A^T
  static constexpr double A[5][3] = {{1, 0, 0}, {1, 1, 1}, {1, -1, 1}, {1, 2, 4}, {0, 0, 1}};  ///< A (the weight gradient's)
};

/// F(4x4, 3x3), interpolation points 0, 1, -1, 2, -2 and infinity.
template <>
struct Transform<4> {
  static constexpr int a = 6;  ///< input tile side
  static constexpr double BT[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                      {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};  ///< B^T
  static constexpr double G[6][3] = {{1.0 / 4, 0, 0},
                                     {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                     {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                     {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                     {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                     {0, 0, 1}};  ///< G
  static constexpr double AT[4][6] = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};  ///< A^T
  static constexpr double A[6][4] = {{1, 0, 0, 0},  {1, 1, 1, 1},   {1, -1, 1, -1},
                                     {1, 2, 4, 8}, {1, -2, 4, -8}, {0, 0, 0, 1}};  ///< A (the weight gradient's)
};

/// G^T (3 x a) of F(m x m, 3 x 3), for the weight gradient's dW = G^T dU G.
template <int m>
struct TransposedG {
  static constexpr std::array<std::array<double, Transform<m>::a>, 3> value = [] {
    std::array<std::array<double, Transform<m>::a>, 3> t{};
    for (int r = 0; r < 3; ++r)
      for (int k = 0; k < Transform<m>::a; ++k) t[r][k] = Transform<m>::G[k][r];
    return t;
  }();  ///< G^T[r][k] = G[k][r]
};

/// Whether the Winograd kernels can compute this convolution: 3x3, stride 1, padding 0 to 2 (the
/// input gradient pads dy by 2 - padding), and an output.
inline bool supported(const ConvGeometry& g, int C_out) {
  return g.kernel_size == 3 && g.stride == 1 && g.padding >= 0 && g.padding <= 2 && g.channels > 0 && C_out > 0 &&
         g.out_height() > 0 && g.out_width() > 0;
}

/// The tile F(m x m, 3 x 3) that needs the fewest products for this layer's output: m = 3 or 4
/// (tiles x (m + 2)^2 per image; 3 on 3x3 and 6x6 images, 4 on 7x7, 15x15 and 31x31).
inline int fewest_products_tile(const ConvGeometry& g) {
  auto products = [&](int m) {
    return std::int64_t((g.out_height() + m - 1) / m) * ((g.out_width() + m - 1) / m) * (m + 2) * (m + 2);
  };
  return products(3) < products(4) ? 3 : 4;
}

/// Tiles per chunk: 128, the GEMM's columns (measured on the fast recipe's layers, AVX-512, one
/// thread: 16, 32 and 64 tiles ran the 256-channel GEMMs at 40-60% of the speed of 128, and 256 was
/// no faster), fewer when that would leave a thread without a chunk.
inline int tiles_per_chunk(std::int64_t tiles, int threads) {
  const std::int64_t per_thread = (tiles + threads - 1) / std::max(threads, 1);
  const std::int64_t n = std::min<std::int64_t>(128, (per_thread + 15) / 16 * 16);
  return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(n, tiles)));
}

}  // namespace winograd
}  // namespace kernels
}  // namespace headnet

// The float products, once per instruction set: winograd::portable, winograd::avx2, winograd::avx512.
#define HEADNET_ISA_NAMESPACE winograd
#define HEADNET_ISA_IMPL "headnet/kernels/conv2d_winograd_impl.hpp"
#include "headnet/simd/for_each_isa.hpp"

namespace headnet {
namespace kernels {
namespace winograd {

/// Rows per block of the packed float weights of `isa`'s products (its register tile's rows).
inline int rows_per_block(simd::Isa isa) {
  switch (isa) {
#if HEADNET_SIMD_AVX512
    case simd::Isa::avx512: return avx512::rows_per_block;
#endif
#if HEADNET_SIMD_AVX2
    case simd::Isa::avx2: return avx2::rows_per_block;
#endif
    default: return portable::rows_per_block;
  }
}

/// Tiles per register tile of `isa`'s products: chunks of float tiles are padded to a multiple.
constexpr int lane_multiple = 32;

/// M = U V at one position with `isa`'s register tiles (see conv2d_winograd_impl.hpp).
inline void products(simd::Isa isa, const float* U, const float* Vt, float* M, int C_out, int C_in, int lanes,
                     std::int64_t ldv, std::int64_t ldm) {
  switch (isa) {
#if HEADNET_SIMD_AVX512
    case simd::Isa::avx512: return avx512::products(U, Vt, M, C_out, C_in, lanes, ldv, ldm);
#endif
#if HEADNET_SIMD_AVX2
    case simd::Isa::avx2: return avx2::products(U, Vt, M, C_out, C_in, lanes, ldv, ldm);
#endif
    default: return portable::products(U, Vt, M, C_out, C_in, lanes, ldv, ldm);
  }
}

/// Row length of `isa`'s transposed V in weight_products (C_in rounded up to its register tiles).
inline std::int64_t weight_products_columns(simd::Isa isa, int C_in) {
  switch (isa) {
#if HEADNET_SIMD_AVX512
    case simd::Isa::avx512: return avx512::weight_products_columns(C_in);
#endif
#if HEADNET_SIMD_AVX2
    case simd::Isa::avx2: return avx2::weight_products_columns(C_in);
#endif
    default: return portable::weight_products_columns(C_in);
  }
}

/// dU (C_out x C_in) += dM (C_out x lanes) V^T at one position of the weight gradient, with `isa`'s
/// register tiles (see conv2d_winograd_impl.hpp); Vt: scratch of lanes x weight_products_columns.
inline void weight_products(simd::Isa isa, const float* dM, std::int64_t ldm, const float* V, std::int64_t ldv,
                            int C_out, int C_in, int lanes, float* dU, std::int64_t ldu, float* Vt) {
  switch (isa) {
#if HEADNET_SIMD_AVX512
    case simd::Isa::avx512: return avx512::weight_products(dM, ldm, V, ldv, C_out, C_in, lanes, dU, ldu, Vt);
#endif
#if HEADNET_SIMD_AVX2
    case simd::Isa::avx2: return avx2::weight_products(dM, ldm, V, ldv, C_out, C_in, lanes, dU, ldu, Vt);
#endif
    default: return portable::weight_products(dM, ldm, V, ldv, C_out, C_in, lanes, dU, ldu, Vt);
  }
}

namespace detail {

// Values between two positions of a chunk's transformed data: rows of `lanes`, plus one cache line
// so that the a*a positions, read and written together, do not fall into the same cache sets (the
// plain stride is a power of two for most layer widths and chunk sizes, and measured 1.6x slower).
inline std::int64_t position_stride(int rows, int lanes) { return std::int64_t(rows) * lanes + 16; }

// The tiles of a convolution's output: tile t is (image, tile row, tile column) in that order.
struct Tiling {
  int m, rows, cols;  // tile side, tile rows and columns per image
  std::int64_t count;  // tiles in the batch
  Tiling(int m_, int N, int H_out, int W_out)
      : m(m_), rows((H_out + m_ - 1) / m_), cols((W_out + m_ - 1) / m_), count(std::int64_t(N) * rows * cols) {}
  void locate(std::int64_t t, int& n, int& row, int& col) const {
    const std::int64_t per_image = std::int64_t(rows) * cols;
    n = static_cast<int>(t / per_image);
    const int r = static_cast<int>(t % per_image);
    row = r / cols * m;
    col = r % cols * m;
  }
};

// out[i][j][.] = sum_k L[i][k] in[k][j][.] over `lanes` tiles, for each j < cols (see
// conv2d_winograd_impl.hpp). In float, the copy simd::loops_copy picks: built without -march the
// transforms ran on SSE2 without FMA, and took the Winograd passes to 0.8-0.9x the native speed;
// natively the portable copy, which can be inlined (on Zen 3 a call to the avx2 copy measured 0-7%
// slower on the fast recipe's forward passes). In double, and for the weights' transforms and the
// final dW (once per pass, not per tile), always the portable copy.
template <int rows_out, int depth, const auto& L, typename T>
inline void left_multiply(simd::Isa isa, int cols, const T* in, std::int64_t in_row, std::int64_t in_col, T* out,
                          std::int64_t out_row, std::int64_t out_col, int lanes) {
  if constexpr (std::is_same<T, float>::value) switch (simd::loops_copy(isa)) {
#if HEADNET_SIMD_AVX512
      case simd::Isa::avx512:
        return avx512::left_multiply<rows_out, depth, L>(cols, in, in_row, in_col, out, out_row, out_col, lanes);
#endif
#if HEADNET_SIMD_AVX2
      case simd::Isa::avx2:
        return avx2::left_multiply<rows_out, depth, L>(cols, in, in_row, in_col, out, out_row, out_col, lanes);
#endif
      default: break;
    }
  portable::left_multiply<rows_out, depth, L>(cols, in, in_row, in_col, out, out_row, out_col, lanes);
}

// Where each tile of a chunk starts: image index, first row and column (3 ints per tile, `pad`
// subtracted from the row and column), found once per chunk rather than once per channel.
inline void locate_chunk(const Tiling& tiling, std::int64_t first, int lanes, int pad, int* starts) {
  for (int lane = 0; lane < lanes; ++lane) {
    int* s = starts + 3 * lane;
    tiling.locate(first + lane, s[0], s[1], s[2]);
    s[1] -= pad;
    s[2] -= pad;
  }
}

// Gathers the a x a tile at each start from one channel plane (height x width) of each tile's image,
// into d[i][j][lane], zeros outside the plane and in lanes [lanes, padded).
template <typename T>
void gather_tiles(const int* starts, int a, int lanes, int padded, int stride, const T* x, std::int64_t image_size,
                  std::int64_t plane_offset, int height, int width, T* d) {
  for (int i = 0; i < a * a; ++i) std::fill(d + i * stride + lanes, d + i * stride + padded, T(0));
  for (int lane = 0; lane < lanes; ++lane) {
    const int row = starts[3 * lane + 1], col = starts[3 * lane + 2];
    const T* plane = x + starts[3 * lane] * image_size + plane_offset;
    if (row >= 0 && col >= 0 && row + a <= height && col + a <= width) {
      for (int i = 0; i < a; ++i) {
        const T* src = plane + std::int64_t(row + i) * width + col;
        T* out = d + std::int64_t(i) * a * stride + lane;
        for (int j = 0; j < a; ++j) out[j * stride] = src[j];
      }
      continue;
    }
    // A tile over the border: the columns [j0, j1) lie inside the plane, the rest are zeros.
    const int j0 = std::max(0, -col), j1 = std::max(j0, std::min(a, width - col));
    for (int i = 0; i < a; ++i) {
      T* out = d + std::int64_t(i) * a * stride + lane;
      const int r = row + i;
      if (r < 0 || r >= height) {
        for (int j = 0; j < a; ++j) out[j * stride] = T(0);
        continue;
      }
      const T* src = plane + std::int64_t(r) * width + col;
      for (int j = 0; j < j0; ++j) out[j * stride] = T(0);
      for (int j = j0; j < j1; ++j) out[j * stride] = src[j];
      for (int j = j1; j < a; ++j) out[j * stride] = T(0);
    }
  }
}

// V[p][channel][lane] = (B^T d B)[p] for one channel of every tile of a chunk. `scratch`: 2 a*a*lanes.
template <int m, typename T>
void transform_input(const int* starts, int lanes, int padded, int stride, const T* x, std::int64_t image_size,
                     int channel, int height, int width, std::int64_t position_stride, T* V, T* scratch,
                     simd::Isa isa) {
  using F = Transform<m>;
  constexpr int a = F::a;
  T* d = scratch;
  T* tmp = scratch + a * a * stride;
  gather_tiles(starts, a, lanes, padded, stride, x, image_size, std::int64_t(channel) * height * width, height, width,
               d);
  left_multiply<a, a, F::BT>(isa, a, d, a * stride, stride, tmp, a * stride, stride, padded);  // tmp = B^T d
  // V = tmp B: V[i][j] = sum_k tmp[i][k] BT[j][k], the same product on the transposed layout.
  left_multiply<a, a, F::BT>(isa, a, tmp, stride, a * stride, V + std::int64_t(channel) * stride, position_stride,
                             a * position_stride, padded);
}

}  // namespace detail

/// Values per position of transform_weights' U: `rows` rounded up to whole blocks, times `cols`.
inline std::int64_t weight_position_stride(int rows, int cols, int block_rows) {
  return (std::int64_t(rows) + block_rows - 1) / block_rows * block_rows * cols;
}

/// U[p] = (G g G^T)[p] for every kernel g = weight[o][i] (C_out x C_in x 3 x 3), stored at
/// p * weight_position_stride + the packed place of (o, i): blocks of `block_rows` rows o, each
/// [C_in][block_rows] ([p][o][i] for block_rows = 1, the GEMM's layout); rows past `rows` in the
/// last block are zeros. With `rotate`, the kernels of the input gradient: g = weight[i][o] turned
/// by 180 degrees (weight is then C_in x C_out x 3 x 3 as stored, rows = C_in, cols = C_out). One
/// block of rows at a time, the transforms running along each row (i) in `ws`'s per-thread scratch.
template <int m, typename T>
void transform_weights(const T* weight, int rows, int cols, bool rotate, int block_rows, T* U,
                       Conv2dWorkspace<T>& ws) {
  using F = Transform<m>;
  constexpr int a = F::a;
  const std::int64_t position_stride = weight_position_stride(rows, cols, block_rows);
  const int blocks = (rows + block_rows - 1) / block_rows;
  // Per thread: one row's g and G g, then the a*a rows of U of each row of a block.
  const std::int64_t scratch_size = std::int64_t(9 + 3 * a) * cols + std::int64_t(block_rows) * a * a * cols;
  const int threads = std::int64_t(rows) * cols >= 4096 ? std::min(num_threads(), blocks) : 1;
  ws.prepare(threads);
  for (int t = 0; t < threads; ++t) ws.winograd_scratch(t, scratch_size);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int block = 0; block < blocks; ++block) {
    T* g = ws.winograd_scratch(thread_index(), scratch_size);  // g[r][s][i]
    T* Gg = g + 9 * cols;                                      // (G g)[k][s][i]
    T* u = Gg + 3 * a * cols;                                  // U[row in block][k][l][i]
    const int first = block * block_rows, count = std::min(block_rows, rows - first);
    for (int r = 0; r < count; ++r) {
      const int o = first + r;
      for (int i = 0; i < cols; ++i) {
        const T* w = rotate ? weight + (std::int64_t(i) * rows + o) * 9 : weight + (std::int64_t(o) * cols + i) * 9;
        for (int t = 0; t < 9; ++t) g[t * cols + i] = rotate ? w[8 - t] : w[t];
      }
      detail::left_multiply<a, 3, F::G>(simd::Isa::portable, 3, g, 3 * cols, cols, Gg, 3 * cols, cols, cols);
      // U[k][l] = sum_s Gg[k][s] G[l][s]
      detail::left_multiply<a, 3, F::G>(simd::Isa::portable, a, Gg, cols, 3 * cols, u + std::int64_t(r) * a * a * cols,
                                        cols, a * cols, cols);
    }
    // The block's rows interleaved, [p][i][r], written in order; zeros for rows past `rows`.
    for (int p = 0; p < a * a; ++p) {
      T* dst = U + p * position_stride + std::int64_t(first) * cols;
      for (int i = 0; i < cols; ++i)
        for (int r = 0; r < block_rows; ++r)
          *dst++ = r < count ? u[(std::int64_t(r) * a * a + p) * cols + i] : T(0);
    }
  }
}

/// y = conv3x3(x, weights whose transform is U) + bias, stride 1, `pad` zeros around x: x is
/// (N, C_in, H, W), y is (N, C_out, H + 2 pad - 2, W + 2 pad - 2), U from transform_weights (in
/// float packed for `isa`'s products: block_rows = rows_per_block(isa); in double for the GEMM:
/// 1). `relu`: y = max(y, 0). The core of the forward and the input gradient. With pool.y (even m
/// only), each tile's output is max-pooled 2x2 into pool instead of written to y.
template <int m, typename T>
void convolve(int N, int C_in, int H, int W, int pad, int C_out, const T* x, const T* U, const T* bias, bool relu,
              T* y, Conv2dWorkspace<T>& ws, simd::Isa isa, PooledOutput<T> pool = {}) {
  using F = Transform<m>;
  constexpr int a = F::a;
  constexpr bool own_products = std::is_same<T, float>::value;
  const int H_out = H + 2 * pad - 2, W_out = W + 2 * pad - 2;
  const detail::Tiling tiling(m, N, H_out, W_out);
  const int T_chunk = tiles_per_chunk(tiling.count, num_threads());
  // Row length of the chunk buffers: whole register tiles of lanes for the float products, which
  // run over the padding lanes too (zeros from the gather).
  const int stride = own_products ? (T_chunk + lane_multiple - 1) / lane_multiple * lane_multiple : T_chunk;
  const std::int64_t chunks = (tiling.count + T_chunk - 1) / T_chunk;
  const std::int64_t in_image = std::int64_t(C_in) * H * W, out_plane = std::int64_t(H_out) * W_out;
  const std::int64_t V_stride = detail::position_stride(C_in, stride), M_stride = detail::position_stride(C_out, stride);
  const std::int64_t U_stride = weight_position_stride(C_out, C_in, own_products ? rows_per_block(isa) : 1);
  const int threads = static_cast<int>(std::min<std::int64_t>(num_threads(), chunks));
  ws.prepare(threads);
  // Scratch: the input transform's tile and intermediate (2 a*a rows of lanes), or the output
  // transform's (m*a + m*m rows) and a fused max-pool's winners and their positions (2 rows).
  const std::int64_t scratch_size = std::int64_t(std::max(2 * a * a, m * a + m * m + 2)) * stride;
  for (int t = 0; t < threads; ++t) {  // sized by the plan before the parallel region
    ws.winograd_input(t, a * a * V_stride);
    ws.winograd_products(t, a * a * M_stride);
    ws.winograd_scratch(t, scratch_size);
    ws.winograd_tile_starts(t, 3 * T_chunk);
    if (!own_products) {  // the two sizes of product: full chunks and the last one
      reserve_gemm<T>(C_out, T_chunk, C_in, ws.gemm(t));
      reserve_gemm<T>(C_out, tiling.count - (chunks - 1) * T_chunk, C_in, ws.gemm(t));
    }
  }

  // Tiles start at even rows and columns (multiples of m), so a tile holds whole 2x2 windows; the
  // windows maxpool2d_forward would not form (cut by a last odd row or column) are left out
  // likewise. Each window is pooled over all the chunk's lanes at once (max_of_four), then
  // each lane's winner is stored in its image.
  const int W_pool = W_out / 2, H_pool = H_out / 2;
  auto pool_channel = [&](const T* out, T add, int co, int lanes, const int* starts, T* best, T* which) {
    for (int i = 0; i < m / 2; ++i)
      for (int j = 0; j < m / 2; ++j) {
        const T* c0 = out + (2 * i * m + 2 * j) * stride;  // (2i, 2j), then (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1)
        kernels::detail::max_of_four(c0, c0 + stride, c0 + m * stride, c0 + (m + 1) * stride, add, relu, lanes, best, which);
        for (int lane = 0; lane < lanes; ++lane) {
          const int row = starts[3 * lane + 1] + pad + 2 * i, col = starts[3 * lane + 2] + pad + 2 * j;
          if (row + 1 >= H_out || col + 1 >= W_out) continue;
          const int q = static_cast<int>(which[lane]);
          const std::int64_t o = (std::int64_t(starts[3 * lane]) * C_out + co) * H_pool * W_pool +
                                 std::int64_t(row / 2) * W_pool + col / 2;
          pool.y[o] = best[lane];
          pool.argmax[o] = (row + (q >> 1)) * W_out + col + (q & 1);
        }
      }
  };
  (void)pool_channel;  // odd m never pools

  auto run_chunk = [&](int thread, std::int64_t chunk) {
    const std::int64_t first = chunk * T_chunk;
    const int lanes = static_cast<int>(std::min<std::int64_t>(T_chunk, tiling.count - first));
    const int padded = own_products ? std::min(stride, (lanes + lane_multiple - 1) / lane_multiple * lane_multiple) : lanes;
    T* V = ws.winograd_input(thread, a * a * V_stride);
    T* M = ws.winograd_products(thread, a * a * M_stride);
    T* scratch = ws.winograd_scratch(thread, scratch_size);
    int* starts = ws.winograd_tile_starts(thread, 3 * T_chunk);
    detail::locate_chunk(tiling, first, lanes, pad, starts);
    for (int c = 0; c < C_in; ++c)
      detail::transform_input<m>(starts, lanes, padded, stride, x, in_image, c, H, W, V_stride, V, scratch, isa);
    for (int p = 0; p < a * a; ++p) {
      if constexpr (own_products)
        products(isa, U + p * U_stride, V + p * V_stride, M + p * M_stride, C_out, C_in, padded, stride, stride);
      else
        gemm<false, false>(C_out, lanes, C_in, U + p * U_stride, C_in, V + p * V_stride, stride, M + p * M_stride,
                           stride, false, ws.gemm(thread));
    }
    // Y = A^T M A per output channel, into y.
    T* tmp = scratch;                   // A^T M: m*a rows of lanes
    T* out = scratch + m * a * stride;  // Y: m*m rows of lanes
    T Y[m][m];
    for (int co = 0; co < C_out; ++co) {
      detail::left_multiply<m, a, F::AT>(isa, a, M + co * stride, a * M_stride, M_stride, tmp, a * stride, stride,
                                         lanes);  // tmp = A^T M   (m x a)
      detail::left_multiply<m, a, F::AT>(isa, m, tmp, stride, a * stride, out, stride, m * stride,
                                         lanes);  // out[i][j] = (tmp A)[i][j] = sum_l AT[j][l] tmp[i][l]
      const T add = bias ? bias[co] : T(0);
      if constexpr (m % 2 == 0) {
        if (pool.y) {
          pool_channel(out, add, co, lanes, starts, out + m * m * stride, out + (m * m + 1) * stride);
          continue;
        }
      }
      for (int lane = 0; lane < lanes; ++lane) {
        const int n = starts[3 * lane], row = starts[3 * lane + 1] + pad, col = starts[3 * lane + 2] + pad;
        for (int i = 0; i < m; ++i)
          for (int j = 0; j < m; ++j) Y[i][j] = out[(i * m + j) * stride + lane] + add;
        if (relu)
          for (int i = 0; i < m; ++i)
            for (int j = 0; j < m; ++j) Y[i][j] = Y[i][j] > T(0) ? Y[i][j] : T(0);
        T* dst = y + (std::int64_t(n) * C_out + co) * out_plane + std::int64_t(row) * W_out + col;
        const int rows = std::min(m, H_out - row), cols = std::min(m, W_out - col);
        if (rows == m && cols == m) {
          for (int i = 0; i < m; ++i)
            for (int j = 0; j < m; ++j) dst[std::int64_t(i) * W_out + j] = Y[i][j];
        } else {
          for (int i = 0; i < rows; ++i)
            for (int j = 0; j < cols; ++j) dst[std::int64_t(i) * W_out + j] = Y[i][j];
        }
      }
    }
  };

  if (threads <= 1) {
    for (std::int64_t c = 0; c < chunks; ++c) run_chunk(0, c);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int thread = thread_index();
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t c = 0; c < chunks; ++c) run_chunk(thread, c);
  }
}

/// Forward: y = conv(x, weight) + bias (bias may be null), max(., 0) with `relu`. With pool.y (m
/// even), the output is max-pooled 2x2 into pool as it is written, and y is unused.
template <int m, typename T>
void conv2d_forward(const ConvGeometry& g, int N, int C_out, const T* x, const T* weight, const T* bias, T* y,
                    Conv2dWorkspace<T>& ws, bool relu, simd::Isa isa = simd::active_isa(), PooledOutput<T> pool = {}) {
  if (m % 2 && pool.y) throw std::logic_error("winograd::conv2d_forward: a 2x2 max-pool needs an even tile");
  constexpr int a = Transform<m>::a;
  const int block_rows = std::is_same<T, float>::value ? rows_per_block(isa) : 1;
  T* U = ws.winograd_weight(std::int64_t(a) * a * weight_position_stride(C_out, g.channels, block_rows));
  transform_weights<m>(weight, C_out, g.channels, false, block_rows, U, ws);
  convolve<m>(N, g.channels, g.height, g.width, g.padding, C_out, x, U, bias, relu, y, ws, isa, pool);
}

/// Input gradient: dx (overwritten) from dy, the convolution of dy padded by 2 - padding with the
/// rotated kernels.
template <int m, typename T>
void conv2d_input_gradient(const ConvGeometry& g, int N, int C_out, const T* weight, const T* dy, T* dx,
                           Conv2dWorkspace<T>& ws, simd::Isa isa = simd::active_isa()) {
  constexpr int a = Transform<m>::a;
  const int block_rows = std::is_same<T, float>::value ? rows_per_block(isa) : 1;
  T* U = ws.winograd_weight(std::int64_t(a) * a * weight_position_stride(g.channels, C_out, block_rows));
  transform_weights<m>(weight, g.channels, C_out, true, block_rows, U, ws);
  convolve<m>(N, C_out, g.out_height(), g.out_width(), 2 - g.padding, g.channels, dy, U,
              static_cast<const T*>(nullptr), false, dx, ws, isa);
}

/// Weight gradient: grad_weight += dL/dW. The bias gradient is the caller's (conv2d_bias_gradient),
/// one sum shared by every path. In float the products run on `isa`'s register tiles, in double on
/// the GEMM.
template <int m, typename T>
void conv2d_weight_gradient(const ConvGeometry& g, int N, int C_out, const T* x, const T* dy, T* grad_weight,
                            Conv2dWorkspace<T>& ws, simd::Isa isa = simd::active_isa()) {
  constexpr bool vector_products = std::is_same<T, float>::value;
  using F = Transform<m>;
  constexpr int a = F::a;
  const int C_in = g.channels, H = g.height, W = g.width, pad = g.padding;
  const int H_out = g.out_height(), W_out = g.out_width();
  const std::int64_t out_plane = std::int64_t(H_out) * W_out, in_image = std::int64_t(C_in) * H * W;

  const detail::Tiling tiling(m, N, H_out, W_out);
  const int T_chunk = tiles_per_chunk(tiling.count, num_threads());
  const std::int64_t chunks = (tiling.count + T_chunk - 1) / T_chunk;
  const std::int64_t V_stride = detail::position_stride(C_in, T_chunk), M_stride = detail::position_stride(C_out, T_chunk);
  const std::int64_t dU_size = std::int64_t(a) * a * C_out * C_in;
  // Groups of consecutive chunks, each with its own partial dU, added in group order at the end:
  // two per thread, so that a thread slowed down by another process hands work over (each partial
  // is a*a*C_out*C_in values, 9.4 MB at 256 -> 256 channels: few, to keep their sum cheap).
  constexpr int max_groups = 64;
  const int groups = static_cast<int>(std::min<std::int64_t>(std::min(2 * num_threads(), max_groups), chunks));
  const int threads = std::min(num_threads(), groups);
  ws.prepare(threads);
  for (int t = 0; t < threads; ++t) {  // sized by the plan before the parallel region
    ws.winograd_input(t, a * a * V_stride);
    ws.winograd_products(t, a * a * M_stride);
    if (!vector_products) {
      reserve_gemm<T>(C_out, C_in, T_chunk, ws.gemm(t));  // full chunks and the last one
      reserve_gemm<T>(C_out, C_in, tiling.count - (chunks - 1) * T_chunk, ws.gemm(t));
    }
  }
  // Scratch: the input transform's (2 a*a rows of lanes) or dy's tiles and A dY ((m + a)*m rows),
  // and then, in float, the products' transposed V (T_chunk rows of whole register tiles).
  const std::int64_t transposed_size = vector_products ? T_chunk * weight_products_columns(isa, C_in) : 0;
  const std::int64_t scratch_size =
      std::max<std::int64_t>(std::int64_t(std::max(2 * a * a, (m + a) * m)) * T_chunk, transposed_size);
  for (int t = 0; t < threads; ++t) {
    ws.winograd_scratch(t, scratch_size);
    ws.winograd_tile_starts(t, 3 * T_chunk);
  }
  T* partials[max_groups];
  for (int group = groups - 1; group >= 0; --group) partials[group] = ws.chunk_partial(group, dU_size);

  auto run_group = [&](int thread, int group) {
    T* dU = partials[group];
    std::fill(dU, dU + dU_size, T(0));
    T* V = ws.winograd_input(thread, a * a * V_stride);
    T* dM = ws.winograd_products(thread, a * a * M_stride);
    T* scratch = ws.winograd_scratch(thread, scratch_size);
    int* starts = ws.winograd_tile_starts(thread, 3 * T_chunk);
    const std::int64_t begin = chunks * group / groups, end = chunks * (group + 1) / groups;
    for (std::int64_t chunk = begin; chunk < end; ++chunk) {
      const std::int64_t first = chunk * T_chunk;
      const int lanes = static_cast<int>(std::min<std::int64_t>(T_chunk, tiling.count - first));
      detail::locate_chunk(tiling, first, lanes, pad, starts);
      for (int c = 0; c < C_in; ++c)
        detail::transform_input<m>(starts, lanes, lanes, T_chunk, x, in_image, c, H, W, V_stride, V, scratch, isa);
      // dM = A dY A^T per output channel, from the m x m tiles of dy (zeros past the output).
      for (int co = 0; co < C_out; ++co) {
        T* dyt = scratch;                                  // dy tiles, [i][j][lane], m x m
        T* tmp = scratch + std::int64_t(m) * m * T_chunk;  // A dY, a x m
        for (int lane = 0; lane < lanes; ++lane) {
          const int n = starts[3 * lane], row = starts[3 * lane + 1] + pad, col = starts[3 * lane + 2] + pad;
          const T* plane = dy + (std::int64_t(n) * C_out + co) * out_plane + std::int64_t(row) * W_out + col;
          const int rows = std::min(m, H_out - row), cols = std::min(m, W_out - col);
          for (int i = 0; i < m; ++i)
            for (int j = 0; j < m; ++j)
              dyt[(i * m + j) * T_chunk + lane] = i < rows && j < cols ? plane[std::int64_t(i) * W_out + j] : T(0);
        }
        // tmp[k][j] = sum_i A[k][i] dY[i][j];  dM[k][l] = sum_j tmp[k][j] A^T[j][l] = sum_j A[l][j] tmp[k][j]
        detail::left_multiply<a, m, F::A>(isa, m, dyt, m * T_chunk, T_chunk, tmp, m * T_chunk, T_chunk, lanes);
        detail::left_multiply<a, m, F::A>(isa, a, tmp, T_chunk, m * T_chunk, dM + co * T_chunk, M_stride,
                                          a * M_stride, lanes);
      }
      for (int p = 0; p < a * a; ++p) {
        T* dU_p = dU + p * std::int64_t(C_out) * C_in;
        if constexpr (vector_products)
          weight_products(isa, dM + p * M_stride, T_chunk, V + p * V_stride, T_chunk, C_out, C_in, lanes, dU_p, C_in,
                          scratch);
        else
          gemm<false, true>(C_out, C_in, lanes, dM + p * M_stride, T_chunk, V + p * V_stride, T_chunk, dU_p, C_in,
                            true, ws.gemm(thread));
      }
    }
  };

  if (threads <= 1) {
    for (int group = 0; group < groups; ++group) run_group(0, group);
  } else {
#pragma omp parallel num_threads(threads)
    {
      const int thread = thread_index();
#pragma omp for schedule(dynamic, 1)
      for (int group = 0; group < groups; ++group) run_group(thread, group);
    }
  }

  // dW[o][i] += G^T (sum of the groups' dU[.][o][i]) G, the sums in group order; one row o at a
  // time, along i.
  const std::int64_t position_stride = std::int64_t(C_out) * C_in;
  const std::int64_t reduce_size = std::int64_t(a * a + 3 * a + 9) * C_in;
  const int reduce_threads = position_stride >= 4096 ? std::min(num_threads(), C_out) : 1;
  ws.prepare(reduce_threads);
  for (int t = 0; t < reduce_threads; ++t) ws.winograd_scratch(t, reduce_size);
#pragma omp parallel for schedule(static) num_threads(reduce_threads) if (reduce_threads > 1)
  for (int o = 0; o < C_out; ++o) {
    T* dU = ws.winograd_scratch(thread_index(), reduce_size);  // dU[k][l][i]
    T* tmp = dU + a * a * C_in;                                 // (G^T dU)[r][l][i]
    T* dW = tmp + 3 * a * C_in;                                 // dW[r][s][i]
    for (int p = 0; p < a * a; ++p) {
      T* row = dU + p * C_in;
      const std::int64_t offset = p * position_stride + std::int64_t(o) * C_in;
      std::copy(partials[0] + offset, partials[0] + offset + C_in, row);
      for (int group = 1; group < groups; ++group)
        for (int i = 0; i < C_in; ++i) row[i] += partials[group][offset + i];
    }
    detail::left_multiply<3, a, TransposedG<m>::value>(simd::Isa::portable, a, dU, a * C_in, C_in, tmp, a * C_in,
                                                        C_in, C_in);
    // dW[r][s] = sum_l tmp[r][l] G[l][s] = sum_l GT[s][l] tmp[r][l]
    detail::left_multiply<3, a, TransposedG<m>::value>(simd::Isa::portable, 3, tmp, C_in, a * C_in, dW, C_in,
                                                        3 * C_in, C_in);
    T* gw = grad_weight + std::int64_t(o) * C_in * 9;
    for (int i = 0; i < C_in; ++i)
      for (int t = 0; t < 9; ++t) gw[i * 9 + t] += dW[t * C_in + i];
  }
}

}  // namespace winograd
}  // namespace kernels
}  // namespace headnet
