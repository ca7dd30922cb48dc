// The WebAssembly verifier against the native one: every case of cases.mjs is verified
// by `silk verify --json` (target/debug/silk, or $SILK_BIN) and by verifyEvidence, and the
// two JSON texts must be equal byte for byte; where the CLI finds the inputs unusable
// (exit status 2) the wasm call must throw. Then verifyBundle, attest and SealedRequest.
//
// Run from anywhere: `node --test verifier/wasm/test/verifier.test.mjs` (scripts/test.sh does, after
// building the workspace's binaries). It loads the committed package, verifier/wasm/pkg/.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  initSync, verifyEvidence, verifyBundle, attest, SealedRequest, version,
} from '../pkg/silk_verifier_wasm.js';
import {
  cases, cliArgs, wasmInputs, scratch, bundleNow, rfc3339,
  SIM_BUNDLE, SIM_POLICY, SIM_NONCE,
} from './cases.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
process.chdir(root);
const silk = process.env.SILK_BIN ?? join('target', 'debug', 'silk');

let dir;
let all;
let simNow;

before(() => {
  initSync({ module: readFileSync('verifier/wasm/pkg/silk_verifier_wasm_bg.wasm') });
  dir = scratch();
  all = cases(dir);
  simNow = bundleNow(attest);
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
});

function cli(args) {
  const out = spawnSync(silk, args, { encoding: 'utf8' });
  if (out.error) throw new Error(`cannot run ${silk} (build it: cargo build --bins): ${out.error.message}`);
  return out;
}

test('version names the package', () => {
  assert.match(version(), /^silk-verifier-wasm \d+\.\d+\.\d+/);
});

test('every vector: the same verdict JSON as silk verify --json, byte for byte', () => {
  let compared = 0;
  for (const c of all) {
    const now = c.now === 'bundle' ? simNow : c.now;
    const out = cli(cliArgs(c, now));
    const { bytes, opts } = wasmInputs(c, now);
    if (c.unusable) {
      assert.equal(out.status, 2, `${c.name}: the CLI should exit 2\n${out.stdout}${out.stderr}`);
      assert.throws(() => verifyEvidence(bytes, opts), Error, `${c.name}: the wasm call should throw`);
      continue;
    }
    assert.ok(out.status === 0 || out.status === 1, `${c.name}: exit ${out.status}\n${out.stderr}`);
    const wasm = verifyEvidence(bytes, opts);
    assert.equal(wasm, out.stdout, `${c.name}: the verdicts differ`);
    const verdict = JSON.parse(wasm);
    assert.equal(verdict.accepted, out.status === 0, c.name);
    assert.equal(verdict.accepted, !/\(refused/.test(c.name), `${c.name}: accepted ${verdict.accepted}`);
    compared += 1;
  }
  assert.ok(compared >= 25, `only ${compared} verdicts compared`);
});

test('verifyBundle gives the CLI\'s verdict for a bundle, and checks a challenge', () => {
  const source = SIM_BUNDLE;
  const policy = readFileSync(SIM_POLICY, 'utf8');
  const json = readFileSync(SIM_BUNDLE, 'utf8');
  const out = cli(['verify', SIM_BUNDLE, '--json', '--policy', SIM_POLICY, '--now', simNow]);
  assert.equal(out.status, 0, out.stderr);
  assert.equal(verifyBundle(json, policy, { now: simNow, source }), out.stdout);
  assert.equal(verifyBundle(Buffer.from(json), policy, { now: simNow, source }), out.stdout);

  // The challenge and the age limit, as `silk verify bundle --nonce HEX --max-age SECS`.
  const later = rfc3339(Date.parse(simNow) + 600_000);
  for (const [nonce, now, accepted] of [[SIM_NONCE, simNow, true], ['00'.repeat(32), simNow, false], [SIM_NONCE, later, false]]) {
    const out = cli(['verify', 'bundle', SIM_BUNDLE, '--json', '--policy', SIM_POLICY, '--now', now, '--nonce', nonce, '--max-age', '300']);
    const wasm = verifyBundle(json, policy, { now, source, nonce, maxAgeSecs: 300 });
    assert.equal(wasm, out.stdout, `nonce ${nonce.slice(0, 4)}… at ${now}`);
    assert.equal(JSON.parse(wasm).accepted, accepted);
    assert.equal(out.status, accepted ? 0 : 1);
  }
  assert.equal(JSON.parse(verifyBundle(json, policy, { now: simNow })).source, 'evidence');
  assert.throws(() => verifyBundle('{"version": 1}', policy, {}), /bundle/);
  assert.throws(() => verifyBundle(json, policy, { maxAgeSecs: -1 }), /maxAgeSecs/);
});

test('the time defaults to the host\'s clock', () => {
  const c = all.find((x) => x.name === 'snp milan, certs folder');
  const { bytes, opts } = wasmInputs(c, undefined);
  delete opts.now;
  const before = Date.now();
  const verdict = JSON.parse(verifyEvidence(bytes, opts));
  const at = Date.parse(verdict.verified_at);
  assert.ok(at >= before - 1 && at <= Date.now() + 1, verdict.verified_at);
});

test('options the CLI would refuse are refused with a message', () => {
  const c = all.find((x) => x.name === 'gpu hopper 535, no RIMs allowed');
  const { bytes, opts } = wasmInputs(c, c.now);
  assert.throws(() => verifyEvidence(bytes, { ...opts, policy: undefined }), /policy/);
  assert.throws(() => verifyEvidence(bytes, { ...opts, format: 'pdf' }), /"pdf"/);
  assert.throws(() => verifyEvidence(bytes, { ...opts, collateral: { ...opts.collateral, noNonce: true } }), /contradict/);
  assert.throws(() => verifyEvidence(bytes, { ...opts, collateral: { ...opts.collateral, gpuNonce: 'abcd' } }), /32 bytes/);
  assert.throws(() => verifyEvidence(bytes, { ...opts, collateral: { ...opts.collateral, gpuChain: 42 } }), /gpuChain/);
  assert.throws(() => verifyEvidence(bytes, { ...opts, collateral: { ...opts.collateral, gpuRims: [{ name: 'x' }] } }), /gpuRims\[0\]\.xml/);
});

test('attest: the page\'s verdict, claims and sealing key', () => {
  const json = readFileSync(SIM_BUNDLE, 'utf8');
  const policy = readFileSync(SIM_POLICY, 'utf8');
  const a = attest(json, policy, SIM_NONCE, simNow);
  assert.equal(a.accepted, true);
  assert.equal(a.simulated, true);
  assert.match(a.hpkePublicKey, /^[0-9a-f]{64}$/);
  assert.match(a.claimsDigest, /^[0-9a-f]{64}$/);
  assert.equal(a.claims.hpke_public_key, a.hpkePublicKey);
  assert.equal(a.claims.challenge, SIM_NONCE);
  // Its verdict is verifyBundle's with the same challenge and age limit.
  const same = verifyBundle(json, policy, { now: simNow, nonce: SIM_NONCE, maxAgeSecs: 300, source: '/v1/attestation' });
  assert.deepEqual(a.verdict, JSON.parse(same));
  // Keys in the CLI's order.
  assert.deepEqual(Object.keys(a.verdict).slice(0, 5), ['evidence', 'source', 'verified_at', 'accepted', 'platform']);

  const refused = attest(json, policy, '00'.repeat(32), simNow);
  assert.equal(refused.accepted, false);
  assert.ok(refused.verdict.checks.some((c) => c.outcome.status === 'fail'));
  assert.equal(refused.claims.model, a.claims.model);
  // Without a challenge (a base bundle), no age limit applies.
  assert.equal(attest(Buffer.from(json), policy, '', simNow).accepted, true);
  assert.throws(() => attest('not json', policy, SIM_NONCE, simNow), /bundle/);
});

test('SealedRequest seals to the attested key and refuses what it cannot open', () => {
  const a = attest(readFileSync(SIM_BUNDLE, 'utf8'), readFileSync(SIM_POLICY, 'utf8'), SIM_NONCE, simNow);
  const body = new TextEncoder().encode('{"messages":[{"role":"user","content":"a secret prompt"}]}');
  const r = new SealedRequest(a.hpkePublicKey, a.claimsDigest, body);
  const wire = r.bytes();
  assert.ok(wire instanceof Uint8Array);
  // Version, claims digest, encapsulated key, ciphertext and tag.
  assert.equal(wire.length, 1 + 32 + 32 + body.length + 16);
  assert.equal(wire[0], 1);
  assert.equal(Buffer.from(wire.subarray(1, 33)).toString('hex'), a.claimsDigest);
  assert.ok(!Buffer.from(wire).includes('secret'), 'the prompt is in clear');
  // Fresh randomness each time: two seals of one body differ.
  const again = new SealedRequest(a.hpkePublicKey, a.claimsDigest, body).bytes();
  assert.notDeepEqual(Buffer.from(again), Buffer.from(wire));
  assert.equal(r.finished(), false);
  assert.deepEqual(r.push(new Uint8Array(0)), []);
  assert.throws(() => r.finish(), /sealed answer/);
  // A chunk that is not the enclave's.
  const forged = new Uint8Array([0x01, 0, 0, 0, 20, ...new Uint8Array(20)]);
  assert.throws(() => r.push(forged), /sealed answer/);
  assert.throws(() => new SealedRequest('00', a.claimsDigest, body), /hpkePublicKeyHex/);
  assert.throws(() => new SealedRequest(a.hpkePublicKey, 'zz', body), /claimsDigestHex/);
});

// The enclave's side, natively (verifier/wasm/examples/seal_peer.rs): what the wasm seals
// opens there, and the answer sealed there opens here, text split inside UTF-8
// characters included.
function sealPeer(seal) {
  const bin = process.env.SEAL_PEER ?? join('target', 'debug', 'examples', 'seal_peer');
  return new Promise((resolvePeer, reject) => {
    const peer = spawn(bin, [], { stdio: ['pipe', 'pipe', 'ignore'] });
    peer.on('error', (e) => reject(new Error(`cannot run ${bin} (cargo build -p silk-verifier-wasm --example seal_peer): ${e.message}`)));
    const chunks = [];
    let header = null;
    let sealed = null;
    peer.stdout.on('data', (data) => {
      chunks.push(data);
      const all = Buffer.concat(chunks);
      const nl = all.indexOf(0x0a);
      if (header === null && nl >= 0) {
        header = JSON.parse(all.subarray(0, nl).toString('utf8'));
        sealed = seal(header);
        peer.stdin.end(Buffer.from(sealed.bytes()));
      }
    });
    peer.on('close', (code) => {
      const all = Buffer.concat(chunks);
      resolvePeer({ code, sealed, answer: all.subarray(all.indexOf(0x0a) + 1) });
    });
  });
}

test('a request sealed in wasm opens natively, and the sealed answer opens in wasm', async () => {
  const prompt = 'héllo ✓ wörld, 雪';
  const { code, sealed, answer } = await sealPeer((h) => new SealedRequest(h.hpkePublicKey, h.claimsDigest, new TextEncoder().encode(prompt)));
  assert.equal(code, 0);
  assert.ok(!answer.includes(Buffer.from('wörld')), 'the answer is in clear');
  const texts = [];
  for (let i = 0; i < answer.length; i += 5) texts.push(...sealed.push(answer.subarray(i, i + 5)));
  assert.equal(texts.join(''), `you said: ${prompt}`);
  assert.ok(texts.length > 3 && texts.every((t) => !t.includes('\ufffd')), JSON.stringify(texts));
  assert.equal(sealed.finished(), true);
  sealed.finish();
  assert.throws(() => sealed.push(new Uint8Array([1])), /sealed answer/);

  // Any byte of the answer changed: refused, and nothing after it is given out.
  const { answer: second, sealed: again } = await sealPeer((h) => new SealedRequest(h.hpkePublicKey, h.claimsDigest, new TextEncoder().encode(prompt)));
  const altered = Buffer.from(second);
  altered[altered.length - 3] ^= 0x01;
  assert.throws(() => again.push(altered), /sealed answer/);
  // Sealed to other claims: the peer refuses to open it.
  const { code: refused } = await sealPeer((h) => new SealedRequest(h.hpkePublicKey, '00'.repeat(32), new TextEncoder().encode(prompt)));
  assert.equal(refused, 1);
});
