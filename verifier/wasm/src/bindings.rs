//! The JS surface (wasm32 only): thin wrappers that read JS values, call the crate's Rust
//! functions and throw `Error(message)` where those return an error.

use wasm_bindgen::prelude::*;

use crate::js;
use crate::session::{self, Sealed};
use zeroize::Zeroizing;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
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
"#;

fn thrown(message: String) -> JsError {
    JsError::new(&message)
}

fn bundle_bytes(json: &JsValue) -> Result<Vec<u8>, JsError> {
    js::bytes_or_string(json, "json")
        .and_then(|b| b.ok_or_else(|| "json: the bundle was not given".to_owned()))
        .map_err(thrown)
}

/// The package's version, as `silk-verifier-wasm X.Y.Z`.
#[wasm_bindgen]
pub fn version() -> String {
    crate::version()
}

/// Verifies evidence (an SNP report, a DCAP quote, NVIDIA GPU evidence or a silk bundle;
/// binary or hex text) and returns the verdict JSON `silk verify --json` prints for it.
///
/// `opts`: `{ policy: string (TOML), now?: string (RFC 3339), format?: 'snp'|'tdx'|'gpu'|
/// 'bundle', source?: string, collateral?: {...} }`. Throws an `Error` when the inputs
/// cannot be used (the CLI's exit status 2); a refused verdict is not an error.
#[wasm_bindgen(js_name = verifyEvidence)]
pub fn verify_evidence(
    bytes: &[u8],
    #[wasm_bindgen(unchecked_param_type = "VerifyOptions")] opts: JsValue,
) -> Result<String, JsError> {
    let request = js::evidence_request(&opts).map_err(thrown)?;
    request.verdict_json(bytes, js::host_now).map_err(thrown)
}

/// Verifies a silk evidence bundle (`GET /v1/attestation`) and returns the verdict JSON
/// `silk verify --json` prints for it.
///
/// `json`: the bundle, as a string or bytes. `opts`: `{ now?, source?, nonce?: hex (the
/// challenge its claims must carry), maxAgeSecs?: number, collateral?: {...} }`.
#[wasm_bindgen(js_name = verifyBundle)]
pub fn verify_bundle(
    #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] json: JsValue,
    policy: String,
    #[wasm_bindgen(unchecked_param_type = "BundleOptions")] opts: JsValue,
) -> Result<String, JsError> {
    let bytes = bundle_bytes(&json)?;
    let request = js::bundle_request(policy, &opts).map_err(thrown)?;
    request.verdict_json(&bytes, js::host_now).map_err(thrown)
}

/// Verifies a bundle as the client library does before sealing to it: `{ accepted,
/// verdict, claims, hpkePublicKey, claimsDigest, simulated }`. `nonceHex`: the challenge
/// the page made (the claims then at most 300 s old), or empty/null for the enclave's
/// base bundle. `now`: RFC 3339, or `Date.now()`.
#[wasm_bindgen(unchecked_return_type = "Attestation")]
pub fn attest(
    #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] json: JsValue,
    policy: String,
    #[wasm_bindgen(js_name = nonceHex)] nonce_hex: Option<String>,
    now: Option<String>,
) -> Result<JsValue, JsError> {
    let bytes = bundle_bytes(&json)?;
    let text = session::attest_json(&bytes, policy, nonce_hex.as_deref(), now, js::host_now)
        .map_err(thrown)?;
    js_sys::JSON::parse(&text).map_err(|_| JsError::new("attest: internal JSON error"))
}

/// A request sealed (HPKE, RFC 9180) to an attested enclave's key and bound to the digest
/// of the claims that were verified; then the opener of its answer's stream.
#[wasm_bindgen]
pub struct SealedRequest(Sealed);

#[wasm_bindgen]
impl SealedRequest {
    /// Seals `body` to `hpkePublicKeyHex`, bound to `claimsDigestHex` (`attest` gives both).
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = hpkePublicKeyHex)] hpke_public_key_hex: &str,
        #[wasm_bindgen(js_name = claimsDigestHex)] claims_digest_hex: &str,
        body: Vec<u8>,
    ) -> Result<SealedRequest, JsError> {
        // Owned, so that this copy of the prompt in the module's memory is wiped once it
        // is sealed (a borrowed slice would be freed as it is).
        let body = Zeroizing::new(body);
        Sealed::seal(hpke_public_key_hex, claims_digest_hex, &body)
            .map(SealedRequest)
            .map_err(thrown)
    }

    /// The sealed request, to POST to `/v1/sealed`.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.wire().to_vec()
    }

    /// Feeds answer bytes as they arrive; returns the text of the chunks they completed.
    /// Throws when the stream fails its integrity check; nothing after that may be used.
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn push(&mut self, chunk: &[u8]) -> Result<js_sys::Array, JsError> {
        let pieces = self.0.open(chunk).map_err(thrown)?;
        // Each piece is copied into a JS string here and wiped on the Rust side as it drops.
        Ok(pieces
            .iter()
            .map(|piece| JsValue::from_str(piece))
            .collect())
    }

    /// Whether the final chunk has arrived.
    pub fn finished(&self) -> bool {
        self.0.is_finished()
    }

    /// Call when the transport ends: throws unless the final chunk arrived and nothing
    /// followed it.
    pub fn finish(&self) -> Result<(), JsError> {
        self.0.finish().map_err(thrown)
    }
}
