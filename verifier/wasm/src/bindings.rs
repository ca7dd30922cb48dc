//! The JS surface (wasm32 only): thin wrappers that read JS values, call the crate's Rust
//! functions and throw `Error(message)` where those return an error.

use wasm_bindgen::prelude::*;

use crate::js;
use crate::session::{self, Sealed};

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
pub fn verify_evidence(bytes: &[u8], opts: JsValue) -> Result<String, JsError> {
    let request = js::evidence_request(&opts).map_err(thrown)?;
    request.verdict_json(bytes, js::host_now).map_err(thrown)
}

/// Verifies a silk evidence bundle (`GET /v1/attestation`) and returns the verdict JSON
/// `silk verify --json` prints for it.
///
/// `json`: the bundle, as a string or bytes. `opts`: `{ now?, source?, nonce?: hex (the
/// challenge its claims must carry), maxAgeSecs?: number, collateral?: {...} }`.
#[wasm_bindgen(js_name = verifyBundle)]
pub fn verify_bundle(json: JsValue, policy: String, opts: JsValue) -> Result<String, JsError> {
    let bytes = bundle_bytes(&json)?;
    let request = js::bundle_request(policy, &opts).map_err(thrown)?;
    request.verdict_json(&bytes, js::host_now).map_err(thrown)
}

/// Verifies a bundle as the client library does before sealing to it: `{ accepted,
/// verdict, claims, hpkePublicKey, claimsDigest, simulated }`. `nonceHex`: the challenge
/// the page made (the claims then at most 300 s old), or empty/null for the enclave's
/// base bundle. `now`: RFC 3339, or `Date.now()`.
#[wasm_bindgen]
pub fn attest(
    json: JsValue,
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
        body: &[u8],
    ) -> Result<SealedRequest, JsError> {
        Sealed::seal(hpke_public_key_hex, claims_digest_hex, body)
            .map(SealedRequest)
            .map_err(thrown)
    }

    /// The sealed request, to POST to `/v1/sealed`.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.wire().to_vec()
    }

    /// Feeds answer bytes as they arrive; returns the text of the chunks they completed.
    /// Throws when the stream fails its integrity check; nothing after that may be used.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, JsError> {
        self.0.open(chunk).map_err(thrown)
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
