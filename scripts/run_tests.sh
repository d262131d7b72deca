#!/usr/bin/env bash
# Sets everything up and runs every test: dependencies, a Release build in build/, then CTest.
#   scripts/run_tests.sh            (extra arguments go to ctest, e.g. -R gradient)
# With HEADNET_SANITIZE=address,undefined it builds in build-sanitize/ with those sanitizers instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh --tests
build=build
sanitize=()
if [ -n "${HEADNET_SANITIZE:-}" ]; then
  build=build-sanitize
  sanitize=(-DHEADNET_SANITIZE="$HEADNET_SANITIZE")
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHEADNET_BUILD_TESTS=ON -DHEADNET_BUILD_EXAMPLES=ON \
  "${sanitize[@]}" ${HEADNET_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure "$@"
