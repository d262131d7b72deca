#!/usr/bin/env bash
# Fails if a vector kernel's register tile keeps an accumulator on the stack: an FMA whose operand
# is in memory at the stack pointer, in the AVX2 or AVX-512 copy of the direct or Winograd kernels
# (kernels/conv2d_direct_impl.hpp, kernels/conv2d_winograd_impl.hpp). Such a spill turns every
# iteration of a tile into a store and a reload of that accumulator: the AVX2 forward tile once ran
# at a third of the FMA peak that way, with every test passing (docs/benchmarks.md, session 16).
# The portable copy is not checked: it has no register file to fit. Nor is Winograd's left_multiply
# (the transforms, plain loops the compiler vectorises; kernels/conv2d_winograd_impl.hpp says
# where g++ puts their operands on the stack): it has no accumulator tile.
#
#   scripts/check_register_spills.sh BINARY...
# Exit 0: no spilled accumulator; 1: some (each function is named); 77: objdump is missing.
set -euo pipefail
command -v objdump >/dev/null || { echo "objdump not found: skipped"; exit 77; }
[ $# -ge 1 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
status=0
for binary in "$@"; do
  [ -f "$binary" ] || { echo "$binary: no such file" >&2; exit 2; }
  disassembly=$(objdump -d --no-show-raw-insn -C "$binary")
  spills=$(awk '
    /^[0-9a-f]+ <.*>:$/ { fn = $0; vector = fn ~ /::(direct|winograd)::(avx2|avx512)::/ && fn !~ /fma_seconds|::left_multiply</ }
    vector && /vfn?madd[0-9a-z]* +[-0-9a-fx]*\(%rsp\)/ { count[fn]++ }
    END { for (f in count) printf "%6d FMAs on the stack in %s\n", count[f], f }' <<<"$disassembly")
  kernels=$(grep -cE '^[0-9a-f]+ <.*::(direct|winograd)::avx(2|512)::' <<<"$disassembly" || true)
  if [ -n "$spills" ]; then
    echo "$binary: vector tiles with spilled accumulators:"
    echo "$spills"
    status=1
  else
    echo "$binary: $kernels AVX2/AVX-512 kernel functions, no accumulator on the stack"
  fi
done
exit $status
