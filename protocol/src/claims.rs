//! The claims document an enclave attests, and its one canonical byte encoding.
//!
//! The hardware signs 64 bytes of REPORT_DATA; silk puts SHA-512 of the canonical claims
//! there. Canonical means exactly one encoding per document: fields in a fixed order, each
//! present once, with fixed or length-prefixed sizes, nothing unknown and nothing after the
//! end. A decoder that accepted two spellings of the same claims would let a relay swap one
//! for the other under the same signature, so decoding is strict and re-encoding a decoded
//! document gives back the same bytes. The format is written by hand (about a hundred
//! lines) because a general serialiser's "canonical" mode would itself need verifying;
//! `docs/protocol.md` specifies it byte by byte.

use sha2::{Digest, Sha256, Sha512};

/// Magic and version at the start of every encoding.
pub const MAGIC: &[u8; 8] = b"SILKCLM3";

/// Prefix of the runtime document ([`Claims::runtime_document`]).
pub const RUNTIME_MAGIC: &[u8; 8] = b"SILKRUN1";

/// Largest length-prefixed field accepted (model identity, version strings, nonces).
pub use crate::canon::MAX_FIELD;
use crate::canon::{CanonError, Reader};

impl From<CanonError> for ClaimsError {
    fn from(e: CanonError) -> Self {
        match e {
            CanonError::Truncated(field) => ClaimsError::Truncated { field },
            CanonError::TooLong(field, len) => ClaimsError::TooLong { field, len },
            CanonError::NotUtf8(field) => ClaimsError::NotUtf8 { field },
            CanonError::Trailing(n) => ClaimsError::TrailingBytes(n),
        }
    }
}

/// What the enclave attests about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The enclave's HPKE public key (X25519) for sealed requests.
    pub hpke_public_key: [u8; 32],
    /// SHA-256 of the SubjectPublicKeyInfo of the enclave's TLS certificate key.
    pub tls_spki_sha256: [u8; 32],
    /// SHA-256 of the image manifest the enclave booted from.
    pub image_digest: [u8; 32],
    /// The model's identity, e.g. `verity:<root hash hex>` or `sha256:<file digest hex>`.
    pub model: String,
    /// The nonce the GPU evidence was made over (empty when there is no GPU).
    pub gpu_nonce: Vec<u8>,
    /// The client's challenge when the evidence was made on request (empty otherwise).
    pub challenge: Vec<u8>,
    /// When the claims were made, seconds since the Unix epoch.
    pub created_at: u64,
    /// The enclave software's version.
    pub software_version: String,
    /// The enclave's receipt key (Ed25519, RFC 8032): it signs offers and usage receipts,
    /// so a receipt proves that this attested enclave served the request.
    pub receipt_public_key: [u8; 32],
    /// Where the worker's owner is paid (a TON address as text; empty when unpaid). Bound
    /// here so that a receipt also proves whom to pay.
    pub payout_address: String,
    /// The evidence provider the enclave was started with (`configfs-tsm`, `sev-guest`,
    /// `tdx-guest`, `simulated`).
    pub evidence_provider: String,
    /// SHA-256 of the policy the enclave checks its own GPUs against; empty when it
    /// checks none. Exactly 0 or 32 bytes.
    pub gpu_policy_sha256: Vec<u8>,
}

/// Why bytes are not a canonical claims encoding.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClaimsError {
    /// The magic/version prefix is wrong.
    #[error("claims do not start with {:?} (unknown format or version)", std::str::from_utf8(MAGIC).unwrap_or("?"))]
    Magic,
    /// The input ended inside `field`.
    #[error("claims end inside field `{field}`")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A length prefix is over [`MAX_FIELD`].
    #[error("claims field `{field}` is {len} bytes, more than {MAX_FIELD}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its declared length.
        len: usize,
    },
    /// A text field is not UTF-8.
    #[error("claims field `{field}` is not UTF-8")]
    NotUtf8 {
        /// The field.
        field: &'static str,
    },
    /// Bytes follow the last field.
    #[error("{0} bytes follow the end of the claims")]
    TrailingBytes(usize),
    /// A digest field of a length its type cannot have.
    #[error("claims field `{field}` is {len} bytes; it must be empty or 32")]
    Length {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
}

impl Claims {
    /// The canonical encoding; fails only when a field is longer than [`MAX_FIELD`].
    pub fn encode(&self) -> Result<Vec<u8>, ClaimsError> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.hpke_public_key);
        out.extend_from_slice(&self.tls_spki_sha256);
        out.extend_from_slice(&self.image_digest);
        put_var(&mut out, self.model.as_bytes(), "model")?;
        put_var(&mut out, &self.gpu_nonce, "gpu_nonce")?;
        put_var(&mut out, &self.challenge, "challenge")?;
        out.extend_from_slice(&self.created_at.to_be_bytes());
        put_var(
            &mut out,
            self.software_version.as_bytes(),
            "software_version",
        )?;
        out.extend_from_slice(&self.receipt_public_key);
        put_var(&mut out, self.payout_address.as_bytes(), "payout_address")?;
        put_var(
            &mut out,
            self.evidence_provider.as_bytes(),
            "evidence_provider",
        )?;
        digest_len(&self.gpu_policy_sha256, "gpu_policy_sha256")?;
        put_var(&mut out, &self.gpu_policy_sha256, "gpu_policy_sha256")?;
        Ok(out)
    }

    /// Decodes a canonical encoding; anything else is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, ClaimsError> {
        let mut r = Reader::new(bytes, 0);
        if r.take(MAGIC.len(), "magic")? != MAGIC {
            return Err(ClaimsError::Magic);
        }
        let claims = Claims {
            hpke_public_key: r.array("hpke_public_key")?,
            tls_spki_sha256: r.array("tls_spki_sha256")?,
            image_digest: r.array("image_digest")?,
            model: r.text("model")?,
            gpu_nonce: r.var("gpu_nonce")?.to_vec(),
            challenge: r.var("challenge")?.to_vec(),
            created_at: r.u64("created_at")?,
            software_version: r.text("software_version")?,
            receipt_public_key: r.array("receipt_public_key")?,
            payout_address: r.text("payout_address")?,
            evidence_provider: r.text("evidence_provider")?,
            gpu_policy_sha256: r.var("gpu_policy_sha256")?.to_vec(),
        };
        r.end()?;
        digest_len(&claims.gpu_policy_sha256, "gpu_policy_sha256")?;
        Ok(claims)
    }

    /// SHA-512 of the canonical encoding: the REPORT_DATA the hardware report carries.
    pub fn report_data(&self) -> Result<[u8; 64], ClaimsError> {
        Ok(Sha512::digest(self.encode()?).into())
    }

    /// What the enclave says it was started with, for the policy's `[runtime]` pins.
    pub fn runtime_facts(&self) -> silk_attestation::policy::RuntimeFacts<'_> {
        silk_attestation::policy::RuntimeFacts {
            model: &self.model,
            evidence_provider: &self.evidence_provider,
            gpu_policy: (!self.gpu_policy_sha256.is_empty()).then_some(&self.gpu_policy_sha256[..]),
            payout_address: &self.payout_address,
        }
    }

    /// The start options that change what the enclave does, as one document
    /// ([`runtime_document`]).
    pub fn runtime_document(&self) -> Result<Vec<u8>, ClaimsError> {
        runtime_document(
            &self.model,
            &self.evidence_provider,
            &self.gpu_policy_sha256,
            &self.payout_address,
        )
    }

    /// SHA-256 of the canonical encoding: the short digest sealed requests are bound to.
    pub fn digest(&self) -> Result<[u8; 32], ClaimsError> {
        Ok(Sha256::digest(self.encode()?).into())
    }
}

/// The start options that change what an enclave does, as one canonical document:
/// [`RUNTIME_MAGIC`], then the model, evidence provider, GPU policy digest and payout
/// address, each length-prefixed as in the claims. A TDX enclave logs it and extends its
/// SHA-384 into RTMR3 at start, where the kernel allows it.
pub fn runtime_document(
    model: &str,
    evidence_provider: &str,
    gpu_policy_sha256: &[u8],
    payout_address: &str,
) -> Result<Vec<u8>, ClaimsError> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(RUNTIME_MAGIC);
    put_var(&mut out, model.as_bytes(), "model")?;
    put_var(&mut out, evidence_provider.as_bytes(), "evidence_provider")?;
    put_var(&mut out, gpu_policy_sha256, "gpu_policy_sha256")?;
    put_var(&mut out, payout_address.as_bytes(), "payout_address")?;
    Ok(out)
}

/// An optional SHA-256 field: empty, or 32 bytes; the same rule for encoding and decoding.
fn digest_len(bytes: &[u8], field: &'static str) -> Result<(), ClaimsError> {
    match bytes.len() {
        0 | 32 => Ok(()),
        len => Err(ClaimsError::Length { field, len }),
    }
}

/// Length-prefixed field: u16 big-endian length, then the bytes.
fn put_var(out: &mut Vec<u8>, bytes: &[u8], field: &'static str) -> Result<(), ClaimsError> {
    Ok(crate::canon::put_var(out, bytes, field)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Claims {
        Claims {
            hpke_public_key: [1; 32],
            tls_spki_sha256: [2; 32],
            image_digest: [3; 32],
            model: "sha256:abcd".into(),
            gpu_nonce: vec![4; 32],
            challenge: vec![5; 16],
            created_at: 1_764_000_000,
            software_version: "silk 0.1.0".into(),
            receipt_public_key: [6; 32],
            payout_address: "EQpayout".into(),
            evidence_provider: "tdx-guest".into(),
            gpu_policy_sha256: vec![7; 32],
        }
    }

    #[test]
    fn round_trips_to_the_same_bytes() {
        let c = sample();
        let bytes = c.encode().unwrap();
        assert_eq!(Claims::decode(&bytes).unwrap(), c);
        assert_eq!(Claims::decode(&bytes).unwrap().encode().unwrap(), bytes);
    }

    #[test]
    fn layout_is_fixed() {
        let bytes = sample().encode().unwrap();
        assert_eq!(&bytes[..8], MAGIC);
        assert_eq!(&bytes[8..40], &[1; 32]);
        assert_eq!(&bytes[104..106], &[0, 11]); // model length, big-endian
        assert_eq!(&bytes[106..117], b"sha256:abcd");
        // gpu_nonce (2+32), challenge (2+16), created_at (8), software_version (2+10)
        let rk = 117 + 34 + 18 + 8 + 12;
        assert_eq!(&bytes[rk..rk + 32], &[6; 32]);
        assert_eq!(&bytes[rk + 32..rk + 34], &[0, 8]);
        assert_eq!(&bytes[rk + 34..rk + 42], b"EQpayout");
        let ep = rk + 42;
        assert_eq!(&bytes[ep..ep + 2], &[0, 9]);
        assert_eq!(&bytes[ep + 2..ep + 11], b"tdx-guest");
        assert_eq!(&bytes[ep + 11..ep + 13], &[0, 32]);
        assert_eq!(&bytes[ep + 13..], &[7; 32]);
    }

    #[test]
    fn a_gpu_policy_digest_is_empty_or_32_bytes() {
        let mut c = sample();
        c.gpu_policy_sha256 = Vec::new();
        assert_eq!(Claims::decode(&c.encode().unwrap()).unwrap(), c);
        c.gpu_policy_sha256 = vec![1; 31];
        let want = ClaimsError::Length {
            field: "gpu_policy_sha256",
            len: 31,
        };
        assert_eq!(c.encode(), Err(want.clone()));
        let mut bytes = sample().encode().unwrap();
        let n = bytes.len();
        bytes[n - 33] = 31;
        bytes.pop();
        assert_eq!(Claims::decode(&bytes), Err(want));
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        let bytes = sample().encode().unwrap();
        for n in 0..bytes.len() {
            assert!(
                Claims::decode(&bytes[..n]).is_err(),
                "prefix of {n} bytes accepted"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Claims::decode(&longer), Err(ClaimsError::TrailingBytes(1)));
    }

    #[test]
    fn every_byte_change_changes_the_report_data_or_fails() {
        let c = sample();
        let bytes = c.encode().unwrap();
        for i in 0..bytes.len() {
            let mut m = bytes.clone();
            m[i] ^= 0x01;
            if let Ok(d) = Claims::decode(&m) {
                assert_ne!(
                    d.report_data().unwrap(),
                    c.report_data().unwrap(),
                    "byte {i}"
                );
            }
        }
    }

    #[test]
    fn bad_magic_utf8_and_lengths_are_named() {
        let mut b = sample().encode().unwrap();
        b[7] = b'9';
        assert_eq!(Claims::decode(&b), Err(ClaimsError::Magic));
        let mut b = sample().encode().unwrap();
        b[106] = 0xff;
        assert_eq!(
            Claims::decode(&b),
            Err(ClaimsError::NotUtf8 { field: "model" })
        );
        let mut b = sample().encode().unwrap();
        b[104] = 0xff;
        assert!(matches!(
            Claims::decode(&b),
            Err(ClaimsError::TooLong { field: "model", .. })
        ));
    }

    #[test]
    fn over_long_fields_do_not_encode() {
        let mut c = sample();
        c.model = "m".repeat(MAX_FIELD + 1);
        assert!(matches!(
            c.encode(),
            Err(ClaimsError::TooLong { field: "model", .. })
        ));
    }
}
