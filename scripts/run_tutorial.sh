#!/usr/bin/env bash
# Sets everything up and runs the main job: dependencies, CIFAR-10 (downloaded, or from
# HEADNET_CIFAR10_SOURCE), a Release build in build/, then the tutorial trainer.
#   scripts/run_tutorial.sh [cifar10-train options]     e.g. --epochs 2 --conv1 32 --out runs/wide
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/get_cifar10.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DHEADNET_BUILD_EXAMPLES=ON >/dev/null
cmake --build build -j"$(nproc)" --target cifar10-train
exec build/examples/cifar10-train --data data "$@"
