#!/usr/bin/env bash
# Installs what headnet needs from the distribution's packages (Debian 12, Ubuntu 22.04 or later),
# only the ones that are missing. Needs root (or sudo) when something is missing.
#
#   scripts/install_deps.sh [--tests]
#
# --tests adds python3-torch, with which the test suite also checks that PyTorch loads headnet's
# weights (the check is reported as skipped without it; set HEADNET_NO_TORCH=1 to leave it out),
# the ONNX readers (see below), and Doxygen, with which a test builds the API reference and fails on
# any undocumented public item.
set -euo pipefail

packages=(g++ cmake make curl ca-certificates libeigen3-dev nlohmann-json3-dev libcli11-dev libstb-dev catch2 libbenchmark-dev
          openmpi-bin libopenmpi-dev)
if [ "${1:-}" = "--tests" ] && [ "${HEADNET_NO_TORCH:-0}" != "1" ]; then
  packages+=(python3 python3-torch)
fi
# --tests also brings the two independent ONNX readers the tests hand headnet's files to: the ONNX
# checker (python3-onnx) and onnxruntime, which the test installs from npm (onnxruntime-node) with
# Node.js: Debian's nodejs and npm unless a node and an npm are already on the PATH.
# And clang, g++ for AArch64 and qemu-user, with which a test builds headnet with another compiler
# and for another CPU (scripts/check_compilers.sh; skipped without them).
if [ "${1:-}" = "--tests" ]; then
  packages+=(python3 python3-onnx doxygen clang g++-aarch64-linux-gnu qemu-user)
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then packages+=(nodejs npm); fi
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  apt_get=(apt-get)
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  apt_get=(sudo apt-get)
else
  echo "install_deps.sh: error: these packages are missing and installing them needs root:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${apt_get[@]}" update -qq
"${apt_get[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "Installed: ${missing[*]}"
