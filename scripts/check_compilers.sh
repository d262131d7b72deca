#!/usr/bin/env bash
# Builds tests/portability_probe.cpp (a few training steps of three networks, on the direct,
# Winograd and im2col paths) with a compiler or for a target other than the main build's, runs it
# where it can, and fails if either fails. The main build (g++ for x86-64) cannot see what only
# another compiler rejects: with clang, or with g++ for any other CPU, the x86 kernel copies are
# chosen by different macros (simd/isa.hpp), and an expression that only g++ on x86 accepted there
# once kept headnet from compiling on ARM at all.
#
#   scripts/check_compilers.sh clang     # clang++ for this machine: without -m flags, with AVX2 and
#                                        # with AVX-512 enabled; each run where the CPU can
#   scripts/check_compilers.sh aarch64   # aarch64-linux-gnu-g++ (Debian's g++-aarch64-linux-gnu),
#                                        # run under qemu-aarch64 when qemu-user is installed
# Exit 0: built (and ran, where it could); 1: failed; 77: that compiler is not installed (skipped).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:?usage: $0 clang|aarch64}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Only the libraries the headers use, never all of /usr/include (a cross compiler must not see the
# host's C library headers).
mkdir -p "$work/include"
for d in /usr/include/eigen3/Eigen /usr/include/nlohmann /usr/include/stb; do
  if [ -d "$d" ]; then ln -s "$d" "$work/include/"; fi
done
flags=(-std=c++17 -O1 -I"$root/include" -I"$work/include")
case "$target" in
  clang)
    command -v clang++ >/dev/null || { echo "clang++ not found: skipped"; exit 77; }
    # OpenMP where clang has it (libomp-dev): the headers also build without.
    if echo '#include <omp.h>' | clang++ -fopenmp -x c++ -fsyntax-only - 2>/dev/null; then flags+=(-fopenmp); fi
    # clang compiles an x86 kernel copy only where its flags enable the instructions (simd/isa.hpp):
    # no flags (the portable kernels only), then AVX2 + FMA, then AVX-512, each run if the CPU can.
    for isa in portable avx2 avx512; do
      case "$isa" in
        portable) isa_flags=(); cpu_flag="" ;;
        avx2) isa_flags=(-mavx2 -mfma); cpu_flag=avx2 ;;
        avx512) isa_flags=(-mavx2 -mfma -mavx512f); cpu_flag=avx512f ;;
      esac
      if [ "$isa" != portable ] && ! grep -qE '^(x86_64|i[3-6]86)$' <<<"$(uname -m)"; then continue; fi
      echo "== clang++ ${isa_flags[*]:-(no -m flags)}"
      clang++ "${flags[@]}" "${isa_flags[@]}" "$root/tests/portability_probe.cpp" -o "$work/probe_$isa"
      if [ -z "$cpu_flag" ] || grep -qw "$cpu_flag" /proc/cpuinfo; then
        "$work/probe_$isa" | grep -v '^[a-z0-9.]*: forward='  # the losses, not every layer's paths
      else
        echo "built; this CPU has no $cpu_flag, not run"
      fi
    done
    ;;
  aarch64)
    command -v aarch64-linux-gnu-g++ >/dev/null || { echo "aarch64-linux-gnu-g++ not found: skipped"; exit 77; }
    # (A static binary, so that qemu needs no AArch64 libraries; the linker's note that libgomp's
    # dlopen needs glibc's own version at run time is shown only if the build fails.)
    aarch64-linux-gnu-g++ "${flags[@]}" -fopenmp -static "$root/tests/portability_probe.cpp" -o "$work/probe" \
      2>"$work/build.log" || { cat "$work/build.log" >&2; exit 1; }
    if command -v qemu-aarch64 >/dev/null; then
      qemu-aarch64 "$work/probe"
    else
      echo "built for AArch64; qemu-aarch64 not found, not run"
    fi
    ;;
  *) echo "unknown target '$target' (clang or aarch64)" >&2; exit 2 ;;
esac
