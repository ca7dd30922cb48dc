// Time to verify each vector: the WebAssembly build in Node against the native build of
// the same function, in one table.
//
//   node verifier/wasm/test/bench.mjs [--runs N] [--native BIN] [--pkg DIR]
//
// wasm: verifyEvidence from verifier/wasm/pkg/ (or DIR), median of N runs after one
// warm-up run.
// native: verifier/wasm/examples/native_timing.rs (Request::verdict_json, the function
// the wasm build runs, in-process: no process start counted), median of N runs after one
// warm-up. BIN defaults to target/release/examples/native_timing; when it is missing the
// native column is left empty (build it: cargo build --release -p silk-verifier-wasm
// --example native_timing).

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

import { cases, wasmInputs, scratch, bundleNow } from './cases.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
process.chdir(root);
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const runs = Number(arg('--runs', 20));
// Another build of the package to time (e.g. one made with `scripts/build-wasm.sh --out`).
const pkg = resolve(arg('--pkg', 'verifier/wasm/pkg'));
const { initSync, verifyEvidence, attest } = await import(pathToFileURL(join(pkg, 'silk_verifier_wasm.js')).href);
const nativeBin = arg('--native', join('target', 'release', 'examples', 'native_timing'));

const wasmBytes = readFileSync(join(pkg, 'silk_verifier_wasm_bg.wasm'));
let t = performance.now();
initSync({ module: wasmBytes });
const initMs = performance.now() - t;

const dir = scratch();
const simNow = bundleNow(attest);
const list = cases(dir).filter((c) => !c.unusable);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
const forNative = [];
for (const c of list) {
  const now = c.now === 'bundle' ? simNow : c.now;
  const { bytes, opts } = wasmInputs(c, now);
  verifyEvidence(bytes, opts);
  const times = [];
  for (let i = 0; i < runs; i += 1) {
    t = performance.now();
    verifyEvidence(bytes, opts);
    times.push(performance.now() - t);
  }
  rows.push({ name: c.name, wasm: median(times) });
  const hex = (b) => (b === undefined ? undefined : Buffer.from(b).toString('hex'));
  const col = opts.collateral;
  forNative.push({
    name: c.name, runs, evidence: hex(bytes), policy: opts.policy, now, format: opts.format, source: opts.source,
    collateral: {
      vcek: hex(col.vcek), ask: hex(col.ask), ark: hex(col.ark), certChain: hex(col.certChain),
      tdx: hex(col.tdx), gpuChain: hex(col.gpuChain),
      gpuRims: col.gpuRims?.map((r) => ({ name: r.name, xml: hex(r.xml) })),
      gpuNonce: col.gpuNonce, noNonce: col.noNonce,
    },
  });
}

let native = new Map();
if (existsSync(nativeBin)) {
  const file = join(dir, 'cases.json');
  writeFileSync(file, JSON.stringify(forNative));
  const out = spawnSync(nativeBin, [file], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`${nativeBin}: ${out.stderr}`);
  native = new Map(out.stdout.trim().split('\n').map((l) => l.split('\t')).map(([n, ms]) => [n, Number(ms)]));
}
rmSync(dir, { recursive: true, force: true });

const cpu = readFileSync('/proc/cpuinfo', 'utf8');
const model = /model name\s*:\s*(.*)/.exec(cpu)?.[1] ?? cpus()[0]?.model ?? 'unknown';
const flags = /flags\s*:\s*(.*)/.exec(cpu)?.[1]?.split(' ') ?? [];
console.log(`CPU: ${model} (${cpus().length} logical); avx2 ${flags.includes('avx2') ? 'yes' : 'no'}, avx512f ${flags.includes('avx512f') ? 'yes' : 'no'}`);
console.log(`Node ${process.version}; .wasm ${wasmBytes.length} bytes, compiled and instantiated in ${initMs.toFixed(1)} ms`);
console.log(`median of ${runs} runs after one warm-up; native: ${native.size ? nativeBin : 'not built'}\n`);
const w = Math.max(...rows.map((r) => r.name.length));
console.log(`${'vector'.padEnd(w)}  ${'wasm ms'.padStart(9)}  ${'native ms'.padStart(9)}  ${'ratio'.padStart(6)}`);
let sumW = 0;
let sumN = 0;
for (const r of rows) {
  const n = native.get(r.name);
  sumW += r.wasm;
  if (n !== undefined) sumN += n;
  const ratio = n ? (r.wasm / n).toFixed(1) + 'x' : '';
  console.log(`${r.name.padEnd(w)}  ${r.wasm.toFixed(2).padStart(9)}  ${(n === undefined ? '' : n.toFixed(2)).padStart(9)}  ${ratio.padStart(6)}`);
}
console.log(`${'total'.padEnd(w)}  ${sumW.toFixed(2).padStart(9)}  ${(native.size ? sumN.toFixed(2) : '').padStart(9)}  ${(native.size ? (sumW / sumN).toFixed(1) + 'x' : '').padStart(6)}`);
