/* tslint:disable */
/* eslint-disable */

/** A certificate, collateral or RIM: bytes, or text (PEM, JSON, XML). */
export type Bytes = Uint8Array | string;

/** What a verification is given besides the evidence and the policy. */
export interface Collateral {
    /** SNP: the VCEK or VLEK that signed the report (PEM or DER). */
    vcek?: Bytes;
    /** SNP: the ASK or ASVK; AMD's pinned one when absent. */
    ask?: Bytes;
    /** SNP: the ARK; AMD's pinned one when absent. */
    ark?: Bytes;
    /** SNP: AMD's cert_chain PEM (ASK then ARK), as KDS serves it. */
    certChain?: Bytes;
    /** TDX/SGX: Intel PCS collateral JSON. */
    tdx?: Bytes;
    /** GPU: the device certificate chain (PEM, leaf first). */
    gpuChain?: Bytes;
    /** GPU: NVIDIA's driver and VBIOS RIMs; `name` is shown in verdicts. */
    gpuRims?: Array<{ name: string; xml: Bytes }>;
    /** GPU: DER OCSP responses for the device chain. */
    ocsp?: Uint8Array[];
    /** GPU: the nonce (hex, 32 bytes) a standalone report must answer. */
    gpuNonce?: string;
    /** GPU: accept a standalone report whatever its nonce (a possible replay). */
    noNonce?: boolean;
}

/** Options of verifyEvidence. */
export interface VerifyOptions {
    /** The policy, TOML (docs/policy.md). */
    policy: string;
    /** The time to verify at, RFC 3339; Date.now() when absent. */
    now?: string;
    /** What the evidence is; detected when absent. */
    format?: "snp" | "tdx" | "sgx" | "gpu" | "bundle";
    /** The evidence's name in the verdict JSON ("evidence" when absent). */
    source?: string;
    collateral?: Collateral;
}

/** Options of verifyBundle. */
export interface BundleOptions {
    now?: string;
    source?: string;
    /** The challenge (hex) the bundle's claims must carry. */
    nonce?: string;
    /** The oldest acceptable claims, in seconds before `now`. */
    maxAgeSecs?: number;
    collateral?: Collateral;
}

/** The claims an enclave's evidence binds; bytes in hex. */
export interface Claims {
    hpke_public_key: string;
    tls_spki_sha256: string;
    image_digest: string;
    model: string;
    gpu_nonce: string;
    challenge: string;
    created_at: number;
    software_version: string;
    receipt_public_key: string;
    payout_address: string;
    /** The evidence provider the enclave was started with. */
    evidence_provider: string;
    /** SHA-256 of the enclave's GPU policy; empty when it checks none. */
    gpu_policy_sha256: string;
}

/** One check of a verdict. */
export interface Check {
    /** Stable name, e.g. `snp.report_signature`. */
    name: string;
    /** The family it belongs to, e.g. "signature". */
    stage: string;
    expected: string;
    found: string;
    outcome: { status: "pass" } | { status: "fail"; reason: string };
}

/** The verdict, as `silk verify --json` prints it. */
export interface Verdict {
    evidence: string;
    source: string;
    verified_at: string;
    accepted: boolean;
    platform: string;
    checks: Check[];
    warnings: string[];
    facts: Array<{ name: string; value: string }>;
    simulated: boolean;
}

/** What attest returns. */
export interface Attestation {
    accepted: boolean;
    verdict: Verdict;
    claims: Claims | null;
    /** The key to seal requests to (hex). */
    hpkePublicKey: string | null;
    /** SHA-256 of the claims' encoding (hex): what sealed requests are bound to. */
    claimsDigest: string | null;
    simulated: boolean;
}



/**
 * A request sealed (HPKE, RFC 9180) to an attested enclave's key and bound to the digest
 * of the claims that were verified; then the opener of its answer's stream.
 */
export class SealedRequest {
    free(): void;
    [Symbol.dispose](): void;
    /**
     * The sealed request, to POST to `/v1/sealed`.
     */
    bytes(): Uint8Array;
    /**
     * Call when the transport ends: throws unless the final chunk arrived and nothing
     * followed it.
     */
    finish(): void;
    /**
     * Whether the final chunk has arrived.
     */
    finished(): boolean;
    /**
     * Seals `body` to `hpkePublicKeyHex`, bound to `claimsDigestHex` (`attest` gives both).
     */
    constructor(hpkePublicKeyHex: string, claimsDigestHex: string, body: Uint8Array | number[]);
    /**
     * Feeds answer bytes as they arrive; returns the text of the chunks they completed.
     * Throws when the stream fails its integrity check; nothing after that may be used.
     */
    push(chunk: Uint8Array | number[]): string[];
}

/**
 * Verifies a bundle as the client library does before sealing to it: `{ accepted,
 * verdict, claims, hpkePublicKey, claimsDigest, simulated }`. `nonceHex`: the challenge
 * the page made (the claims then at most 300 s old), or empty/null for the enclave's
 * base bundle. `now`: RFC 3339, or `Date.now()`.
 */
export function attest(json: string | Uint8Array, policy: string, nonceHex?: string | null, now?: string | null): Attestation;

/**
 * Verifies a silk evidence bundle (`GET /v1/attestation`) and returns the verdict JSON
 * `silk verify --json` prints for it.
 *
 * `json`: the bundle, as a string or bytes. `opts`: `{ now?, source?, nonce?: hex (the
 * challenge its claims must carry), maxAgeSecs?: number, collateral?: {...} }`.
 */
export function verifyBundle(json: string | Uint8Array, policy: string, opts: BundleOptions): string;

/**
 * Verifies evidence (an SNP report, a DCAP quote, NVIDIA GPU evidence or a silk bundle;
 * binary or hex text) and returns the verdict JSON `silk verify --json` prints for it.
 *
 * `opts`: `{ policy: string (TOML), now?: string (RFC 3339), format?: 'snp'|'tdx'|'gpu'|
 * 'bundle', source?: string, collateral?: {...} }`. Throws an `Error` when the inputs
 * cannot be used (the CLI's exit status 2); a refused verdict is not an error.
 */
export function verifyEvidence(bytes: Uint8Array | number[], opts: VerifyOptions): string;

/**
 * The package's version, as `silk-verifier-wasm X.Y.Z`.
 */
export function version(): string;

export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

export interface InitOutput {
    readonly memory: WebAssembly.Memory;
    readonly __wbg_sealedrequest_free: (a: number, b: number) => void;
    readonly attest: (a: any, b: number, c: number, d: number, e: number, f: number, g: number) => [number, number, number];
    readonly sealedrequest_bytes: (a: number) => [number, number];
    readonly sealedrequest_finish: (a: number) => [number, number];
    readonly sealedrequest_finished: (a: number) => number;
    readonly sealedrequest_new: (a: number, b: number, c: number, d: number, e: number, f: number) => [number, number, number];
    readonly sealedrequest_push: (a: number, b: number, c: number) => [number, number, number];
    readonly verifyBundle: (a: any, b: number, c: number, d: any) => [number, number, number, number];
    readonly verifyEvidence: (a: number, b: number, c: any) => [number, number, number, number];
    readonly version: () => [number, number];
    readonly ring_core_0_17_14__bn_mul_mont: (a: number, b: number, c: number, d: number, e: number, f: number) => void;
    readonly __wbindgen_malloc: (a: number, b: number) => number;
    readonly __wbindgen_realloc: (a: number, b: number, c: number, d: number) => number;
    readonly __wbindgen_free: (a: number, b: number, c: number) => void;
    readonly __wbindgen_exn_store: (a: number) => void;
    readonly __externref_table_alloc: () => number;
    readonly __wbindgen_externrefs: WebAssembly.Table;
    readonly __externref_table_dealloc: (a: number) => void;
    readonly __wbindgen_start: () => void;
}

export type SyncInitInput = BufferSource | WebAssembly.Module;

/**
 * Instantiates the given `module`, which can either be bytes or
 * a precompiled `WebAssembly.Module`.
 *
 * @param {{ module: SyncInitInput }} module - Passing `SyncInitInput` directly is deprecated.
 *
 * @returns {InitOutput}
 */
export function initSync(module: { module: SyncInitInput } | SyncInitInput): InitOutput;

/**
 * If `module_or_path` is {RequestInfo} or {URL}, makes a request and
 * for everything else, calls `WebAssembly.instantiate` directly.
 *
 * @param {{ module_or_path: InitInput | Promise<InitInput> }} module_or_path - Passing `InitInput` directly is deprecated.
 *
 * @returns {Promise<InitOutput>}
 */
export default function __wbg_init (module_or_path?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>): Promise<InitOutput>;
