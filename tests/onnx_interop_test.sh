#!/usr/bin/env bash
# headnet's ONNX files read by others: the ONNX checker (python3-onnx) and onnxruntime (npm's
# onnxruntime-node), each must agree with headnet's outputs to 1e-4.
#   onnx_interop_test.sh FIXTURE SOURCE_DIR WORK_DIR
# Exit 77 (CTest: skipped) when a reader cannot be had (it is named), 1 when one disagrees.
set -uo pipefail
fixture=$1 src=$2 work=$3
mkdir -p "$work"
"$fixture" "$work" || exit 1

status=0 ran=0
/usr/bin/python3 "$src/onnx_check.py" "$work"
rc=$?
if [ $rc -eq 0 ]; then ran=$((ran + 1)); elif [ $rc -eq 77 ]; then echo "SKIPPED: ONNX checker"; else status=1; fi

# onnxruntime-node, installed once into the work folder (its install script fetches GPU extras from
# outside npm, which we neither need nor can reach: --ignore-scripts; the CPU binaries are in the package).
ort="$work/node_modules/onnxruntime-node"
if [ ! -d "$ort" ] && command -v npm >/dev/null; then
  (cd "$work" && npm install --silent --no-audit --no-fund --ignore-scripts onnxruntime-node@1.30.0 >npm.log 2>&1) ||
    echo "npm install onnxruntime-node failed: see $work/npm.log"
fi
if [ -d "$ort" ] && command -v node >/dev/null; then
  NODE_PATH="$work/node_modules" node "$src/onnx_runtime_check.js" "$work"
  rc=$?
  if [ $rc -eq 0 ]; then ran=$((ran + 1)); elif [ $rc -eq 77 ]; then echo "SKIPPED: onnxruntime"; else status=1; fi
else
  echo "SKIPPED: onnxruntime (needs node and npm's onnxruntime-node)"
fi
[ $status -ne 0 ] && exit 1
[ $ran -lt 2 ] && exit 77  # a reader was missing: the test is skipped, not passed
exit 0
