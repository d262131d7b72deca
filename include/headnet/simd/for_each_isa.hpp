// headnet/simd/for_each_isa.hpp: compiles one kernel source once per instruction set, each copy for
// its own target, as PyTorch's DispatchStub and ggml do. Not a header to include for its
// declarations: a kernel header defines two macros and includes it, and gets
//   namespace headnet::kernels::<HEADNET_ISA_NAMESPACE>::portable   (V = simd::Portable)
//   namespace headnet::kernels::<HEADNET_ISA_NAMESPACE>::avx2       (V = simd::Avx2, target avx2,fma)
//   namespace headnet::kernels::<HEADNET_ISA_NAMESPACE>::avx512     (V = simd::Avx512, target avx512f)
// each holding the file HEADNET_ISA_IMPL, with HEADNET_ISA_X86 1 in the x86 copies and 0 in the
// portable one. The x86 copies exist where the compiler can target them (HEADNET_SIMD_AVX2 /
// HEADNET_SIMD_AVX512, simd/isa.hpp); with clang only when the flags enable them. Left out of the
// API reference: the copies' contracts are those of their source file.
//
//   #define HEADNET_ISA_NAMESPACE direct
//   #define HEADNET_ISA_IMPL "headnet/kernels/conv2d_direct_impl.hpp"
//   #include "headnet/simd/for_each_isa.hpp"
//
// (No include guard: included once per kernel source. It undefines both macros.)
#include "headnet/simd/isa.hpp"
#include "headnet/simd/register_tile.hpp"
#include "headnet/simd/vec.hpp"

#ifndef HEADNET_DOXYGEN
namespace headnet {
namespace kernels {
namespace HEADNET_ISA_NAMESPACE {
namespace portable {
using V = simd::Portable;
#define HEADNET_ISA_X86 0
#include HEADNET_ISA_IMPL
#undef HEADNET_ISA_X86
}  // namespace portable
}  // namespace HEADNET_ISA_NAMESPACE
}  // namespace kernels
}  // namespace headnet

#if HEADNET_SIMD_AVX2
#if !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
namespace headnet {
namespace kernels {
namespace HEADNET_ISA_NAMESPACE {
namespace avx2 {
using V = simd::Avx2;
#define HEADNET_ISA_X86 1
#include HEADNET_ISA_IMPL
#undef HEADNET_ISA_X86
}  // namespace avx2
}  // namespace HEADNET_ISA_NAMESPACE
}  // namespace kernels
}  // namespace headnet
#if !defined(__clang__)
#pragma GCC pop_options
#endif
#endif

#if HEADNET_SIMD_AVX512
#if !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f")
#endif
namespace headnet {
namespace kernels {
namespace HEADNET_ISA_NAMESPACE {
namespace avx512 {
using V = simd::Avx512;
#define HEADNET_ISA_X86 1
#include HEADNET_ISA_IMPL
#undef HEADNET_ISA_X86
}  // namespace avx512
}  // namespace HEADNET_ISA_NAMESPACE
}  // namespace kernels
}  // namespace headnet
#if !defined(__clang__)
#pragma GCC pop_options
#endif
#endif
#endif  // HEADNET_DOXYGEN

#undef HEADNET_ISA_IMPL
#undef HEADNET_ISA_NAMESPACE
