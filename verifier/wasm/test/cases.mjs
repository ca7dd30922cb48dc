// The verifications the Node tests and the benchmark run, each as `silk verify` takes it
// (paths and flags) and as verifyEvidence takes it (bytes and options): the vendor
// vectors the CLI tests use (tools/tests/verify*_cli.rs), under the same policies, times
// and collateral, accepted and refused, and a simulated silk evidence bundle.
//
// Paths are relative to the repository root (the tests run from there), and the CLI is
// given exactly the path string that becomes the verdict's `source`.

import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, basename } from 'node:path';

export const SNP_POLICY = 'docs/examples/snp-milan-sample.toml';
export const TDX_POLICY = 'docs/examples/tdx-sample.toml';
const IN_WINDOW = '2025-06-20T00:00:00Z';
const AFTER_WINDOW = '2025-08-01T00:00:00Z';
const GPU_NOW = '2025-06-01T00:00:00Z';
const NONCE_535 = '27a328247bf7935c993341cf587be6f05986ccce4fe7ba2c54100bd616a58f66';
const NONCE_590 = 'e97b23a1718095a0e9e35edca810768c70a6a5a389b705e753b197912bc11576';
const GPU = 'vectors/gpu';
const SAMPLES = `${GPU}/nvidia-attestation-sdk/testdata/sample_attestation_data/gpu`;
// The simulated bundle helper P's pytest vectors use (silk-enclave --evidence simulated,
// challenged with 32 bytes of 5e), and the policy that accepts exactly it.
export const SIM_BUNDLE = 'verifier/python/tests/data/sim-bundle.json';
export const SIM_POLICY = 'verifier/python/tests/data/sim-policy.toml';
export const SIM_NONCE = '5e'.repeat(32);

/** A scratch folder for derived inputs (policies, damaged evidence, RIM folders). */
export function scratch() {
  return mkdtempSync(join(tmpdir(), 'silk-wasm-test-'));
}

function write(dir, name, data) {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}

function gpuPolicy(dir, extra) {
  return write(dir, `gpu-${Math.random().toString(16).slice(2)}.toml`,
    '[gpu]\narchitectures = ["hopper", "blackwell"]\nmin_driver_version = "535"\n' +
    'min_vbios_version = "96.00.00.00.00"\nallow_missing_revocation = true\n' + extra);
}

/** A RIM folder holding `files` under their own names (as tools/tests/verify_gpu_cli.rs). */
function rimDir(dir, name, files) {
  const rims = join(dir, name);
  mkdirSync(rims, { recursive: true });
  for (const f of files) copyFileSync(f, join(rims, basename(f)));
  return rims;
}

const PROD_VBIOS = `${GPU}/nv-local-gpu-verifier-2.7.3/samples/1010_0200_882_96005E0001_PROD.swidtag`;
const SAMPLE_RIMS = `${GPU}/nvidia-attestation-sdk/testdata/sample_rims`;

/** Every real RIM of the vectors: NVIDIA's sample driver and VBIOS RIMs. */
function realRims(dir) {
  const samples = `${GPU}/nv-local-gpu-verifier-2.7.3/samples`;
  const files = readdirSync(samples).filter((f) => f.endsWith('.swidtag')).map((f) => join(samples, f));
  files.push(`${GPU}/nvidia-attestation-sdk/testdata/NV_GPU_DRIVER_GH100_550.144.03.xml`);
  return rimDir(dir, 'rims', files);
}

/** One byte of `path`'s evidence changed (hex text is decoded first), written to `dir`. */
function flipped(dir, path, index, { hex = false } = {}) {
  let bytes = readFileSync(path);
  if (hex) bytes = Buffer.from(bytes.toString('latin1').trim(), 'hex');
  bytes = Buffer.from(bytes);
  bytes[index] ^= 0x01;
  return write(dir, `${basename(path)}-flip-${index}.bin`, bytes);
}

/**
 * The cases. Each: `name`, `evidence` (path), and what the CLI calls `--policy`,
 * `--now`, `--certs`, `--vcek`, `--collateral`, `--gpu-rims`, `--nonce`, `--no-nonce`,
 * and the format word (`silk verify gpu FILE`). `collateralBeside`: the CLI finds the
 * TDX collateral beside the quote, the wasm call is given it.
 */
export function cases(dir) {
  const pol = (name, text) => write(dir, name, text);
  const tdxAny = pol('tdx-any.toml', '[tdx]\nallow_any_measurement = true\n');
  const sgxStrict = pol('sgx-strict.toml', '[sgx]\nallow_any_measurement = true\n');
  const sgxLenient = pol('sgx-lenient.toml', '[sgx]\nallow_any_measurement = true\n' +
    'allowed_tcb_statuses = ["UpToDate", "ConfigurationAndSWHardeningNeeded"]\n');
  const gpuPol = gpuPolicy(dir, '');
  const gpuNoRims = gpuPolicy(dir, 'allow_missing_rims = true\n');
  const gpu590 = gpuPolicy(dir, 'allow_missing_rims = true\nallow_protected_pcie = true\n');
  const rims = realRims(dir);
  const vbiosMismatch = rimDir(dir, 'rims-vbios-mismatch', [`${SAMPLE_RIMS}/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml`]);
  const vbiosBoth = rimDir(dir, 'rims-vbios-both', [`${SAMPLE_RIMS}/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml`, PROD_VBIOS]);
  const driverTampered = rimDir(dir, 'rims-driver-tampered', [`${SAMPLE_RIMS}/NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml`, PROD_VBIOS]);
  const milan = 'vectors/snp/milan/report_milan.hex';
  const quote = 'vectors/tdx/tdx_quote';
  const report535 = `${SAMPLES}/hopperAttestationReport.txt`;
  const chain535 = `${SAMPLES}/hopperCertChain.txt`;
  const nras = `${GPU}/nvidia-attestation-sdk/testdata/evidence_hopper_590_12.json`;
  return [
    // AMD SEV-SNP (Milan, virtee/sev's sample).
    { name: 'snp milan, certs folder', evidence: milan, certs: 'vectors/snp/milan', policy: SNP_POLICY, now: '2025-01-01T00:00:00Z' },
    { name: 'snp milan, vcek and pinned chain', evidence: milan, vcek: 'vectors/snp/milan/vcek_milan.der', policy: SNP_POLICY, now: IN_WINDOW },
    { name: 'snp milan, vcek and Milan roots given', evidence: milan, vcek: 'vectors/snp/milan/vcek_milan.der', certs: 'vectors/snp/roots/milan', policy: SNP_POLICY, now: IN_WINDOW },
    { name: 'snp milan, Genoa roots (refused)', evidence: milan, vcek: 'vectors/snp/milan/vcek_milan.der', certs: 'vectors/snp/roots/genoa', policy: SNP_POLICY, now: IN_WINDOW },
    { name: 'snp milan, Turin vcek (refused)', evidence: milan, vcek: 'vectors/snp/turin/vcek_turin.der', policy: SNP_POLICY, now: IN_WINDOW },
    { name: 'snp milan, TDX policy (refused)', evidence: milan, certs: 'vectors/snp/milan', policy: TDX_POLICY, now: IN_WINDOW },
    { name: 'snp milan, empty policy (refused)', evidence: milan, certs: 'vectors/snp/milan', policy: pol('empty.toml', ''), now: IN_WINDOW },
    { name: 'snp milan, one byte flipped (refused)', evidence: flipped(dir, milan, 0x90, { hex: true }), certs: 'vectors/snp/milan', policy: SNP_POLICY, now: IN_WINDOW },
    { name: 'snp milan, signature byte flipped (refused)', evidence: flipped(dir, milan, 0x2a0, { hex: true }), certs: 'vectors/snp/milan', policy: SNP_POLICY, now: IN_WINDOW },
    { name: 'snp milan, no certificate (unusable)', evidence: milan, policy: SNP_POLICY, now: IN_WINDOW, unusable: true },
    // Intel TDX and SGX (dcap-qvl's samples with their PCS collateral).
    { name: 'tdx quote, collateral window', evidence: quote, collateralBeside: true, policy: TDX_POLICY, now: IN_WINDOW },
    { name: 'tdx quote, after the window (refused)', evidence: quote, collateralBeside: true, policy: TDX_POLICY, now: AFTER_WINDOW },
    { name: 'tdx quote, --collateral, SNP policy (refused)', evidence: quote, collateral: 'vectors/tdx/tdx_quote_collateral.json', policy: SNP_POLICY, now: IN_WINDOW },
    { name: 'tdx quote, one byte flipped (refused)', evidence: flipped(dir, quote, 700), collateral: 'vectors/tdx/tdx_quote_collateral.json', policy: TDX_POLICY, now: IN_WINDOW },
    { name: 'tdx quote named tdx, header flipped (refused)', format: 'tdx', evidence: flipped(dir, quote, 1), collateral: 'vectors/tdx/tdx_quote_collateral.json', policy: TDX_POLICY, now: IN_WINDOW },
    { name: 'tdx outdated quote, TCB level (refused)', evidence: 'vectors/tdx/tdx_quote_outdated', collateralBeside: true, policy: tdxAny, now: '2026-02-19T00:00:00Z' },
    { name: 'tdx quote, no collateral (unusable)', evidence: 'vectors/tdx/tdx-quote.hex', policy: TDX_POLICY, now: IN_WINDOW, unusable: true },
    { name: 'sgx quote, strict TCB statuses (refused)', evidence: 'vectors/sgx/sgx_quote', collateralBeside: true, policy: sgxStrict, now: IN_WINDOW },
    { name: 'sgx quote, lenient TCB statuses', evidence: 'vectors/sgx/sgx_quote', collateralBeside: true, policy: sgxLenient, now: IN_WINDOW },
    // NVIDIA GPU (nvtrust's samples, real RIMs).
    { name: 'gpu hopper 535, nonce and real RIMs (refused: no untampered driver RIM)', format: 'gpu', evidence: report535, certs: chain535, nonce: NONCE_535, gpuRims: rims, policy: gpuPol, now: GPU_NOW },
    { name: 'gpu hopper 535, real VBIOS RIMs, driver RIM may be missing', format: 'gpu', evidence: report535, certs: chain535, nonce: NONCE_535, gpuRims: rims, policy: gpuNoRims, now: GPU_NOW },
    { name: 'gpu hopper 535, VBIOS RIM measurement mismatch (refused)', evidence: report535, certs: chain535, nonce: NONCE_535, gpuRims: vbiosMismatch, policy: gpuNoRims, now: GPU_NOW },
    { name: 'gpu hopper 535, mismatching and genuine VBIOS RIMs', evidence: report535, certs: chain535, nonce: NONCE_535, gpuRims: vbiosBoth, policy: gpuNoRims, now: GPU_NOW },
    { name: 'gpu hopper 535, tampered driver RIM (refused)', evidence: report535, certs: chain535, nonce: NONCE_535, gpuRims: driverTampered, policy: gpuPol, now: GPU_NOW },
    { name: 'gpu hopper 535, no RIMs allowed', evidence: report535, certs: chain535, nonce: NONCE_535, policy: gpuNoRims, now: GPU_NOW },
    { name: 'gpu hopper 535, no RIMs (refused)', evidence: report535, certs: chain535, nonce: NONCE_535, policy: gpuPol, now: GPU_NOW },
    { name: 'gpu hopper 535, wrong nonce (refused)', evidence: report535, certs: chain535, nonce: '00'.repeat(32), policy: gpuNoRims, now: GPU_NOW },
    { name: 'gpu hopper, invalid signature (refused)', evidence: `${SAMPLES}/hopperAttestationReportInvalidSignature.txt`, certs: chain535, noNonce: true, policy: gpuNoRims, now: GPU_NOW },
    { name: 'gpu hopper, expired-sample chain, inside its validity', evidence: `${SAMPLES}/hopperAttestationReportExpired.txt`, certs: `${SAMPLES}/hopperCertChainExpired.txt`, noNonce: true, policy: gpuNoRims, now: GPU_NOW },
    { name: 'gpu blackwell, no nonce', evidence: `${SAMPLES}/blackwellAttestationReport.txt`, certs: `${SAMPLES}/blackwellCertChain.txt`, noNonce: true, policy: gpuNoRims, now: GPU_NOW },
    { name: 'gpu hopper 535, one byte flipped (refused)', evidence: flipped(dir, report535, 3000, { hex: true }), certs: chain535, nonce: NONCE_535, policy: gpuNoRims, now: GPU_NOW },
    { name: 'gpu NRAS json 590, nonce', evidence: nras, nonce: NONCE_590, policy: gpu590, now: GPU_NOW },
    { name: 'gpu NRAS json 590, other nonce (refused)', evidence: nras, nonce: '00'.repeat(32), policy: gpu590, now: GPU_NOW },
    { name: 'gpu NRAS json 590, no nonce', evidence: nras, noNonce: true, policy: gpu590, now: GPU_NOW },
    { name: 'gpu NRAS json 590, nonce unset (unusable)', evidence: nras, policy: gpu590, now: GPU_NOW, unusable: true },
    { name: 'gpu report, no chain (unusable)', format: 'gpu', evidence: report535, nonce: NONCE_535, policy: gpuNoRims, now: GPU_NOW, unusable: true },
    // A silk evidence bundle (simulated SEV-SNP, its development chain inside).
    { name: 'bundle, simulated, its policy', evidence: SIM_BUNDLE, policy: SIM_POLICY, now: 'bundle' },
    { name: 'bundle, simulated, Milan policy (refused)', evidence: SIM_BUNDLE, policy: SNP_POLICY, now: 'bundle' },
    { name: 'bundle, simulated, claims byte flipped (refused)', evidence: flippedClaims(dir), policy: SIM_POLICY, now: 'bundle' },
    // Unusable inputs: the CLI exits 2, the wasm call throws.
    { name: 'not evidence (unusable)', evidence: write(dir, 'junk.bin', 'definitely not evidence'), policy: SNP_POLICY, now: IN_WINDOW, unusable: true },
    { name: 'misspelt policy key (unusable)', evidence: milan, certs: 'vectors/snp/milan', policy: pol('bad.toml', '[snp]\nmeasurments = []\n'), now: IN_WINDOW, unusable: true },
    { name: 'time not RFC 3339 (unusable)', evidence: quote, collateralBeside: true, policy: TDX_POLICY, now: 'yesterday', unusable: true },
  ];
}

/** The simulated bundle with one byte of its claims changed (the same report). */
function flippedClaims(dir) {
  const bundle = JSON.parse(readFileSync(SIM_BUNDLE, 'utf8'));
  const claims = Buffer.from(bundle.claims, 'base64');
  claims[40] ^= 0x01;
  bundle.claims = claims.toString('base64');
  return write(dir, 'sim-bundle-flipped.json', JSON.stringify(bundle));
}

/**
 * A time at which the simulated bundle verifies: a minute after its claims were made
 * (read with `attest`), when its development certificates are valid.
 */
export function bundleNow(attest) {
  const probe = attest(readFileSync(SIM_BUNDLE), readFileSync(SIM_POLICY, 'utf8'), null, '2030-01-01T00:00:00Z');
  return rfc3339((probe.claims.created_at + 60) * 1000);
}

/** RFC 3339 in whole seconds, as `--now` is usually written. */
export function rfc3339(ms) {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function isDir(path) {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** `silk verify`'s arguments for a case. */
export function cliArgs(c, now) {
  const args = ['verify'];
  if (c.format) args.push(c.format);
  args.push(c.evidence, '--json', '--policy', c.policy, '--now', now);
  if (c.vcek) args.push('--vcek', c.vcek);
  if (c.certs) args.push('--certs', c.certs);
  if (c.collateral) args.push('--collateral', c.collateral);
  if (c.gpuRims) args.push('--gpu-rims', c.gpuRims);
  if (c.nonce) args.push('--nonce', c.nonce);
  if (c.noNonce) args.push('--no-nonce');
  return args;
}

/** AMD certificates from a folder, as `silk verify --certs DIR` picks them. */
function snpFolder(dir, collateral) {
  for (const name of readdirSync(dir).sort()) {
    const lower = name.toLowerCase();
    const bytes = readFileSync(join(dir, name));
    if (lower.startsWith('vcek') || lower.startsWith('vlek')) {
      collateral.vcek ??= bytes;
    } else if (lower.startsWith('cert_chain')) {
      collateral.certChain = bytes;
    } else if (lower.startsWith('ask') || lower.startsWith('asvk')) {
      collateral.ask = bytes;
    } else if (lower.startsWith('ark')) {
      collateral.ark = bytes;
    }
  }
}

/** verifyEvidence's evidence bytes and options for a case. */
export function wasmInputs(c, now) {
  const collateral = {};
  if (c.vcek) collateral.vcek = readFileSync(c.vcek);
  if (c.certs) {
    if (isDir(c.certs)) snpFolder(c.certs, collateral);
    else collateral.gpuChain = readFileSync(c.certs);
  }
  if (c.collateral) collateral.tdx = readFileSync(c.collateral);
  if (c.collateralBeside) collateral.tdx = readFileSync(`${c.evidence}_collateral.json`, 'utf8');
  if (c.gpuRims) {
    collateral.gpuRims = readdirSync(c.gpuRims).sort()
      .filter((f) => /\.(xml|swidtag)$/i.test(f))
      .map((f) => ({ name: f, xml: readFileSync(join(c.gpuRims, f)) }));
  }
  if (c.nonce) collateral.gpuNonce = c.nonce;
  if (c.noNonce) collateral.noNonce = true;
  const opts = {
    policy: readFileSync(c.policy, 'utf8'),
    now,
    source: c.evidence,
    collateral,
  };
  if (c.format) opts.format = c.format;
  return { bytes: readFileSync(c.evidence), opts };
}
