// headnet/simd/register_tile.hpp: the two macros that register tiles are written with, in the
// kernel sources compiled once per instruction set (kernels/conv2d_direct_impl.hpp,
// kernels/conv2d_winograd_impl.hpp), where `V` is the vector type of simd/vec.hpp.
//
// A tile keeps its accumulators in named variables (acc00, acc01, acc10, ...), not in an array:
// g++ 12 keeps an array of registers on the stack and stores it back on every iteration (seen in
// the direct kernels, which it halved, and in the AVX2 Winograd products: 12 stores per 12 FMAs).
// HEADNET_FOR_ROWS(M) expands M(0) ... M(11); a tile with CB rows discards the rest with
// `if constexpr (CB > j)`. HEADNET_DISPATCH_ROWS(TILE, rows, args...) calls TILE<rows>(args...) for
// a run-time rows in 1..V::tile_rows, so that a block's last, partial tile is also unrolled.
#pragma once

// HEADNET_NOINLINE keeps a tile out of its caller, so that the tile's accumulators get the whole
// register file. Inlined into forward_image, whose ReLU epilogue holds a zero vector across the
// loop nest, g++ 12 kept one of the AVX2 forward tile's 12 accumulators on the stack: each tap then
// stored and reloaded it, and the tile ran at a third of the FMA peak (found with
// `objdump -d | grep 'vfmadd.*(%rsp)'`, docs/benchmarks.md).
#if defined(_MSC_VER) && !defined(__clang__)
#define HEADNET_NOINLINE __declspec(noinline)
#else
#define HEADNET_NOINLINE __attribute__((noinline))
#endif

#define HEADNET_FOR_ROWS(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)

// The common tile: CB rows x 2 registers, row j the broadcast w[j] times the two loaded vectors
// x0, x1 (the names the tile's code gives them), written to out + j * ld.
//   HEADNET_FOR_ROWS(HEADNET_TILE_ZERO_ROW)   declares acc<j>0 = acc<j>1 = 0 for every j
//   HEADNET_FOR_ROWS(HEADNET_TILE_FMA_ROW)    acc<j>0 += w[j] x0, acc<j>1 += w[j] x1 for j < CB
//   HEADNET_FOR_ROWS(HEADNET_TILE_STORE_ROW)  out[j * ld, + 2W) = acc<j>0, acc<j>1 for j < CB
#define HEADNET_TILE_ZERO_ROW(j) reg acc##j##0 = V::zero(), acc##j##1 = V::zero();
#define HEADNET_TILE_FMA_ROW(j)            \
  if constexpr (CB > j) {                  \
    const reg wj = V::broadcast(w + j);    \
    acc##j##0 = V::fma(wj, x0, acc##j##0); \
    acc##j##1 = V::fma(wj, x1, acc##j##1); \
  }
#define HEADNET_TILE_STORE_ROW(j)           \
  if constexpr (CB > j) {                   \
    V::storeu(out + j * ld, acc##j##0);     \
    V::storeu(out + j * ld + W, acc##j##1); \
  }

#define HEADNET_DISPATCH_ROWS(TILE, rows, ...)                                          \
  switch (rows) {                                                                       \
    case 1: TILE<1>(__VA_ARGS__); break;                                                \
    case 2: TILE<2>(__VA_ARGS__); break;                                                \
    case 3: TILE<3>(__VA_ARGS__); break;                                                \
    case 4: TILE<4>(__VA_ARGS__); break;                                                \
    case 5: TILE<5>(__VA_ARGS__); break;                                                \
    case 6: TILE<(V::tile_rows > 6 ? 6 : V::tile_rows)>(__VA_ARGS__); break;            \
    case 7: TILE<(V::tile_rows > 7 ? 7 : V::tile_rows)>(__VA_ARGS__); break;            \
    case 8: TILE<(V::tile_rows > 8 ? 8 : V::tile_rows)>(__VA_ARGS__); break;            \
    case 9: TILE<(V::tile_rows > 9 ? 9 : V::tile_rows)>(__VA_ARGS__); break;            \
    case 10: TILE<(V::tile_rows > 10 ? 10 : V::tile_rows)>(__VA_ARGS__); break;         \
    case 11: TILE<(V::tile_rows > 11 ? 11 : V::tile_rows)>(__VA_ARGS__); break;         \
    default: TILE<V::tile_rows>(__VA_ARGS__); break;                                    \
  }
