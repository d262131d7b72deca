// headnet/kernels/conv2d_direct_impl.hpp: the direct convolution kernels, written once against the
// vector operations of simd/vec.hpp. Not a header to include: kernels/conv2d_direct.hpp includes it
// once per instruction set (simd/for_each_isa.hpp), inside namespace direct::<isa> with `V` the
// vector type (simd::Avx512, simd::Avx2 or simd::Portable) and the compiler's target set to that
// instruction set. Read
// conv2d_direct.hpp first for what the kernels compute.
//
// Every size below follows from V: W = V::width floats per register, a pixel tile is 2 registers
// (2 W pixels), a register tile has tile_rows rows (output channels, taps or pixels) x 2 registers,
// and the by-channel layouts keep channels in blocks of 2 W.
//
// (No include guard: included once per instruction set.)

constexpr int W = V::width;                        ///< floats per register
constexpr int tile_rows = V::tile_rows;            ///< rows of a register tile
constexpr int forward_channels = tile_rows;        ///< output channels per forward register tile
constexpr int forward_pixels = 2 * W;              ///< pixels per forward register tile (two registers)
constexpr int grad_channels = 2;                   ///< output channels per weight-gradient tile
constexpr int grad_taps = tile_rows;               ///< kernel taps per weight-gradient tile
constexpr int channel_block = 2 * W;               ///< channels per block of the by-channel layouts
constexpr int slack = forward_pixels;              ///< zeros after a padded image: the last loads may overrun
constexpr int scatter_slack = forward_pixels;      ///< the same for the scattered input gradient
constexpr std::uintptr_t alignment = 4 * W;        ///< bytes of a register, for aligned loads

using reg = typename V::reg;

/// Row length of dy_ext, the output gradient on the extended grid: a whole number of pixel tiles.
inline std::int64_t grad_length(const PaddedGeometry& in, int K) {
  return round_up(extended_length(in, K), forward_pixels);
}

/// Whether these kernels can run the convolution: stride 1, and both the forward (input width
/// W + 2 padding) and the input gradient (output H x W from dy padded to width W + K - 1) need at
/// least one pixel tile.
inline bool supported(const ConvGeometry& g, int C_out) {
  if (g.stride != 1 || g.padding > g.kernel_size - 1 || C_out < 1) return false;
  const PaddedGeometry in{g.channels, g.height + 2 * g.padding, g.width + 2 * g.padding};
  const PaddedGeometry grad{C_out, g.height + g.kernel_size - 1, g.width + g.kernel_size - 1};
  return extended_length(in, g.kernel_size) >= forward_pixels && extended_length(grad, g.kernel_size) >= forward_pixels;
}

/// p rounded up to the register alignment.
inline float* align(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<std::uintptr_t>(p) + alignment - 1) & ~(alignment - 1));
}

/// Copies x (C, H, W) into xp (C, H + 2 pad, W + 2 pad) with zeros around, then `slack` zeros.
inline void pad_image(const float* x, int C, int H, int Wd, int pad, float* xp) {
  const int Hp = H + 2 * pad, Wp = Wd + 2 * pad;
  if (pad == 0) {
    std::memcpy(xp, x, sizeof(float) * std::size_t(C) * std::size_t(H) * std::size_t(Wd));
  } else {
    std::fill(xp, xp + std::int64_t(C) * Hp * Wp, 0.0f);
    for (int c = 0; c < C; ++c)
      for (int h = 0; h < H; ++h)
        std::memcpy(xp + (std::int64_t(c) * Hp + h + pad) * Wp + pad, x + (std::int64_t(c) * H + h) * Wd,
                    sizeof(float) * std::size_t(Wd));
  }
  std::fill(xp + std::int64_t(C) * Hp * Wp, xp + std::int64_t(C) * Hp * Wp + slack, 0.0f);
}

#include "headnet/kernels/transpose_impl.hpp"  // store_transposed_8x8, transpose_into

/// Forward weights in tile order: for each block of forward_channels output channels, for each tap,
/// the block's weights (zeros past the last channel). weight is (C_out, R) row-major.
inline void pack_forward_weights(const float* weight, int C_out, std::int64_t R, float* packed) {
  for (int co0 = 0; co0 < C_out; co0 += forward_channels)
    for (std::int64_t t = 0; t < R; ++t)
      for (int j = 0; j < forward_channels; ++j) *packed++ = co0 + j < C_out ? weight[(co0 + j) * R + t] : 0.0f;
}

/// The same for the input gradient's kernel: output channel c, tap (co, kh, kw) holds
/// weight[co][c][K-1-kh][K-1-kw].
inline void pack_flipped_weights(const float* weight, int C_out, int C, int K, float* packed) {
  const std::int64_t KK = std::int64_t(K) * K;
  for (int c0 = 0; c0 < C; c0 += forward_channels)
    for (int co = 0; co < C_out; ++co)
      for (int kh = 0; kh < K; ++kh)
        for (int kw = 0; kw < K; ++kw)
          for (int j = 0; j < forward_channels; ++j)
            *packed++ = c0 + j < C ? weight[(std::int64_t(co) * C + c0 + j) * KK + (K - 1 - kh) * K + (K - 1 - kw)]
                                   : 0.0f;
}

// Register tiles: simd/register_tile.hpp (named accumulators, HEADNET_DISPATCH_ROWS).
static_assert(tile_rows <= 12, "HEADNET_FOR_ROWS covers 12 rows");

// y_ext[j][p0, p0 + 2W) for the CB output channels of one block; `w` is that block's packed weights.
template <int CB>
HEADNET_NOINLINE inline void forward_tile(const float* xp, const std::int64_t* offsets, std::int64_t R,
                                          const float* w, std::int64_t p0, float* y_ext, std::int64_t ld) {
  HEADNET_FOR_ROWS(HEADNET_TILE_ZERO_ROW)
  for (std::int64_t t = 0; t < R; ++t, w += forward_channels) {
    const float* src = xp + offsets[t] + p0;
    reg x0 = V::loadu(src), x1 = V::loadu(src + W);
    V::pin(x0);
    V::pin(x1);
    HEADNET_FOR_ROWS(HEADNET_TILE_FMA_ROW)
  }
  float* out = y_ext + p0;
  HEADNET_FOR_ROWS(HEADNET_TILE_STORE_ROW)
}

// y (C_out, H_out, W_out) = conv(xp, packed weights) + bias, for one padded image, then max(y, 0)
// if relu (NaN stays NaN, as in kernels/relu.hpp). y_ext: scratch of forward_channels *
// extended_length floats.
inline void forward_image(const PaddedGeometry& in, int K, int C_out, const float* xp, const float* packed,
                          const std::int64_t* offsets, const float* bias, float* y, float* y_ext, bool relu = false) {
  const int H_out = in.height - K + 1, W_out = in.width - K + 1;
  const std::int64_t R = in.channels * std::int64_t(K) * K, L = extended_length(in, K);
  for (int co0 = 0; co0 < C_out; co0 += forward_channels, packed += R * forward_channels) {
    const int cb = std::min(forward_channels, C_out - co0);
    // The last tile is moved back to end at L: it recomputes a few pixels instead of overrunning.
    for (std::int64_t p = 0; p < L; p += forward_pixels) {
      const std::int64_t p0 = std::min(p, L - forward_pixels);
      HEADNET_DISPATCH_ROWS(forward_tile, cb, xp, offsets, R, packed, p0, y_ext, L)
    }
    for (int j = 0; j < cb; ++j) {
      const float b = bias ? bias[co0 + j] : 0.0f;
      float* out = y + std::int64_t(co0 + j) * H_out * W_out;
      for (int oh = 0; oh < H_out; ++oh) {
        const float* src = y_ext + j * L + std::int64_t(oh) * in.width;
        float* dst = out + std::int64_t(oh) * W_out;
        if (relu) {
          for (int ow = 0; ow < W_out; ++ow) {
            const float v = src[ow] + b;
            dst[ow] = v < 0.0f ? 0.0f : v;
          }
        } else {
          for (int ow = 0; ow < W_out; ++ow) dst[ow] = src[ow] + b;
        }
      }
    }
  }
}

// grad[a][b] += sum_i sum_p dy_ext_i[a][p] * xp_i[offsets[b] + p], for A <= 2 channels, B <=
// grad_taps taps and the `images` images i whose padded inputs are xp_stride apart and whose dy_ext
// are dy_stride apart: summing several images in registers before the horizontal sums matters for
// small layers, where a tile is only a few vectors long. grad points at the block's first channel
// and tap, rows R apart; Ln is a multiple of 2 W.
template <int A, int B>
inline void weight_tile(const float* xp, std::int64_t xp_stride, const std::int64_t* offsets, const float* dy_ext,
                        std::int64_t dy_stride, std::int64_t Ln, int images, float* grad, std::int64_t R) {
  static_assert(A >= 1 && A <= 2 && B >= 1 && B <= grad_taps, "tile size");
#define HEADNET_DECLARE(b) reg acc0##b = V::zero(), acc1##b = V::zero();
  HEADNET_FOR_ROWS(HEADNET_DECLARE)
#undef HEADNET_DECLARE
  for (int i = 0; i < images; ++i, xp += xp_stride, dy_ext += dy_stride) {
#define HEADNET_SOURCE(b) const float* src##b = xp + offsets[B > b ? b : 0];
    HEADNET_FOR_ROWS(HEADNET_SOURCE)
#undef HEADNET_SOURCE
    const float* dy0 = dy_ext;
    const float* dy1 = dy_ext + (A > 1 ? Ln : 0);
    for (std::int64_t p = 0; p < Ln; p += W) {
      const reg d0 = V::load(dy0 + p);
      const reg d1 = A > 1 ? V::load(dy1 + p) : d0;
#define HEADNET_TAP(b)                                           \
  if constexpr (B > b) {                                         \
    reg x##b = V::loadu(src##b + p);                             \
    V::pin(x##b);                                                \
    acc0##b = V::fma(d0, x##b, acc0##b);                         \
    if constexpr (A > 1) acc1##b = V::fma(d1, x##b, acc1##b);    \
  }
      HEADNET_FOR_ROWS(HEADNET_TAP)
#undef HEADNET_TAP
    }
  }
#define HEADNET_REDUCE(b)                                        \
  if constexpr (B > b) {                                         \
    grad[b] += V::hsum(acc0##b);                                 \
    if constexpr (A > 1) grad[R + b] += V::hsum(acc1##b);        \
  }
  HEADNET_FOR_ROWS(HEADNET_REDUCE)
#undef HEADNET_REDUCE
}

template <int B>
inline void weight_tile_one(const float* xp, std::int64_t xp_stride, const std::int64_t* offsets, const float* dy_ext,
                            std::int64_t dy_stride, std::int64_t Ln, int images, float* grad, std::int64_t R) {
  weight_tile<1, B>(xp, xp_stride, offsets, dy_ext, dy_stride, Ln, images, grad, R);
}
template <int B>
inline void weight_tile_two(const float* xp, std::int64_t xp_stride, const std::int64_t* offsets, const float* dy_ext,
                            std::int64_t dy_stride, std::int64_t Ln, int images, float* grad, std::int64_t R) {
  weight_tile<2, B>(xp, xp_stride, offsets, dy_ext, dy_stride, Ln, images, grad, R);
}

// Taps [0, tap_count) from offsets and grad on; grad's rows are R apart.
template <int A>
inline void weight_tiles_for_channels(const float* xp, std::int64_t xp_stride, const std::int64_t* offsets,
                                      std::int64_t tap_count, std::int64_t R, const float* dy_ext,
                                      std::int64_t dy_stride, std::int64_t Ln, int images, float* grad) {
  for (std::int64_t t = 0; t < tap_count; t += grad_taps) {
    const int taps = int(std::min<std::int64_t>(grad_taps, tap_count - t));
    if constexpr (A == 2) {
      HEADNET_DISPATCH_ROWS(weight_tile_two, taps, xp, xp_stride, offsets + t, dy_ext, dy_stride, Ln, images,
                            grad + t, R)
    } else {
      HEADNET_DISPATCH_ROWS(weight_tile_one, taps, xp, xp_stride, offsets + t, dy_ext, dy_stride, Ln, images,
                            grad + t, R)
    }
  }
}

// dy (C_out, H_out, W_out) -> dy_ext (C_out, Ln): each output row at its extended position, zeros
// in the K-1 columns past each row and up to Ln. With relu_output (a ReLU fused into the layer),
// dy is the gradient of relu(y) and becomes dy * [relu_output > 0] on the way. Adds rowsum of the
// result to grad_bias when given.
inline void extend_grad_output(const PaddedGeometry& in, int K, int C_out, const float* dy, float* dy_ext,
                               float* grad_bias, const float* relu_output = nullptr) {
  const int H_out = in.height - K + 1, W_out = in.width - K + 1;
  const std::int64_t Ln = grad_length(in, K);
  for (int co = 0; co < C_out; ++co) {
    float* row = dy_ext + co * Ln;
    std::fill(row, row + Ln, 0.0f);
    const std::int64_t first = std::int64_t(co) * H_out * W_out;
    for (int oh = 0; oh < H_out; ++oh) {
      const float* src = dy + first + std::int64_t(oh) * W_out;
      float* dst = row + std::int64_t(oh) * in.width;
      if (relu_output) {
        const float* mask = relu_output + first + std::int64_t(oh) * W_out;
        for (int ow = 0; ow < W_out; ++ow) {  // src read unconditionally, or SSE2 keeps this scalar
          const float d = src[ow];
          dst[ow] = mask[ow] > 0.0f ? d : 0.0f;
        }
      } else {
        std::memcpy(dst, src, sizeof(float) * W_out);
      }
    }
    if (grad_bias) {
      // Sums in registers: one running sum is a chain of dependent adds, which cost as much as the
      // whole weight gradient of a 3-channel layer. Ln is a multiple of 2 W.
      reg s0 = V::zero(), s1 = V::zero();
      for (std::int64_t i = 0; i < Ln; i += 2 * W) {
        s0 = V::add(s0, V::loadu(row + i));
        s1 = V::add(s1, V::loadu(row + i + W));
      }
      grad_bias[co] += V::hsum(V::add(s0, s1));
    }
  }
}

// grad_weight (C_out, R) += sum over `images` images of dy_ext (x) xp (see weight_tile for the
// strides), for the output channels in `channels` (its begin a multiple of grad_channels) and the
// taps in `taps` (its begin a multiple of grad_taps). xp must have `slack` zeros after each image.
inline void weight_gradient(const PaddedGeometry& in, int K, detail::BlockRange channels, detail::BlockRange taps,
                            const float* xp, std::int64_t xp_stride, const float* dy_ext, std::int64_t dy_stride,
                            int images, const std::int64_t* offsets, float* grad_weight) {
  const std::int64_t R = in.channels * std::int64_t(K) * K, Ln = grad_length(in, K);
  offsets += taps.begin;
  grad_weight += taps.begin;
  int co = channels.begin;
  for (; co + grad_channels <= channels.end; co += grad_channels)
    weight_tiles_for_channels<grad_channels>(xp, xp_stride, offsets, taps.size(), R, dy_ext + co * Ln, dy_stride, Ln,
                                             images, grad_weight + co * R);
  if (channels.end - co == 1)
    weight_tiles_for_channels<1>(xp, xp_stride, offsets, taps.size(), R, dy_ext + co * Ln, dy_stride, Ln, images,
                                 grad_weight + co * R);
}

// The by-channel layouts keep output channels along the vector, in blocks of 2 W channels (a last
// block of W): they apply when the channels come in whole registers.
inline bool channels_fill_registers(int C_out) { return C_out % W == 0; }

// The forward with output channels along the vector, for the same layers as the weight gradient by
// channel: each tile computes tile_rows real output pixels x 2 W channels, so the extended rows'
// wasted columns (4 of every 14 on the networks' conv2) are never computed. Per tap: 2 aligned
// weight vectors, tile_rows broadcasts of the input (one per pixel, each at its own base) and
// 2 tile_rows FMAs.
//
// Packed weights: for each block of channels, for each tap t, the block's weights weight[co][t].
inline void pack_forward_weights_by_channel(const float* weight, int C_out, std::int64_t R, float* packed) {
  for (int co0 = 0; co0 < C_out; co0 += channel_block) {
    const int width = std::min(channel_block, C_out - co0);
    transpose_into(weight + co0 * R, R, width, int(R), packed, width);
    packed += R * width;
  }
}

// acc[j][c] (+)= sum over `taps` taps of w[t][c] * xp[base[j] + offsets[t]], for c < NV W, j < PB
// (tile_rows or half of it): one tile of pixels p0..p0+PB-1 (base[j]: pixel p0 + j's position in
// the padded input) over one chunk of taps; `first` starts from zero, else from acc.
template <int NV, int PB>
inline void forward_tile_by_channel(const float* xp, const std::int64_t* base, const std::int64_t* offsets,
                                    std::int64_t taps, const float* w, bool first, float* acc) {
  constexpr int ld = channel_block;
#define HEADNET_DECLARE(j)                                                                         \
  reg acc##j##0 = V::zero(), acc##j##1 = V::zero();                                                \
  const float* src##j = xp + base[PB > j ? j : 0];                                                 \
  if constexpr (PB > j) {                                                                          \
    if (!first) {                                                                                  \
      acc##j##0 = V::load(acc + ld * j);                                                           \
      if constexpr (NV > 1) acc##j##1 = V::load(acc + ld * j + W);                                 \
    }                                                                                              \
  }
  HEADNET_FOR_ROWS(HEADNET_DECLARE)
#undef HEADNET_DECLARE
  for (std::int64_t t = 0; t < taps; ++t, w += NV * W) {
    const std::int64_t off = offsets[t];
    reg w0 = V::load(w), w1 = NV > 1 ? V::load(w + W) : w0;
    V::pin(w0);
    V::pin(w1);
#define HEADNET_FMA(j)                                                                             \
  if constexpr (PB > j) {                                                                          \
    const reg xj = V::broadcast(src##j + off);                                                     \
    acc##j##0 = V::fma(xj, w0, acc##j##0);                                                         \
    if constexpr (NV > 1) acc##j##1 = V::fma(xj, w1, acc##j##1);                                   \
  }
    HEADNET_FOR_ROWS(HEADNET_FMA)
#undef HEADNET_FMA
  }
#define HEADNET_STORE(j)                                                                           \
  if constexpr (PB > j) {                                                                          \
    V::store(acc + ld * j, acc##j##0);                                                             \
    if constexpr (NV > 1) V::store(acc + ld * j + W, acc##j##1);                                   \
  }
  HEADNET_FOR_ROWS(HEADNET_STORE)
#undef HEADNET_STORE
}

// Taps per chunk of the by-channel forward: 256 taps of 2 W weights (16 KiB for AVX2), so a
// chunk's weights and the input planes it reads stay in L1 while every pixel tile of the image
// passes.
constexpr std::int64_t forward_chunk_taps = 256;

/// Floats of scratch per pixel tile of the by-channel forward.
constexpr std::int64_t forward_tile_floats = std::int64_t(tile_rows) * channel_block;

// Pixels per by-channel forward tile for an image of P output pixels: tile_rows, or half as many
// where that computes fewer pixels (the last tile is moved back and recomputes some) and a half tile
// still has 6 rows: 7x7 images (49 pixels) on AVX-512 compute 54 pixels in tiles of 6 instead of
// 60 in tiles of 12, 13% faster on 256 -> 256 (docs/benchmarks.md).
inline int forward_pixels_by_channel(std::int64_t P) {
  constexpr int half = tile_rows / 2;
  auto computed = [&](int rows) { return (P + rows - 1) / rows * rows; };
  return half >= 6 && computed(half) < computed(tile_rows) ? half : tile_rows;
}

inline std::int64_t forward_tiles_by_channel(std::int64_t P) {
  const int rows = forward_pixels_by_channel(P);
  return (P + rows - 1) / rows;
}

// y (C_out, H_out, W_out) of one padded image, by channel. base: scratch of H_out*W_out entries;
// acc: aligned scratch of forward_tile_floats * forward_tiles_by_channel(P) floats.
inline void forward_image_by_channel(const PaddedGeometry& in, int K, int C_out, const float* xp,
                                     const float* packed, const std::int64_t* offsets, const float* bias, float* y,
                                     std::int64_t* base, float* acc, bool relu) {
  const int H_out = in.height - K + 1, W_out = in.width - K + 1;
  const std::int64_t R = in.channels * std::int64_t(K) * K, P = std::int64_t(H_out) * W_out;
  const std::int64_t tiles = forward_tiles_by_channel(P);
  const int rows = forward_pixels_by_channel(P);
  for (int oh = 0; oh < H_out; ++oh)
    for (int ow = 0; ow < W_out; ++ow) base[oh * W_out + ow] = std::int64_t(oh) * in.width + ow;
  // The last tile is moved back to end at P: it recomputes a few pixels instead of overrunning.
  auto tile_start = [&](std::int64_t k) { return std::min<std::int64_t>(rows * k, P - rows); };
  for (int co0 = 0; co0 < C_out; co0 += channel_block) {
    const int width = std::min(channel_block, C_out - co0);
    for (std::int64_t t0 = 0; t0 < R; t0 += forward_chunk_taps) {
      const std::int64_t taps = std::min(forward_chunk_taps, R - t0);
      for (std::int64_t k = 0; k < tiles; ++k) {
        float* tile = acc + forward_tile_floats * k;
        const std::int64_t* at = base + tile_start(k);
        const float* w = packed + t0 * width;
        constexpr int half = tile_rows / 2 >= 6 ? tile_rows / 2 : tile_rows;
        if (width == channel_block && rows == tile_rows)
          forward_tile_by_channel<2, tile_rows>(xp, at, offsets + t0, taps, w, t0 == 0, tile);
        else if (width == channel_block)
          forward_tile_by_channel<2, half>(xp, at, offsets + t0, taps, w, t0 == 0, tile);
        else if (rows == tile_rows)
          forward_tile_by_channel<1, tile_rows>(xp, at, offsets + t0, taps, w, t0 == 0, tile);
        else
          forward_tile_by_channel<1, half>(xp, at, offsets + t0, taps, w, t0 == 0, tile);
      }
    }
    // Transpose on the way out (tiles hold pixels x channels), adding the bias.
    for (std::int64_t k = 0; k < tiles; ++k) {
      const std::int64_t p0 = tile_start(k);
      for (int c = 0; c < width; ++c) {
        const float b = bias ? bias[co0 + c] : 0.0f;
        float* out = y + (co0 + c) * P + p0;
        for (int j = 0; j < rows; ++j) {
          const float v = acc[forward_tile_floats * k + channel_block * j + c] + b;
          out[j] = relu && v < 0.0f ? 0.0f : v;
        }
      }
    }
    packed += R * width;
  }
}

// Whether the forward runs by channel: channels in whole registers, at least one pixel tile, and
// extended rows that waste a fifth or more.
inline bool forward_by_channel_applies(const PaddedGeometry& in, int K, int C_out) {
  const std::int64_t W_out = in.width - K + 1, H_out = in.height - K + 1;
  return channels_fill_registers(C_out) && H_out * W_out >= tile_rows && W_out * 5 <= std::int64_t(in.width) * 4;
}

// The weight gradient with output channels along the vector instead of pixels, for layers whose
// output channels fill whole registers. It computes real pixels only (the extended rows of both
// networks' conv2 are 14 wide for 10 real pixels) and needs no horizontal sums:
//   gradT[t][co] += sum_i sum_(oh, ow) xp_i[offset(t) + oh*Wp + ow] * dyT_i[oh*W_out + ow][co]
// over real pixels only, with dyT the output gradient transposed to pixel-major (made by
// transpose_grad_output, in blocks of 2 W channels). A tile is tile_rows taps x 2 W channels: per
// pixel, 2 aligned loads of dyT, tile_rows broadcasts of the input and 2 tile_rows FMAs.
template <int TB, int NV>
inline void weight_tile_by_channel(const float* xp, std::int64_t xp_stride, const std::int64_t* offsets,
                                   const float* dyT, std::int64_t dyT_stride, int images, int H_out, int W_out,
                                   int Wp, int C_out, float* gradT) {
  static_assert(TB >= 1 && TB <= tile_rows && (NV == 1 || NV == 2), "tile size");
#define HEADNET_DECLARE(j) reg acc##j##0 = V::zero(), acc##j##1 = V::zero();
  HEADNET_FOR_ROWS(HEADNET_DECLARE)
#undef HEADNET_DECLARE
  for (int i = 0; i < images; ++i, xp += xp_stride, dyT += dyT_stride) {
#define HEADNET_SOURCE(j) const float* src##j = xp + offsets[TB > j ? j : 0];
    HEADNET_FOR_ROWS(HEADNET_SOURCE)
#undef HEADNET_SOURCE
    const float* d = dyT;
    for (int oh = 0; oh < H_out; ++oh) {
      const std::int64_t row = std::int64_t(oh) * Wp;
      for (int ow = 0; ow < W_out; ++ow, d += W * NV) {
        const std::int64_t p = row + ow;
        reg d0 = V::load(d), d1 = NV > 1 ? V::load(d + W) : d0;
        V::pin(d0);
        V::pin(d1);
#define HEADNET_FMA(j)                                              \
  if constexpr (TB > j) {                                           \
    const reg xj = V::broadcast(src##j + p);                        \
    acc##j##0 = V::fma(xj, d0, acc##j##0);                          \
    if constexpr (NV > 1) acc##j##1 = V::fma(xj, d1, acc##j##1);    \
  }
        HEADNET_FOR_ROWS(HEADNET_FMA)
#undef HEADNET_FMA
      }
    }
  }
#define HEADNET_STORE(j)                                                              \
  if constexpr (TB > j) {                                                             \
    float* g = gradT + j * C_out;                                                     \
    V::storeu(g, V::add(V::loadu(g), acc##j##0));                                     \
    if constexpr (NV > 1) V::storeu(g + W, V::add(V::loadu(g + W), acc##j##1));       \
  }
  HEADNET_FOR_ROWS(HEADNET_STORE)
#undef HEADNET_STORE
}

template <int TB>
inline void weight_tile_by_channel_one(const float* xp, std::int64_t xp_stride, const std::int64_t* offsets,
                                       const float* dyT, std::int64_t dyT_stride, int images, int H_out, int W_out,
                                       int Wp, int C_out, float* gradT) {
  weight_tile_by_channel<TB, 1>(xp, xp_stride, offsets, dyT, dyT_stride, images, H_out, W_out, Wp, C_out, gradT);
}
template <int TB>
inline void weight_tile_by_channel_two(const float* xp, std::int64_t xp_stride, const std::int64_t* offsets,
                                       const float* dyT, std::int64_t dyT_stride, int images, int H_out, int W_out,
                                       int Wp, int C_out, float* gradT) {
  weight_tile_by_channel<TB, 2>(xp, xp_stride, offsets, dyT, dyT_stride, images, H_out, W_out, Wp, C_out, gradT);
}

template <int NV>
inline void weight_tiles_by_channel(const float* xp, std::int64_t xp_stride, const std::int64_t* offsets,
                                    std::int64_t tap_count, const float* dyT, std::int64_t dyT_stride, int images,
                                    int H_out, int W_out, int Wp, int C_out, float* gradT) {
  for (std::int64_t t = 0; t < tap_count; t += tile_rows) {
    const int taps = int(std::min<std::int64_t>(tile_rows, tap_count - t));
    if constexpr (NV == 2) {
      HEADNET_DISPATCH_ROWS(weight_tile_by_channel_two, taps, xp, xp_stride, offsets + t, dyT, dyT_stride, images,
                            H_out, W_out, Wp, C_out, gradT + t * C_out)
    } else {
      HEADNET_DISPATCH_ROWS(weight_tile_by_channel_one, taps, xp, xp_stride, offsets + t, dyT, dyT_stride, images,
                            H_out, W_out, Wp, C_out, gradT + t * C_out)
    }
  }
}

// gradT (R, C_out) += the weight gradient of `images` images (see weight_tile_by_channel), for the
// output channels in `channels` (its begin a multiple of channel_block) and the taps in `taps` (its
// begin a multiple of tile_rows). C_out must fill whole registers; dyT rows aligned.
inline void weight_gradient_by_channel(const PaddedGeometry& in, int K, int C_out, detail::BlockRange channels,
                                       detail::BlockRange taps, const float* xp, std::int64_t xp_stride,
                                       const float* dyT, std::int64_t dyT_stride, int images,
                                       const std::int64_t* offsets, float* gradT) {
  const int H_out = in.height - K + 1, W_out = in.width - K + 1;
  const std::int64_t P = std::int64_t(H_out) * W_out;
  offsets += taps.begin;
  gradT += std::int64_t(taps.begin) * C_out;
  int co = channels.begin;
  for (; co + channel_block <= channels.end; co += channel_block)
    weight_tiles_by_channel<2>(xp, xp_stride, offsets, taps.size(), dyT + co * P, dyT_stride, images, H_out, W_out,
                               in.width, C_out, gradT + co);
  if (co < channels.end)
    weight_tiles_by_channel<1>(xp, xp_stride, offsets, taps.size(), dyT + co * P, dyT_stride, images, H_out, W_out,
                               in.width, C_out, gradT + co);
}

// dy (C_out, P) -> dyT (P, C_out) in blocks of channel_block channels (a last block of W), masked
// by relu_output > 0 when given; adds the sums over P to grad_bias when given. On x86, in 8 x 8
// blocks through 256-bit registers: a scalar transpose of the wide conv1's 128 x 784 dy per image
// cost more than the by-channel tile saved.
inline void transpose_grad_output(int C_out, std::int64_t P, const float* dy, const float* relu_output, float* dyT,
                                  float* grad_bias) {
  // Block b holds (P, width) from dyT + channel_block b P, so that a tile reads its channels as
  // one contiguous stream.
  auto width = [&](int co) { return std::min(channel_block, C_out - co / channel_block * channel_block); };
  auto at = [&](std::int64_t p, int co) {
    return dyT + std::int64_t(co / channel_block * channel_block) * P + p * width(co) + co % channel_block;
  };
  int co0 = 0;
#if HEADNET_ISA_X86
  for (; co0 + 8 <= C_out; co0 += 8) {
    __m256 sums[8];
    for (auto& v : sums) v = _mm256_setzero_ps();
    std::int64_t p0 = 0;
    for (; p0 + 8 <= P; p0 += 8) {
      __m256 r[8];
      for (int c = 0; c < 8; ++c) {
        r[c] = _mm256_loadu_ps(dy + (co0 + c) * P + p0);
        if (relu_output) {
          const __m256 keep = _mm256_cmp_ps(_mm256_loadu_ps(relu_output + (co0 + c) * P + p0), _mm256_setzero_ps(),
                                            _CMP_GT_OQ);
          r[c] = _mm256_and_ps(r[c], keep);
        }
        sums[c] = _mm256_add_ps(sums[c], r[c]);
      }
      store_transposed_8x8(r, at(p0, co0), width(co0));  // rows were channels, now pixels
    }
    for (int c = 0; c < 8; ++c) {
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, sums[c]);
      float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
      const float* src = dy + (co0 + c) * P;
      const float* mask = relu_output ? relu_output + (co0 + c) * P : nullptr;
      for (std::int64_t p = p0; p < P; ++p) {
        const float v = mask && !(mask[p] > 0.0f) ? 0.0f : src[p];
        *at(p, co0 + c) = v;
        sum += v;
      }
      if (grad_bias) grad_bias[co0 + c] += sum;
    }
  }
#endif
  for (int co = co0; co < C_out; ++co) {  // channels past the last 8 (or all, in portable code)
    const float* src = dy + co * P;
    const float* mask = relu_output ? relu_output + co * P : nullptr;
    float sum = 0;
    for (std::int64_t p = 0; p < P; ++p) {
      const float v = mask && !(mask[p] > 0.0f) ? 0.0f : src[p];
      *at(p, co) = v;
      sum += v;
    }
    if (grad_bias) grad_bias[co] += sum;
  }
}

// The input gradient by scattering, for layers whose input gradient as a "full" convolution would
// mostly multiply padding: wide conv2 (14x14 -> 10x10, 5x5) gathers over dy padded to 18x18, twice
// the products of the definition. Here each unfolded input row r = (c, kh, kw) receives
//   dxp[offset(r) + p] += sum_co weight[co][r] * dy_ext[co][p]
// i.e. GEMM (weight^T x dy_ext) and col2im fused, the GEMM's tile folded into dxp from registers.
// A tile is forward_channels input channels at one tap x 2 W pixels: its destinations lie in
// different channel planes, so its read-modify-writes never overlap each other (a load that partly
// overlaps a store still in flight would stall).
//
// Packed weights: for each block of forward_channels input channels, for each tap, for each output
// channel, the block's weights weight[co][c0 + j][tap] (zeros past the last channel).
inline void pack_scatter_weights(const float* weight, int C_out, int C, int K, float* packed) {
  const std::int64_t KK = std::int64_t(K) * K;
  for (int c0 = 0; c0 < C; c0 += forward_channels)
    for (std::int64_t tap = 0; tap < KK; ++tap)
      for (int co = 0; co < C_out; ++co)
        for (int j = 0; j < forward_channels; ++j)
          *packed++ = c0 + j < C ? weight[(std::int64_t(co) * C + c0 + j) * KK + tap] : 0.0f;
}

// dxp[j * plane + p0 + q] += sum_co w[co][j] * dy_ext[co][p0 + q] for j < CB, q < 2 W; dxp points at
// the tile's first channel, shifted by its tap.
template <int CB>
inline void scatter_tile(const float* dy_ext, std::int64_t ld, int C_out, const float* w, std::int64_t p0, float* dxp,
                         std::int64_t plane) {
  HEADNET_FOR_ROWS(HEADNET_TILE_ZERO_ROW)
  const float* d = dy_ext + p0;
  for (int co = 0; co < C_out; ++co, w += forward_channels, d += ld) {
    reg x0 = V::load(d), x1 = V::load(d + W);
    V::pin(x0);
    V::pin(x1);
    HEADNET_FOR_ROWS(HEADNET_TILE_FMA_ROW)
  }
#define HEADNET_ADD(j)                                                  \
  if constexpr (CB > j) {                                               \
    float* dst = dxp + j * plane + p0;                                  \
    V::storeu(dst, V::add(V::loadu(dst), acc##j##0));                   \
    V::storeu(dst + W, V::add(V::loadu(dst + W), acc##j##1));           \
  }
  HEADNET_FOR_ROWS(HEADNET_ADD)
#undef HEADNET_ADD
}

// dx (C, H, W) of one image from its dy_ext (C_out, grad_length) by scattering, for the input
// channels [c_begin, c_end) (c_begin a multiple of forward_channels). dxp: scratch of in.size() +
// scatter_slack floats. `packed` from pack_scatter_weights.
inline void input_gradient_scatter(const PaddedGeometry& in, int K, int C_out, int pad, int c_begin, int c_end,
                                   const float* dy_ext, const float* packed, float* dxp, float* dx) {
  const std::int64_t Ln = grad_length(in, K), plane = in.plane();
  std::fill(dxp, dxp + in.size() + scatter_slack, 0.0f);
  packed += std::int64_t(c_begin) * K * K * C_out;
  for (int c0 = c_begin; c0 < c_end; c0 += forward_channels) {
    const int cb = std::min(forward_channels, c_end - c0);
    for (int kh = 0; kh < K; ++kh)
      for (int kw = 0; kw < K; ++kw, packed += std::int64_t(C_out) * forward_channels) {
        float* base = dxp + c0 * plane + std::int64_t(kh) * in.width + kw;
        for (std::int64_t p0 = 0; p0 < Ln; p0 += forward_pixels)
          HEADNET_DISPATCH_ROWS(scatter_tile, cb, dy_ext, Ln, C_out, packed, p0, base, plane)
      }
  }
  // Crop the padding away.
  const int H = in.height - 2 * pad, Wd = in.width - 2 * pad;
  for (int c = c_begin; c < c_end; ++c)
    for (int h = 0; h < H; ++h)
      std::memcpy(dx + (std::int64_t(c) * H + h) * Wd, dxp + c * plane + std::int64_t(h + pad) * in.width + pad,
                  sizeof(float) * std::size_t(Wd));
}

// The input gradient by channel, for the layers the scatter serves whose input channels fill whole
// registers: the scatter computes every pixel of dy's extended rows (160 for the 100 real ones of
// the wide network's conv2, 14x14 -> 10x10 at 5x5), this only the real ones, with the input
// channels along the vector:
//   dxT[base(p) + tap][c] += sum_co dyT[p][co] * weight[co][c][tap]
// dyT is the output gradient by pixel (transpose_grad_output, made for the weight gradient by
// channel anyway), base(p) output pixel p's place in the padded input, and dxT the padded input's
// gradient by pixel, transposed into dx at the end. A tile is PB pixels x NV registers of channels
// at one tap: per output channel, PB broadcasts of dyT, NV loads of weights and PB NV FMAs, then
// PB NV read-modify-writes to PB different pixels.
//
// Packed weights: for each block of channel_block input channels, for each tap, for each output
// channel, the block's weights weight[co][c0 + j][tap].
inline void pack_scatter_weights_by_channel(const float* weight, int C_out, int C, int K, float* packed) {
  const std::int64_t KK = std::int64_t(K) * K;
  for (int c0 = 0; c0 < C; c0 += channel_block) {
    const int width = std::min(channel_block, C - c0);
    for (int co = 0; co < C_out; ++co)  // [co][c0 + j][tap] -> [tap][co][j]
      transpose_into(weight + (std::int64_t(co) * C + c0) * KK, KK, width, int(KK), packed + co * width,
                     std::int64_t(C_out) * width);
    packed += KK * C_out * width;
  }
}

// dxT[(base[p0 + j]) * C + (0, NV W)] += the tile's sums, for j < PB; dxT points at the tap's offset
// and the channel block's first channel, w at the block's weights for the tap ([co][width]).
template <int PB, int NV>
inline void input_tile_by_channel(const float* dyT, std::int64_t P, int C_out, std::int64_t p0, const float* w,
                                  int width, const std::int64_t* base, int C, float* dxT) {
#define HEADNET_DECLARE(j) reg acc##j##0 = V::zero(), acc##j##1 = V::zero();
  HEADNET_FOR_ROWS(HEADNET_DECLARE)
#undef HEADNET_DECLARE
  for (int co0 = 0; co0 < C_out; co0 += channel_block) {
    const int block = std::min(channel_block, C_out - co0);  // dyT's layout: see transpose_grad_output
    const float* d = dyT + std::int64_t(co0) * P + p0 * block;
    for (int k = 0; k < block; ++k, w += width) {
      reg w0 = V::loadu(w), w1 = NV > 1 ? V::loadu(w + W) : w0;
      V::pin(w0);
      V::pin(w1);
#define HEADNET_FMA(j)                                                                             \
  if constexpr (PB > j) {                                                                          \
    const reg dj = V::broadcast(d + j * block + k);                                                \
    acc##j##0 = V::fma(dj, w0, acc##j##0);                                                         \
    if constexpr (NV > 1) acc##j##1 = V::fma(dj, w1, acc##j##1);                                   \
  }
      HEADNET_FOR_ROWS(HEADNET_FMA)
#undef HEADNET_FMA
    }
  }
#define HEADNET_ADD(j)                                                                             \
  if constexpr (PB > j) {                                                                          \
    float* dst = dxT + base[p0 + j] * C;                                                           \
    V::storeu(dst, V::add(V::loadu(dst), acc##j##0));                                              \
    if constexpr (NV > 1) V::storeu(dst + W, V::add(V::loadu(dst + W), acc##j##1));               \
  }
  HEADNET_FOR_ROWS(HEADNET_ADD)
#undef HEADNET_ADD
}

template <int PB>
inline void input_tile_by_channel_one(const float* dyT, std::int64_t P, int C_out, std::int64_t p0, const float* w,
                                      int width, const std::int64_t* base, int C, float* dxT) {
  input_tile_by_channel<PB, 1>(dyT, P, C_out, p0, w, width, base, C, dxT);
}
template <int PB>
inline void input_tile_by_channel_two(const float* dyT, std::int64_t P, int C_out, std::int64_t p0, const float* w,
                                      int width, const std::int64_t* base, int C, float* dxT) {
  input_tile_by_channel<PB, 2>(dyT, P, C_out, p0, w, width, base, C, dxT);
}

// dx (C, H, W) of one image from its dyT (P, C_out, in transpose_grad_output's blocks) by channel,
// for the input channels [c_begin, c_end) (c_begin a multiple of channel_block). base: output pixel
// p's place in the padded input (H_out W_out entries); dxT: scratch of in.size() floats; `packed`
// from pack_scatter_weights_by_channel.
inline void input_gradient_by_channel(const PaddedGeometry& in, int K, int C_out, int pad, int c_begin, int c_end,
                                      const float* dyT, const float* packed, const std::int64_t* base, float* dxT,
                                      float* dx) {
  const int C = in.channels, H_out = in.height - K + 1, W_out = in.width - K + 1;
  const std::int64_t P = std::int64_t(H_out) * W_out, KK = std::int64_t(K) * K;
  std::fill(dxT, dxT + in.size(), 0.0f);
  for (int c0 = c_begin; c0 < c_end; c0 += channel_block) {
    const int width = std::min(channel_block, c_end - c0);  // a whole number of registers (C fills them)
    for (int kh = 0; kh < K; ++kh)
      for (int kw = 0; kw < K; ++kw) {
        const float* w = packed + std::int64_t(c0) * KK * C_out + (std::int64_t(kh) * K + kw) * C_out * width;
        float* dst = dxT + (std::int64_t(kh) * in.width + kw) * C + c0;
        for (std::int64_t p0 = 0; p0 < P; p0 += tile_rows) {
          const int rows = int(std::min<std::int64_t>(tile_rows, P - p0));
          if (width == channel_block) {
            HEADNET_DISPATCH_ROWS(input_tile_by_channel_two, rows, dyT, P, C_out, p0, w, width, base, C, dst)
          } else {
            HEADNET_DISPATCH_ROWS(input_tile_by_channel_one, rows, dyT, P, C_out, p0, w, width, base, C, dst)
          }
        }
      }
  }
  // dxT (padded pixels, C) -> dx (C, H, W), the padding cropped away.
  const int H = in.height - 2 * pad, Wd = in.width - 2 * pad;
  const std::int64_t plane = std::int64_t(H) * Wd;
  for (int h = 0; h < H; ++h) {
    const float* row = dxT + (std::int64_t(h + pad) * in.width + pad) * C;  // pixel w's channels at row + w C
    int w0 = 0;
#if HEADNET_ISA_X86
    for (; Wd >= 8 && w0 < Wd; w0 += 8) {  // 8 pixels x 8 channels at a time; the last block moved back
      w0 = std::min(w0, Wd - 8);
      for (int c = c_begin; c < c_end; c += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(row + std::int64_t(w0 + i) * C + c);
        store_transposed_8x8(r, dx + c * plane + std::int64_t(h) * Wd + w0, plane);
      }
    }
#endif
    for (; w0 < Wd; ++w0)
      for (int c = c_begin; c < c_end; ++c) dx[c * plane + std::int64_t(h) * Wd + w0] = row[std::int64_t(w0) * C + c];
  }
}

// Whether the input gradient by channel applies where the scatter was chosen: input channels in
// whole registers (on x86 also a multiple of 8, for the 8 x 8 transposes) and fewer pixels than the
// scatter's extended rows.
inline bool input_gradient_by_channel_applies(const PaddedGeometry& in, int K) {
  const std::int64_t P = std::int64_t(in.height - K + 1) * (in.width - K + 1);
  return channels_fill_registers(in.channels) && in.channels % 8 == 0 && P < grad_length(in, K);
}

// Whether the input gradient scatters (above) rather than gathers (the "full" convolution): the
// scatter visits C*K*K rows x grad_length pixels x C_out, the gather C x the extended length of dy
// padded by K-1-pad x C_out*K*K. Equal for 3x3 padding-1 layers, where the gather's plain loads
// win; the scatter does about half the work on small images with no padding.
inline bool prefer_scatter(const PaddedGeometry& in, const PaddedGeometry& grad, int K) {
  const std::int64_t scatter = grad_length(in, K), gather = round_up(extended_length(grad, K), forward_pixels);
  return scatter * 5 < gather * 4;
}

// prefer_scatter for a layer: the input as padded for the forward, dy padded by K-1-padding.
inline bool input_gradient_scatters(const ConvGeometry& g, int C_out) {
  const int K = g.kernel_size, q = K - 1 - g.padding;
  return prefer_scatter({g.channels, g.height + 2 * g.padding, g.width + 2 * g.padding},
                        {C_out, g.out_height() + 2 * q, g.out_width() + 2 * q}, K);
}

// Whether the weight gradient runs by channel rather than by pixel: when the output channels fill
// whole registers (measured in docs/benchmarks.md).
inline bool weight_gradient_by_channel_applies(int C_out) { return channels_fill_registers(C_out); }

// How these kernels compute the layer.
inline DirectPlan plan(const ConvGeometry& g, int C_out) {
  const PaddedGeometry in{g.channels, g.height + 2 * g.padding, g.width + 2 * g.padding};
  return DirectPlan{W,
                    tile_rows,
                    forward_chunk_taps,
                    forward_pixels_by_channel(g.out_pixels()),
                    forward_by_channel_applies(in, g.kernel_size, C_out),
                    weight_gradient_by_channel_applies(C_out),
                    input_gradient_scatters(g, C_out),
                    input_gradient_scatters(g, C_out) && input_gradient_by_channel_applies(in, g.kernel_size)};
}

// The forward of N images: y = conv(x) + bias, then ReLU if relu.
inline void conv2d_forward(const ConvGeometry& g, int N, int C_out, const float* x, const float* weight,
                           const float* bias, float* y, Conv2dWorkspace<float>& ws, bool relu,
                           PooledOutput<float> pool) {
  const int K = g.kernel_size;
  const PaddedGeometry in{g.channels, g.height + 2 * g.padding, g.width + 2 * g.padding};
  const std::int64_t R = g.patch_size(), L = extended_length(in, K), out_image = C_out * g.out_pixels();
  const bool by_channel = forward_by_channel_applies(in, K, C_out);
  const int blocks = (C_out + forward_channels - 1) / forward_channels;
  // Aligned: the by-channel tile loads its weights with aligned loads.
  float* packed = align(ws.packed_weight(std::int64_t(blocks) * forward_channels * R + W));
  if (by_channel)
    pack_forward_weights_by_channel(weight, C_out, R, packed);
  else
    pack_forward_weights(weight, C_out, R, packed);
  std::int64_t* offsets = ws.offsets(0, R);
  tap_offsets(in, K, offsets);
  // Each thread's buffers, grown for every thread before the parallel region (see
  // conv2d_workspace.hpp).
  struct Buffers {
    float* y_ext;
    std::int64_t* base;
    float* acc;
    float* xp;
    float* unpooled;  // the image's output before its max-pool
  };
  auto buffers = [&](int t) {
    return Buffers{by_channel ? nullptr : ws.extended(t, forward_channels * L),
                   by_channel ? ws.pixel_bases(t, g.out_pixels()) : nullptr,
                   by_channel ? ws.gathered_aligned(t, forward_tile_floats * forward_tiles_by_channel(g.out_pixels()))
                              : nullptr,
                   g.padding > 0 ? ws.padded(t, in.size() + slack) : nullptr,
                   pool.y ? ws.unpooled_image(t, out_image) : nullptr};
  };
  const PoolGeometry pooling = pool_2x2(g.out_height(), g.out_width());
  const std::int64_t pooled_plane = std::int64_t(pooling.out_height()) * pooling.out_width();
  const bool pool_vector = simd::active_isa() != simd::Isa::portable;  // as maxpool2d_forward
  // One unit per image; with fewer images than threads, each image's output channels in parts.
  const int block = by_channel ? channel_block : forward_channels;
  const int parts = detail::channel_parts(std::max(N, 1), (C_out + block - 1) / block, num_threads(), out_image * R);
  const int threads = std::min(num_threads(), std::max(N, 1) * parts);
  ws.prepare(threads);
  for (int t = 0; t < threads; ++t) buffers(t);
  const std::int64_t P = g.out_pixels();
  detail::for_each_image_chunk(N, N, parts, [&](int t, int, int part, int begin, int end) {
    const detail::BlockRange channels = detail::block_range(C_out, block, part, parts);
    if (channels.empty()) return;
    const Buffers b = buffers(t);
    const float* w = packed + channels.begin * R;  // the packed blocks of these channels
    const float* b_co = bias ? bias + channels.begin : nullptr;
    for (int n = begin; n < end; ++n) {
      const float* image = x + std::int64_t(n) * g.image_size();
      if (b.xp) pad_image(image, g.channels, g.height, g.width, g.padding, b.xp);
      const float* input = b.xp ? b.xp : image;
      float* out = b.unpooled ? b.unpooled : y + n * out_image;
      if (by_channel)
        forward_image_by_channel(in, K, channels.size(), input, w, offsets, b_co, out + channels.begin * P, b.base,
                                 b.acc, relu);
      else
        forward_image(in, K, channels.size(), input, w, offsets, b_co, out + channels.begin * P, b.y_ext, relu);
      if (!b.unpooled) continue;
      const std::int64_t first = std::int64_t(n) * C_out * pooled_plane;
      for (int co = channels.begin; co < channels.end; ++co)
        kernels::detail::maxpool2d_forward_plane(pooling, out + co * g.out_pixels(), pool.y + first + co * pooled_plane,
                                                 pool.argmax + first + co * pooled_plane, pool_vector);
    }
  });
}

// out (cols, rows) += in (rows, cols) transposed, for in's rows [r_begin, r_end), in blocks of rows
// that stay in L1 while every column reads them.
inline void add_transposed(const float* in, std::int64_t rows, int cols, std::int64_t r_begin, std::int64_t r_end,
                           float* out) {
  constexpr std::int64_t block = 64;
  for (std::int64_t r0 = r_begin; r0 < r_end; r0 += block) {
    const std::int64_t r1 = std::min(r_end, r0 + block);
    for (int c = 0; c < cols; ++c)
      for (std::int64_t r = r0; r < r1; ++r) out[c * rows + r] += in[r * cols + c];
  }
}

// grad_weight and grad_bias += the sum of the chunks' partial gradients (conv2d_backward's
// layouts: (R, C_out) by channel, (C_out, R) by pixel, then the C_out bias sums), added in chunk
// order in their own layout (contiguous, vectorised) and only their sum transposed (transposing
// each partial cost 5% of the wide network's step at batch 4: strided gathers). The threads share
// the partials' rows, each element summed as on one thread, so the bits do not depend on the
// thread count: on one thread, while the other waited, this tail made the wide conv2's weight
// gradient at batch 4 (4 partials of 51,200 weights) 1.4x slower on AMD EPYC (Zen 3).
inline void add_chunk_partials(Conv2dWorkspace<float>& ws, int chunks, std::int64_t R, int C_out, bool by_channel,
                               float* grad_weight, float* grad_bias) {
  const std::int64_t weight_size = C_out * R;
  const std::int64_t rows = by_channel ? R : C_out, cols = by_channel ? C_out : R;
  float* sum = ws.chunk_partial(0, weight_size + C_out);
  auto add_rows = [&](std::int64_t r0, std::int64_t r1) {
    for (int c = 1; c < chunks; ++c) {
      const float* partial = ws.chunk_partial(c, weight_size + C_out);  // grown before: no allocation
      for (std::int64_t i = r0 * cols; i < r1 * cols; ++i) sum[i] += partial[i];
    }
    if (by_channel)
      add_transposed(sum, R, C_out, r0, r1, grad_weight);
    else
      for (std::int64_t i = r0 * cols; i < r1 * cols; ++i) grad_weight[i] += sum[i];
  };
  // A parallel region costs a few microseconds: worth it from about 64 K floats read.
  const int threads = int(std::min<std::int64_t>({num_threads(), rows, chunks * weight_size / (std::int64_t(1) << 16)}));
  if (threads <= 1) {
    add_rows(0, rows);
  } else {  // one range of rows a unit, on the threads of the kernels (conv2d_workspace.hpp)
    auto unit = [&](int, int u) { add_rows(rows * u / threads, rows * (u + 1) / threads); };
    headnet::detail::ThreadPool::instance().run(threads, threads, unit);
  }
  if (grad_bias)
    for (int co = 0; co < C_out; ++co) {
      float b = sum[weight_size + co];
      for (int c = 1; c < chunks; ++c) b += ws.chunk_partial(c, weight_size + C_out)[weight_size + co];
      grad_bias[co] += b;
    }
}

// The backward of N images; null for a gradient not wanted. relu_output: see extend_grad_output;
// only when dy reaches the kernels through dy_ext or dyT (weight gradient, scattered input
// gradient). pooled (dy null): the gradient of a max-pool fused into the layer; each image's
// full-size dy is unpooled into the thread's buffer just before it is used, so the batch's is never
// stored.
inline void conv2d_backward(const ConvGeometry& g, int N, int C_out, const float* x, const float* weight,
                            const float* dy, float* dx, float* grad_weight, float* grad_bias,
                            Conv2dWorkspace<float>& ws, const float* relu_output = nullptr,
                            const PooledGradient<float>* pooled = nullptr) {
  const int K = g.kernel_size, C = g.channels;
  const PaddedGeometry in{C, g.height + 2 * g.padding, g.width + 2 * g.padding};
  const int q = K - 1 - g.padding;  // dy's padding for the input gradient
  const PaddedGeometry grad{C_out, g.out_height() + 2 * q, g.out_width() + 2 * q};
  const std::int64_t R = g.patch_size(), R_grad = std::int64_t(C_out) * K * K;
  const std::int64_t Ln = grad_length(in, K), L_grad = extended_length(grad, K);
  const std::int64_t out_image = C_out * g.out_pixels(), weight_size = C_out * R;
  std::int64_t* offsets = ws.offsets(0, R);
  tap_offsets(in, K, offsets);
  // The input gradient scatters from dy_ext (built for the weight gradient anyway) or gathers
  // from dy padded by q, whichever does less work (prefer_scatter).
  const bool scatter = dx && prefer_scatter(in, grad, K);
  const bool dx_by_channel = scatter && input_gradient_by_channel_applies(in, K);  // a kind of scatter
  const bool by_channel = grad_weight && weight_gradient_by_channel_applies(C_out);
  const std::int64_t P = g.out_pixels();
  if (relu_output && dx && !scatter) throw std::logic_error("direct::conv2d_backward: a fused ReLU needs dy_ext");
  std::int64_t* grad_offsets = ws.offsets(1, R_grad);
  float* packed = nullptr;
  if (dx) {
    const int blocks = (C + forward_channels - 1) / forward_channels;
    packed = ws.packed_weight(std::int64_t(blocks) * forward_channels * R_grad);
    if (dx_by_channel) {
      pack_scatter_weights_by_channel(weight, C_out, C, K, packed);
    } else if (scatter) {
      pack_scatter_weights(weight, C_out, C, K, packed);
    } else {
      tap_offsets(grad, K, grad_offsets);
      pack_flipped_weights(weight, C_out, C, K, packed);
    }
  }
  // Without a weight gradient every image is its own chunk; with one, each of a few chunks sums
  // into its own partial gradient, added up in chunk order at the end.
  const int chunks = std::max(1, std::min(N, grad_weight ? detail::weight_gradient_chunks(num_threads()) : N));
  // With fewer chunks than threads, each chunk's work is cut into parts: part i computes its share
  // of the weight gradient (of its output channels, or of its taps where the channels are fewer
  // tiles than parts: the wide conv2's 16) and of dx's input channels (whole register tiles of
  // each, so the same bits as without parts), after preparing the chunk's dy and inputs itself
  // (duplicated work, small beside the products it shares out).
  const int gw_block = by_channel ? channel_block : grad_channels;
  const int dx_block = dx_by_channel ? channel_block : forward_channels;
  const int gw_channel_tiles = grad_weight ? (C_out + gw_block - 1) / gw_block : 0;
  const int gw_tap_tiles = grad_weight ? int((R + tile_rows - 1) / tile_rows) : 0;  // grad_taps = tile_rows
  const int dx_tiles = dx ? (C + dx_block - 1) / dx_block : 0;
  const std::int64_t chunk_multiply_adds =
      (N + chunks - 1) / chunks * out_image * R * ((dx ? 1 : 0) + (grad_weight ? 1 : 0));
  const int parts = detail::channel_parts(chunks, std::max({gw_channel_tiles, gw_tap_tiles, dx_tiles}),
                                          num_threads(), chunk_multiply_adds);
  const bool gw_by_taps = parts > gw_channel_tiles;
  const int threads = std::min(num_threads(), chunks * parts);
  ws.prepare(threads);
  if (grad_weight)
    for (int c = 0; c < chunks; ++c) ws.chunk_partial(c, weight_size + C_out);  // grown outside the threads
  // Groups of images whose padded inputs and dy (extended or transposed) fit in about 256 KiB
  // (L2), so that each weight tile sums a whole group in registers while the group stays in cache.
  const bool extend = (scatter && !dx_by_channel) || (grad_weight && !by_channel);
  const bool transpose = (grad_weight && by_channel) || dx_by_channel;
  std::int64_t* pixel_bases = nullptr;  // output pixel p's place in the padded input, for dx by channel
  if (dx_by_channel) {
    pixel_bases = ws.pixel_bases(0, P);
    for (int oh = 0; oh < g.out_height(); ++oh)
      for (int ow = 0; ow < g.out_width(); ++ow) pixel_bases[oh * g.out_width() + ow] = std::int64_t(oh) * in.width + ow;
  }
  const std::int64_t xp_stride = round_up(in.size() + slack, 2 * W), dy_stride = extend ? C_out * Ln : 0;
  const std::int64_t dyT_stride = transpose ? round_up(C_out * P, 2 * W) : 0;
  const std::int64_t group_bytes = 4 * ((grad_weight ? xp_stride : 0) + dy_stride + dyT_stride);
  const int group = group_bytes ? int(std::max<std::int64_t>(1, (std::int64_t(256) << 10) / group_bytes)) : 1;
  // Each thread's buffers for `most` images, grown for every thread and the largest chunk before the
  // parallel region (see conv2d_workspace.hpp).
  struct Buffers {
    float *xp, *dy_ext, *dyT, *dxp, *dyp, *y_ext, *unpooled;
  };
  auto buffers = [&](int t, int most) {
    Buffers b{nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
    if (pooled) b.unpooled = ws.unpooled_image(t, out_image);
    if (grad_weight || scatter) {
      b.xp = grad_weight ? ws.padded(t, most * xp_stride) : nullptr;
      b.dy_ext = extend ? ws.extended(t, most * dy_stride) : nullptr;
      b.dyT = transpose ? ws.transposed(t, most * dyT_stride) : nullptr;
      b.dxp = scatter ? ws.columns(t, in.size() + scatter_slack) : nullptr;
    }
    if (dx && !scatter) {
      b.dyp = ws.columns(t, grad.size() + slack);
      b.y_ext = ws.gathered(t, forward_channels * L_grad);
    }
    return b;
  };
  const int largest_chunk = (N + chunks - 1) / chunks;
  for (int t = 0; t < threads; ++t) buffers(t, std::min(group, largest_chunk));
  detail::for_each_image_chunk(N, chunks, parts, [&](int t, int chunk, int part, int begin, int end) {
    const detail::BlockRange gw_channels =
        gw_by_taps ? detail::BlockRange{0, grad_weight ? C_out : 0}
                   : detail::block_range(grad_weight ? C_out : 0, gw_block, part, parts);
    const detail::BlockRange gw_taps =
        gw_by_taps ? detail::block_range(int(R), tile_rows, part, parts) : detail::BlockRange{0, int(R)};
    const detail::BlockRange dx_channels = detail::block_range(dx ? C : 0, dx_block, part, parts);
    const bool bias_here = grad_weight && grad_bias && part == 0;  // the bias sums come with dy's preparation
    const bool gw_here = !gw_channels.empty() && !gw_taps.empty();
    if (!gw_here && dx_channels.empty() && !bias_here) return;
    float* gw = nullptr;
    float* gb = nullptr;
    // By pixel, gw is (C_out, R) like grad_weight; by channel, (R, C_out), transposed at the end.
    // Each part zeroes its own channels and taps of the chunk's partial (and part 0 the bias).
    if (grad_weight) {
      gw = ws.chunk_partial(chunk, weight_size + C_out);
      if (by_channel && gw_channels.size() == C_out)  // whole rows: one block
        std::fill(gw + gw_taps.begin * std::int64_t(C_out), gw + gw_taps.end * std::int64_t(C_out), 0.0f);
      else if (by_channel)
        for (std::int64_t r = gw_taps.begin; r < gw_taps.end; ++r)
          std::fill(gw + r * C_out + gw_channels.begin, gw + r * C_out + gw_channels.end, 0.0f);
      else
        for (std::int64_t co = gw_channels.begin; co < gw_channels.end; ++co)
          std::fill(gw + co * R + gw_taps.begin, gw + co * R + gw_taps.end, 0.0f);
      if (bias_here) std::fill(gw + weight_size, gw + weight_size + C_out, 0.0f);
      gb = bias_here ? gw + weight_size : nullptr;
      if (!gw_here) gw = nullptr;
    }
    const bool dx_here = !dx_channels.empty();
    const bool scatter_here = scatter && dx_here;
    // What this part needs of dy: all its channels for dx (a sum over them) and for the bias
    // (computed where it is without parts, for the same bits), else its weight gradient's.
    const bool extend_here = extend && ((scatter_here && !dx_by_channel) || (gw && !by_channel) || (gb && !transpose));
    const bool transpose_here = transpose && ((scatter_here && dx_by_channel) || (gw && by_channel) || gb);
    const detail::BlockRange dy_channels = gb || dx_here ? detail::BlockRange{0, C_out} : gw_channels;
    const std::int64_t dy_first = dy_channels.begin * P;  // where those channels start in an image's dy
    const Buffers b = buffers(t, std::min(group, largest_chunk));
    auto image_dy = [&](int n) {  // image n's dy, its needed channels unpooled first when the layer pools
      if (!pooled) return dy + n * out_image;
      pooled->unpool(std::int64_t(n) * C_out + dy_channels.begin, dy_channels.size(), b.unpooled + dy_first);
      return static_cast<const float*>(b.unpooled);
    };
    if (gw || scatter_here || gb) {
      for (int n0 = begin; n0 < end; n0 += group) {
        const int images = std::min(group, end - n0);
        for (int i = 0; i < images; ++i) {
          const float* mask = relu_output ? relu_output + (n0 + i) * out_image + dy_first : nullptr;
          if (gw)
            pad_image(x + std::int64_t(n0 + i) * g.image_size(), C, g.height, g.width, g.padding,
                      b.xp + i * xp_stride);
          const float* dy_image = image_dy(n0 + i) + dy_first;
          if (extend_here)
            extend_grad_output(in, K, dy_channels.size(), dy_image, b.dy_ext + i * dy_stride + dy_channels.begin * Ln,
                               transpose ? nullptr : gb, mask);
          if (transpose_here)
            transpose_grad_output(dy_channels.size(), P, dy_image, mask, b.dyT + i * dyT_stride + dy_first, gb);
        }
        if (gw && by_channel)
          weight_gradient_by_channel(in, K, C_out, gw_channels, gw_taps, b.xp, xp_stride, b.dyT, dyT_stride, images,
                                     offsets, gw);
        else if (gw)
          weight_gradient(in, K, gw_channels, gw_taps, b.xp, xp_stride, b.dy_ext, dy_stride, images, offsets, gw);
        if (scatter_here && dx_by_channel)
          for (int i = 0; i < images; ++i)
            input_gradient_by_channel(in, K, C_out, g.padding, dx_channels.begin, dx_channels.end,
                                      b.dyT + i * dyT_stride, packed, pixel_bases, b.dxp,
                                      dx + std::int64_t(n0 + i) * g.image_size());
        else if (scatter_here)
          for (int i = 0; i < images; ++i)
            input_gradient_scatter(in, K, C_out, g.padding, dx_channels.begin, dx_channels.end,
                                   b.dy_ext + i * dy_stride, packed, b.dxp, dx + std::int64_t(n0 + i) * g.image_size());
      }
    }
    if (dx_here && !scatter) {  // the gather: the forward of dy padded by q, dx's channels its outputs
      const std::int64_t input_plane = std::int64_t(g.height) * g.width;
      for (int n = begin; n < end; ++n) {
        pad_image(image_dy(n), C_out, g.out_height(), g.out_width(), q, b.dyp);
        forward_image(grad, K, dx_channels.size(), b.dyp, packed + dx_channels.begin * R_grad, grad_offsets, nullptr,
                      dx + std::int64_t(n) * g.image_size() + dx_channels.begin * input_plane, b.y_ext);
      }
    }
  });
  if (grad_weight) add_chunk_partials(ws, chunks, R, C_out, by_channel, grad_weight, grad_bias);
}
