// Runs an ONNX model with ONNX Runtime (npm onnxruntime-node) on .npy inputs and writes its
// outputs as .npy files, so that C++ tests can compare them with Glia's.
//
//   node run_ort.js model.onnx out_prefix in0.npy [in1.npy ...] [-- out_prefix in0.npy ...]
//
// Inputs go to the model's inputs in order; output i is written to <out_prefix><i>.npy. Groups
// separated by -- run one after the other in one session.
// The .npy reader and writer cover what the tests need: little-endian float32 and int64, C order.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

const DTYPES = {'<f4': ['float32', Float32Array], '<i8': ['int64', BigInt64Array]};

function readNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${path}: Fortran order is not supported`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const kind = DTYPES[descr];
  if (!kind) throw new Error(`${path}: dtype ${descr} is not supported (float32 and int64 only)`);
  const count = shape.reduce((a, b) => a * b, 1);
  const bytes = buf.subarray(start, start + count * kind[1].BYTES_PER_ELEMENT);
  // Copy into an aligned buffer: the data offset need not be a multiple of 8.
  const data = new kind[1](count);
  new Uint8Array(data.buffer).set(bytes);
  return new ort.Tensor(kind[0], data, shape);
}

function writeNpy(path, tensor) {
  const descr = {float32: '<f4', int64: '<i8'}[tensor.type];
  if (!descr) throw new Error(`output of type ${tensor.type} is not supported`);
  const dims = tensor.dims.map(String);
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const data = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  fs.writeFileSync(path, Buffer.concat([pre, Buffer.from(header, 'latin1'), data]));
}

async function main() {
  const [model, ...rest] = process.argv.slice(2);
  if (!model || rest.length === 0)
    throw new Error('usage: node run_ort.js model.onnx out_prefix in0.npy [in1.npy ...] [-- out_prefix in0.npy ...]');
  const session = await ort.InferenceSession.create(model);
  // One session for every group of inputs: the tests run each model at several batch sizes.
  const groups = [[]];
  for (const a of rest) {
    if (a === '--') groups.push([]);
    else groups[groups.length - 1].push(a);
  }
  for (const [outPrefix, ...inputs] of groups) {
    if (inputs.length !== session.inputNames.length)
      throw new Error(`the model has ${session.inputNames.length} inputs, got ${inputs.length} files`);
    const feeds = {};
    session.inputNames.forEach((name, i) => { feeds[name] = readNpy(inputs[i]); });
    const results = await session.run(feeds);
    session.outputNames.forEach((name, i) => writeNpy(`${outPrefix}${i}.npy`, results[name]));
  }
}

main().catch((e) => {
  console.error(`run_ort.js: ${e.message}`);
  process.exit(1);
});
