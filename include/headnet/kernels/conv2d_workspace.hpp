// headnet/kernels/conv2d_workspace.hpp: the scratch memory of the convolution kernels, and how they
// split a batch over threads.
//
// Every buffer a kernel needs lives in a Conv2dWorkspace that grows to the largest shape seen and is
// then reused, so a training step in steady state allocates nothing. Per-thread buffers are grown
// for every thread before a parallel region, sized by the planned work: which thread runs which
// images is decided at run time, so growing them inside the region would allocate whenever a
// thread first gets work it did not get before.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "headnet/core/parallel.hpp"
#include "headnet/core/thread_pool.hpp"
#include "headnet/kernels/gemm.hpp"

namespace headnet {
namespace kernels {

/// Scratch memory the convolution kernels reuse from step to step (no allocation once warm).
template <typename T>
class Conv2dWorkspace {
 public:
  /// Scratch buffers, one set per thread; `threads` must be called outside a parallel region.
  void prepare(int threads) {
    if (static_cast<int>(per_thread_.size()) < threads) per_thread_.resize(static_cast<std::size_t>(threads));
  }
  /// im2col columns for `thread`, at least n elements.
  T* columns(int thread, std::int64_t n) { return grow(per_thread_[std::size_t(thread)].columns, n); }
  /// Gathered rows for `thread`, at least n elements.
  T* gathered(int thread, std::int64_t n) { return grow(per_thread_[std::size_t(thread)].gathered, n); }
  /// Shared: dy masked by a fused ReLU, when the kernels that run cannot mask it themselves.
  T* masked_grad(std::int64_t n) { return grow(masked_grad_, n); }
  /// One partial weight gradient per chunk of a batch (detail::for_each_image_chunk); grow them all
  /// before a parallel region.
  T* chunk_partial(int chunk, std::int64_t n) {
    if (static_cast<int>(chunk_partials_.size()) <= chunk) chunk_partials_.resize(static_cast<std::size_t>(chunk) + 1);
    return grow(chunk_partials_[std::size_t(chunk)], n);
  }
  /// A weight-gradient partial sum for `thread`, at least n elements.
  T* partial_weight(int thread, std::int64_t n) {
    return grow(per_thread_[std::size_t(thread)].partial_weight, n);
  }
  /// 64-byte aligned, so that the direct kernels' vector loads of rows do not split cache lines.
  T* padded(int thread, std::int64_t n) { return aligned(per_thread_[std::size_t(thread)].padded, n); }
  /// An extended input row buffer for `thread`, 64-byte aligned.
  T* extended(int thread, std::int64_t n) { return aligned(per_thread_[std::size_t(thread)].extended, n); }
  /// A transposed tile buffer for `thread`, 64-byte aligned.
  T* transposed(int thread, std::int64_t n) { return aligned(per_thread_[std::size_t(thread)].transposed, n); }
  /// The gathered buffer of `thread`, 64-byte aligned.
  T* gathered_aligned(int thread, std::int64_t n) { return aligned(per_thread_[std::size_t(thread)].gathered, n); }
  /// Winograd (conv2d_winograd.hpp): a chunk's transformed input for `thread`, at least n.
  T* winograd_input(int thread, std::int64_t n) { return grow(per_thread_[std::size_t(thread)].winograd_input, n); }
  /// Winograd: a chunk's products (or transformed dy) for `thread`, at least n.
  T* winograd_products(int thread, std::int64_t n) {
    return grow(per_thread_[std::size_t(thread)].winograd_products, n);
  }
  /// Winograd: transform scratch for `thread`, at least n.
  T* winograd_scratch(int thread, std::int64_t n) { return grow(per_thread_[std::size_t(thread)].winograd_scratch, n); }
  /// Winograd: where the tiles of a chunk start, for `thread` (3 ints per tile), at least n.
  int* winograd_tile_starts(int thread, std::int64_t n) {
    auto& v = per_thread_[std::size_t(thread)].winograd_tile_starts;
    if (static_cast<std::int64_t>(v.size()) < n) v.resize(static_cast<std::size_t>(n));
    return v.data();
  }
  /// Winograd, shared: the transformed weights, at least n.
  T* winograd_weight(std::int64_t n) { return grow(winograd_weight_, n); }
  /// A convolution's whole output before the max-pool fused into it, on the paths that cannot pool
  /// as they write (conv2d_maxpool_forward), at least n.
  T* unpooled(std::int64_t n) { return grow(unpooled_, n); }
  /// One image's output before its fused max-pool, for `thread` (the direct kernels), 64-byte aligned.
  T* unpooled_image(int thread, std::int64_t n) { return aligned(per_thread_[std::size_t(thread)].unpooled_image, n); }
  /// Per-pixel base offsets for `thread`, at least n.
  std::int64_t* pixel_bases(int thread, std::int64_t n) {
    auto& v = per_thread_[std::size_t(thread)].pixel_bases;
    if (static_cast<std::int64_t>(v.size()) < n) v.resize(static_cast<std::size_t>(n));
    return v.data();
  }
  /// The GEMM packing buffers of `thread`.
  GemmWorkspace<T>& gemm(int thread) { return per_thread_[std::size_t(thread)].gemm; }
  /// Shared by all threads, filled before a parallel region: packed weights and tap offsets.
  T* packed_weight(std::int64_t n) { return grow(packed_weight_, n); }
  /// Tap offset table `which` (shared), at least n.
  std::int64_t* offsets(int which, std::int64_t n) {
    auto& v = offsets_[std::size_t(which)];
    if (static_cast<std::int64_t>(v.size()) < n) v.resize(static_cast<std::size_t>(n));
    return v.data();
  }

 private:
  struct Buffers {
    std::vector<T> columns, gathered, partial_weight, padded, extended, transposed;
    std::vector<T> winograd_input, winograd_products, winograd_scratch, unpooled_image;
    std::vector<std::int64_t> pixel_bases;
    std::vector<int> winograd_tile_starts;
    GemmWorkspace<T> gemm;
  };

  static T* grow(std::vector<T>& v, std::int64_t n) {
    if (static_cast<std::int64_t>(v.size()) < n) v.resize(static_cast<std::size_t>(n));
    return v.data();
  }
  static T* aligned(std::vector<T>& v, std::int64_t n) {
    T* p = grow(v, n + std::int64_t(64 / sizeof(T)));
    auto address = reinterpret_cast<std::uintptr_t>(p);
    return reinterpret_cast<T*>((address + 63) & ~std::uintptr_t(63));
  }
  std::vector<Buffers> per_thread_;
  std::vector<T> packed_weight_, masked_grad_, winograd_weight_, unpooled_;
  std::vector<std::vector<T>> chunk_partials_;
  std::vector<std::int64_t> offsets_[2];
};

namespace detail {

// Runs body(thread, first_image, end_image) on one contiguous range of images per thread.
template <typename Body>
int for_each_image_range(int images, Body&& body) {
  const int threads = images >= 2 ? std::min(num_threads(), images) : 1;
  if (threads == 1) {
    body(0, 0, images);
    return 1;
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_index();
    const int begin = static_cast<int>(std::int64_t(images) * t / threads);
    const int end = static_cast<int>(std::int64_t(images) * (t + 1) / threads);
    body(t, begin, end);
  }
  return threads;
}

// Runs body(thread, chunk, part, first_image, end_image) for `chunks` fixed, contiguous chunks of
// the batch, each cut into `parts` parts (block_range below), handed to the threads as they
// become free (on ThreadPool, core/thread_pool.hpp, not OpenMP: the caller does not wait for a
// thread still waking up). On this shared machine one core often runs slower than the other for a
// while; with one fixed half per thread the other core then waits (a fifth of its time, measured
// on the wide network). The chunks and parts do not depend on which thread runs them, so sums kept
// per chunk and added in chunk order are the same on every run.
template <typename Body>
int for_each_image_chunk(int images, int chunks, int parts, Body&& body) {
  chunks = std::max(1, std::min(chunks, images));
  parts = std::max(1, parts);
  const int units = chunks * parts;
  const int threads = std::min(num_threads(), units);
  auto run = [&](int t, int unit) {
    const int c = unit / parts;
    body(t, c, unit % parts, static_cast<int>(std::int64_t(images) * c / chunks),
         static_cast<int>(std::int64_t(images) * (c + 1) / chunks));
  };
  if (threads == 1) {
    for (int u = 0; u < units; ++u) run(0, u);
    return 1;
  }
  headnet::detail::ThreadPool::instance().run(threads, units, run);
  return threads;
}

// How many parts each of `chunks` chunks is cut into so that `threads` threads find work: 1 while
// the chunks alone are enough; otherwise one unit per thread, at most `tiles` parts (the register
// tiles of channels there are to share) and at most one per part_multiply_adds() of the chunk's
// work (`multiply_adds`). A batch smaller than the thread count (one image at inference, batch 4
// on 16 cores) would otherwise leave threads idle (scripts/work_split_model.py). But a part must
// repay preparing its inputs itself and, above all, waking a thread that went to sleep between
// parallel regions (measured with OpenMP's bounded spin, core/parallel.hpp, before the kernels
// moved to core/thread_pool.hpp, whose threads spin longer): on AMD EPYC (2 cores) the wide
// conv1's forward at batch 1, 7.5 M multiply-adds in two parts, ran 1.8x faster, but the wide
// conv2's weight gradient alone, 5.1 M in two parts, ran 15% slower (the first thread ran both
// parts before the second woke). Hence about 3 M multiply-adds a part; the tutorial network's
// layers (0.2-0.4 M an image) stay whole.
inline std::int64_t& part_multiply_adds() {  // the tests lower it to cut their small layers
  static std::int64_t least = std::int64_t(3) << 20;
  return least;
}
inline int channel_parts(int chunks, int tiles, int threads, std::int64_t multiply_adds) {
  if (chunks >= threads) return 1;
  const std::int64_t least = std::max<std::int64_t>(1, part_multiply_adds());
  const std::int64_t by_work = std::max<std::int64_t>(1, multiply_adds / least);
  return static_cast<int>(std::max<std::int64_t>(
      1, std::min<std::int64_t>({tiles, by_work, (threads + chunks - 1) / std::max(chunks, 1)})));
}

// The channels (or taps) [begin, end) of part `part` of `parts` of `count`: whole blocks of `block`
// (the kernels' register tiles), so that every output is computed exactly as without parts.
struct BlockRange {
  int begin, end;
  bool empty() const { return begin >= end; }
  int size() const { return end - begin; }
};
inline BlockRange block_range(int count, int block, int part, int parts) {
  const std::int64_t blocks = (count + block - 1) / block;
  return {static_cast<int>(std::min<std::int64_t>(count, blocks * part / parts * block)),
          static_cast<int>(std::min<std::int64_t>(count, blocks * (part + 1) / parts * block))};
}

// Chunks of a batch for a weight gradient: each keeps its own partial sum (see
// for_each_image_chunk), so few enough that adding them up stays cheap, and at least one per
// thread so that no thread idles (scripts/work_split_model.py). Eight up to 8 threads: the same
// chunks, hence the same bits, on 1, 2, 4 or 8 threads; beyond, the chunks depend on the thread
// count, and results are the same bits for the same thread count.
inline int weight_gradient_chunks(int threads) { return std::max(8, threads); }

}  // namespace detail
}  // namespace kernels
}  // namespace headnet
