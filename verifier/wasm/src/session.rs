//! What the `/verify` page does after verifying: attest an enclave against a challenge
//! made in the browser, seal a request to the key its claims carry, and open the answer.

use silk_protocol::seal::os_rng;
use silk_protocol::{seal_request, Claims, StreamOpener};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::options::{Request, DEFAULT_MAX_AGE_SECS};

/// The name the evidence goes by in [`attest`]'s verdict.
pub const ATTEST_SOURCE: &str = "/v1/attestation";

/// Verifies an evidence bundle as the client library does before sealing to it, and
/// returns JS `attest`'s result as JSON text: `{ accepted, verdict, claims,
/// hpkePublicKey, claimsDigest, simulated }`, the verdict being `silk verify --json`'s
/// object (keys in the same order).
///
/// `nonce_hex`: the challenge the bundle must carry (made by the page), the claims then
/// at most [`DEFAULT_MAX_AGE_SECS`] old; empty or `None` for a bundle fetched without one
/// (the enclave's base claims, whose digest a sealed request is bound to). `now`: RFC
/// 3339, or `clock()` when absent.
pub fn attest_json(
    bundle: &[u8],
    policy: String,
    nonce_hex: Option<&str>,
    now: Option<String>,
    clock: impl FnOnce() -> OffsetDateTime,
) -> Result<String, String> {
    let challenge = nonce_hex.map(str::trim).filter(|n| !n.is_empty());
    let request = Request {
        policy,
        now,
        format: Some("bundle".into()),
        source: Some(ATTEST_SOURCE.into()),
        challenge: challenge.map(str::to_owned),
        max_age_secs: challenge.map(|_| DEFAULT_MAX_AGE_SECS),
        ..Request::default()
    };
    let now = request.time(clock)?;
    let inputs = request.inputs(now)?;
    let outcome =
        silk_verifier::verify(bundle, request.format()?, &inputs).map_err(|e| e.to_string())?;
    let verdict = silk_verifier::verdict_json(&outcome.verdict, outcome.kind, ATTEST_SOURCE, now);
    let claims = outcome.claims.as_ref();
    let digest = claims
        .map(|c| c.digest().map(hex::encode))
        .transpose()
        .map_err(|e| format!("claims: {e}"))?;
    let field = |v: Option<String>| serde_json::to_string(&v).unwrap_or_else(|_| "null".into());
    Ok(format!(
        "{{\"accepted\":{},\"verdict\":{},\"claims\":{},\"hpkePublicKey\":{},\
         \"claimsDigest\":{},\"simulated\":{}}}",
        outcome.verdict.accepted(),
        verdict.trim_end(),
        claims.map_or_else(|| "null".into(), claims_json),
        field(claims.map(|c| hex::encode(c.hpke_public_key))),
        field(digest),
        outcome.verdict.simulated,
    ))
}

/// The claims as a JSON object: byte fields in hex, names as in `docs/protocol.md`.
fn claims_json(c: &Claims) -> String {
    serde_json::json!({
        "hpke_public_key": hex::encode(c.hpke_public_key),
        "tls_spki_sha256": hex::encode(c.tls_spki_sha256),
        "image_digest": hex::encode(c.image_digest),
        "model": c.model,
        "gpu_nonce": hex::encode(&c.gpu_nonce),
        "challenge": hex::encode(&c.challenge),
        "created_at": c.created_at,
        "software_version": c.software_version,
        "receipt_public_key": hex::encode(c.receipt_public_key),
        "payout_address": c.payout_address,
        "evidence_provider": c.evidence_provider,
        "gpu_policy_sha256": hex::encode(&c.gpu_policy_sha256),
    })
    .to_string()
}

fn key32(hex_text: &str, what: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(hex_text.trim()).map_err(|e| format!("{what}: not hex: {e}"))?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("{what}: {} bytes, not 32", bytes.len()))
}

/// A request sealed (HPKE, RFC 9180) to an attested enclave's key and bound to the digest
/// of the claims that were verified; then the opener of its answer's stream. JS sees it as
/// `SealedRequest`.
pub struct Sealed {
    wire: Vec<u8>,
    opener: StreamOpener,
    /// Bytes of a UTF-8 character split between chunks, held until it completes.
    carry: Zeroizing<Vec<u8>>,
}

impl Sealed {
    /// Seals `body` to `hpke_public_key_hex` (the claims' `hpke_public_key`), bound to
    /// `claims_digest_hex` (SHA-256 of the claims' encoding; [`attest_json`] gives both).
    pub fn seal(
        hpke_public_key_hex: &str,
        claims_digest_hex: &str,
        body: &[u8],
    ) -> Result<Sealed, String> {
        let pk = key32(hpke_public_key_hex, "hpkePublicKeyHex")?;
        let digest = key32(claims_digest_hex, "claimsDigestHex")?;
        let (wire, opener) =
            seal_request(&pk, &digest, body, &mut os_rng()).map_err(|e| e.to_string())?;
        Ok(Sealed {
            wire,
            opener,
            carry: Zeroizing::new(Vec::new()),
        })
    }

    /// The sealed request's bytes.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// Opens `bytes` of the answer. Text split inside a UTF-8
    /// character is held until the rest arrives; at the end of the stream what is held
    /// is given out, invalid bytes replaced. The pieces are wiped when dropped: the
    /// answer is a secret of the page's.
    pub fn open(&mut self, bytes: &[u8]) -> Result<Vec<Zeroizing<String>>, String> {
        let pieces = self
            .opener
            .push(bytes)
            .map_err(|e| format!("sealed answer: {e}"))?;
        let mut out = Vec::new();
        for piece in pieces {
            self.carry.extend_from_slice(&piece);
            let valid = match std::str::from_utf8(&self.carry) {
                Ok(_) => self.carry.len(),
                // Incomplete at the end: hold the tail for the next piece.
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                // Not UTF-8 at all: give it out as best it reads.
                Err(_) => self.carry.len(),
            };
            let text = Zeroizing::new(String::from_utf8_lossy(&self.carry[..valid]).into_owned());
            self.carry.drain(..valid);
            if !text.is_empty() {
                out.push(text);
            }
        }
        if self.opener.is_finished() && !self.carry.is_empty() {
            out.push(Zeroizing::new(
                String::from_utf8_lossy(&self.carry).into_owned(),
            ));
            self.carry.clear();
        }
        Ok(out)
    }

    /// Whether the final chunk has arrived.
    pub fn is_finished(&self) -> bool {
        self.opener.is_finished()
    }

    /// At the end of the transport: an error unless the final chunk arrived and nothing
    /// followed it (an answer cut short is not a whole answer).
    pub fn finish(&self) -> Result<(), String> {
        self.opener
            .finish()
            .map_err(|e| format!("sealed answer: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use silk_protocol::{open_request, EnclaveKeys};

    /// Seal in "the browser", open in "the enclave", answer, and read the answer back:
    /// the round trip the page makes, without an enclave.
    #[test]
    fn seal_open_answer_round_trip() {
        let keys = EnclaveKeys::generate(&mut os_rng());
        let digest = [7u8; 32];
        let body = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
        let mut req = Sealed::seal(&hex::encode(keys.public_key()), &hex::encode(digest), body)
            .expect("sealed");
        assert!(
            !req.wire().windows(4).any(|w| w == b"user"),
            "plaintext leaked"
        );
        let (plain, mut sealer) = open_request(&keys, &digest, req.wire()).expect("opened");
        assert_eq!(plain.as_slice(), body);
        // "é" is split between two chunks; the opener holds its first byte.
        let a = sealer.seal(b"caf\xc3", false).expect("chunk");
        let b = sealer.seal(b"\xa9 ok", true).expect("chunk");
        let mut stream = [a, b].concat();
        let tail = stream.split_off(7);
        let mut text = req.open(&stream).expect("first bytes");
        assert!(!req.is_finished());
        text.extend(req.open(&tail).expect("the rest"));
        let text: Vec<&str> = text.iter().map(|t| t.as_str()).collect();
        assert_eq!(text, ["caf", "é ok"]);
        assert!(req.is_finished());
        assert!(req.finish().is_ok());
    }

    #[test]
    fn altered_answers_and_bad_keys_are_refused() {
        let keys = EnclaveKeys::generate(&mut os_rng());
        let digest = [1u8; 32];
        let mut req = Sealed::seal(&hex::encode(keys.public_key()), &hex::encode(digest), b"x")
            .expect("sealed");
        let (_, mut sealer) = open_request(&keys, &digest, req.wire()).expect("opened");
        let mut chunk = sealer.seal(b"answer", false).expect("chunk");
        let last = chunk.len() - 1;
        chunk[last] ^= 1;
        assert!(req.open(&chunk).unwrap_err().contains("sealed answer"));

        let mut other = Sealed::seal(&hex::encode(keys.public_key()), "01", b"x");
        assert!(other.as_mut().err().is_some_and(|e| e.contains("1 bytes")));
        other = Sealed::seal("zz", &hex::encode(digest), b"x");
        assert!(other.err().is_some_and(|e| e.contains("not hex")));
    }

    #[test]
    fn a_cut_answer_does_not_finish() {
        let keys = EnclaveKeys::generate(&mut os_rng());
        let digest = [2u8; 32];
        let mut req = Sealed::seal(&hex::encode(keys.public_key()), &hex::encode(digest), b"x")
            .expect("sealed");
        let (_, mut sealer) = open_request(&keys, &digest, req.wire()).expect("opened");
        let chunk = sealer.seal(b"half an answer", false).expect("chunk");
        let text = req.open(&chunk).expect("opened");
        assert_eq!(
            text.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            ["half an answer"]
        );
        assert!(req.finish().is_err());
    }

    #[test]
    fn attest_refuses_what_is_not_a_bundle() {
        let e = attest_json(b"{}", String::new(), None, None, || {
            OffsetDateTime::UNIX_EPOCH
        })
        .unwrap_err();
        assert!(e.contains("bundle"), "{e}");
    }
}
