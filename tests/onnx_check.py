#!/usr/bin/env python3
"""Checks headnet's ONNX files with the reference implementation's checker (Debian's python3-onnx):
onnx.checker.check_model(model, full_check=True), which also runs ONNX's shape inference.
  onnx_check.py DIR      (DIR holds manifest.json from onnx_interop_fixture)
Exit 77 (skipped) without python3-onnx; models at an opset newer than the checker knows are listed
as not checked, by name."""
import json
import os
import sys

try:
    import onnx
except ImportError:
    print("python3-onnx is not installed: skipping the ONNX checker (apt-get install python3-onnx)")
    sys.exit(77)

directory = sys.argv[1]
manifest = json.load(open(os.path.join(directory, "manifest.json")))
failures = 0
for case in manifest:
    path = os.path.join(directory, case["name"] + ".onnx")
    model = onnx.load(path)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset > onnx.defs.onnx_opset_version():
        print(f"NOT CHECKED {case['name']}: opset {opset}, this onnx {onnx.__version__} knows up to {onnx.defs.onnx_opset_version()}")
        continue
    try:
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        out = inferred.graph.output[0].type.tensor_type.shape.dim
        dims = [d.dim_param or d.dim_value for d in out]
        expected = ["N"] + case["output_shape"][1:]
        if dims != expected:
            raise ValueError(f"output shape {dims}, expected {expected}")
        print(f"ok {case['name']}: opset {opset}, {len(model.graph.node)} nodes, output {dims}")
    except Exception as e:  # noqa: BLE001  (report every model, then fail)
        print(f"FAILED {case['name']}: {e}")
        failures += 1
sys.exit(1 if failures else 0)
