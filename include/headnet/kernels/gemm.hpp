// headnet/kernels/gemm.hpp: single-threaded GEMM through Eigen's kernel, with caller-owned buffers.
//
//   C (M x N, row-major, leading dimension ldc)  =  or  +=  op(A) (M x K) * op(B) (K x N)
// where op(A) is A (row-major M x K, lda) or, with TransA, the transpose of A stored row-major as
// K x M; likewise op(B).
//
// Why not `C.noalias() = A * B` on Eigen maps: for matrices whose packed panels exceed 128 KiB Eigen
// mallocs its blocking buffers on every product, which would put heap allocations into every
// training step. This calls the same Eigen kernel (general_matrix_matrix_product, the packing and
// the gebp micro-kernel) with the panels in a GemmWorkspace that grows once and is then reused.
// The threading stays with the caller, which splits the batch.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <Eigen/Core>

namespace headnet {
namespace kernels {

/// Packing buffers for gemm(), reused across calls.
template <typename T>
class GemmWorkspace {
 public:
  /// Two 64-byte-aligned buffers of at least the given sizes (Eigen's packing uses aligned stores).
  void reserve(std::int64_t size_a, std::int64_t size_b, T*& a, T*& b) {
    a = aligned(a_, size_a);
    b = aligned(b_, size_b);
  }

 private:
  static T* aligned(std::vector<T>& v, std::int64_t n) {
    constexpr std::size_t slack = 64 / sizeof(T);
    if (v.size() < std::size_t(n) + slack) v.resize(std::size_t(n) + slack);
    auto address = reinterpret_cast<std::uintptr_t>(v.data());
    return reinterpret_cast<T*>((address + 63) & ~std::uintptr_t(63));
  }
  std::vector<T> a_, b_;
};

namespace detail {

// Eigen's blocking (panel sizes) for a product with a row-major result, with the panels in `ws`.
// It mirrors gemm_blocking_space for that case: the product is computed transposed, so the roles
// of rows and columns swap.
template <typename T>
class WorkspaceBlocking : public Eigen::internal::level3_blocking<T, T> {
 public:
  WorkspaceBlocking(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth, GemmWorkspace<T>& ws) {
    this->m_mc = cols;
    this->m_nc = rows;
    this->m_kc = depth;
    Eigen::internal::computeProductBlockingSizes<T, T, 1, Eigen::Index>(this->m_kc, this->m_mc, this->m_nc, 1);
    ws.reserve(this->m_mc * this->m_kc, this->m_kc * this->m_nc, this->m_blockA, this->m_blockB);
  }
};

}  // namespace detail

/// Grows `ws` to what gemm() needs for an M x N x K product (and any smaller one), so that a
/// parallel region whose threads are handed products at run time allocates nothing in them.
template <typename T>
void reserve_gemm(std::int64_t M, std::int64_t N, std::int64_t K, GemmWorkspace<T>& ws) {
  if (M > 0 && N > 0 && K > 0) detail::WorkspaceBlocking<T> blocking(M, N, K, ws);
}

/// C = op(A) op(B) (+ C when `accumulate`), row-major, op transposing when TransA / TransB, Eigen's kernel on our buffers.
template <bool TransA, bool TransB, typename T>
void gemm(std::int64_t M, std::int64_t N, std::int64_t K, const T* A, std::int64_t lda, const T* B, std::int64_t ldb,
          T* C, std::int64_t ldc, bool accumulate, GemmWorkspace<T>& ws) {
  if (M == 0 || N == 0) return;
  if (!accumulate)
    for (std::int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, T(0));
  if (K == 0) return;
  detail::WorkspaceBlocking<T> blocking(M, N, K, ws);
  Eigen::internal::general_matrix_matrix_product<Eigen::Index, T, TransA ? Eigen::ColMajor : Eigen::RowMajor, false, T,
                                                 TransB ? Eigen::ColMajor : Eigen::RowMajor, false, Eigen::RowMajor,
                                                 1>::run(M, N, K, A, lda, B, ldb, C, 1, ldc, T(1), blocking, nullptr);
}

}  // namespace kernels
}  // namespace headnet
