#!/usr/bin/env bash
# Sets everything up and runs every test: dependencies, a Release build in build/, then CTest.
#   scripts/run_tests.sh            (extra arguments go to ctest, e.g. -R gradient)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh --tests
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DHEADNET_BUILD_TESTS=ON -DHEADNET_BUILD_EXAMPLES=ON \
  ${HEADNET_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure "$@"
