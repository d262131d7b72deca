#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 600), all at once.
#   scripts/fuzz.sh [SECONDS]
# Needs clang and libclang-rt-dev (apt-get install clang libclang-rt-14-dev). Corpora grow in
# build-fuzz/corpus/ starting from tests/fuzz/corpus/; crashes land in build-fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
command -v clang++ >/dev/null || { echo "fuzz.sh: error: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHEADNET_BUILD_FUZZERS=ON \
  -DHEADNET_BUILD_TESTS=OFF -DHEADNET_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target cifar10_fuzzer safetensors_fuzzer onnx_fuzzer image_fuzzer idx_fuzzer
mkdir -p build-fuzz/crashes
pids=()
for target in cifar10 safetensors onnx image idx; do
  mkdir -p "build-fuzz/corpus/$target"
  cp -n tests/fuzz/corpus/$target/* "build-fuzz/corpus/$target/" 2>/dev/null || true
  build-fuzz/tests/fuzz/${target}_fuzzer "build-fuzz/corpus/$target" -max_total_time="$seconds" -max_len=65536 \
    -artifact_prefix="build-fuzz/crashes/${target}-" -print_final_stats=1 >"build-fuzz/${target}.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for target in cifar10 safetensors onnx image idx; do
  echo "$target: $(grep -E 'stat::number_of_executed_units' build-fuzz/${target}.log | awk '{print $2}') executions"
  grep -E "ERROR|SUMMARY|crash-" "build-fuzz/${target}.log" | head -5 || true
done
exit $status
