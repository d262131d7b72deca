// Runs headnet's ONNX files in onnxruntime (npm's onnxruntime-node, whose binaries ship inside the
// package) and compares its outputs with headnet's.
//   node onnx_runtime_check.js DIR     (NODE_PATH must reach onnxruntime-node)
'use strict';
const fs = require('fs');
const path = require('path');
let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  // A runtime that cannot load here (an old Node.js, a missing library) is not a result: skipped.
  console.log('SKIPPED: onnxruntime-node does not load on Node.js ' + process.version + ': ' + e.message);
  process.exit(77);
}

function readFloats(file) {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

async function main() {
  const dir = process.argv[2];
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  let failures = 0;
  for (const c of manifest) {
    const session = await ort.InferenceSession.create(path.join(dir, c.name + '.onnx'),
                                                      {graphOptimizationLevel: 'disabled', intraOpNumThreads: 1});
    const input = new ort.Tensor('float32', readFloats(path.join(dir, c.name + '.input.bin')), c.input_shape);
    const result = await session.run({[session.inputNames[0]]: input});
    const got = result[session.outputNames[0]];
    const expected = readFloats(path.join(dir, c.name + '.output.bin'));
    let worst = 0;
    for (let i = 0; i < expected.length; ++i) {
      worst = Math.max(worst, Math.abs(got.data[i] - expected[i]) / Math.max(1, Math.abs(expected[i])));
    }
    const shapeOk = JSON.stringify(Array.from(got.dims)) === JSON.stringify(c.output_shape);
    const ok = shapeOk && got.data.length === expected.length && worst < 1e-4;
    console.log(`${ok ? 'ok' : 'FAILED'} ${c.name}: onnxruntime ${ort.env.versions.node}, output ${JSON.stringify(Array.from(got.dims))}, ` +
                `worst relative difference ${worst.toExponential(2)}`);
    if (!ok) failures++;
  }
  process.exit(failures ? 1 : 0);
}
main().catch((e) => { console.error('onnx_runtime_check: ' + e); process.exit(1); });
