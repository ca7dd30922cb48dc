//! Offers, usage receipts and acknowledgements: what a worker charges, what it served, and
//! the client's word that it got it.
//!
//! All three are canonical byte strings (fixed order, fixed or length-prefixed fields,
//! nothing after the end, like the claims) followed by an Ed25519 signature (RFC 8032):
//! - an [`Offer`] (model, prices, payout address, expiry) is signed by the enclave's
//!   receipt key, whose public half is in the attested claims, so prices change without
//!   new evidence while a client checks offer → receipt key → claims → hardware;
//! - a [`Receipt`] is signed by the same key at the end of every sealed answer: the
//!   request's digest, the token counts and the offer in force, so that nobody on the path
//!   can make one up or inflate it;
//! - an [`Ack`] is signed by the client's own key over a receipt it verified.
//!
//! Receipt + acknowledgement is what payment channels settle. Every failed check is
//! named `receipt.*`, `offer.*` or `ack.*`. `docs/protocol.md` gives the byte layouts.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::canon;
use sha2::{Digest, Sha256};
use silk_attestation::checks::{ack, offer, receipt, CheckId};

/// Magic and version of an offer's body.
pub const OFFER_MAGIC: &[u8; 8] = b"SILKOFR1";
/// Magic and version of a receipt's body.
pub const RECEIPT_MAGIC: &[u8; 8] = b"SILKRCP1";
/// Magic and version of an acknowledgement's body.
pub const ACK_MAGIC: &[u8; 8] = b"SILKACK1";
/// Bytes of an Ed25519 signature.
pub const SIGNATURE: usize = 64;
/// The longest signed receipt or offer accepted (bounds what a relay can make anyone hold).
pub const MAX_SIGNED: usize = 1024;

/// A failed check on an offer, a receipt or an acknowledgement.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    /// The sealed answer ended without a receipt.
    #[error("{}: the answer ended without a usage receipt", receipt::MISSING)]
    Missing,
    /// Not a canonical encoding.
    #[error("{check}: {detail}")]
    Format {
        /// `receipt.format`, `offer.format` or `ack.format`.
        check: &'static CheckId,
        /// What is wrong.
        detail: String,
    },
    /// The signature does not verify under the key it must come from.
    #[error("{check}: the signature does not verify under the {key}")]
    Signature {
        /// `receipt.signature`, `offer.signature` or `ack.signature`.
        check: &'static CheckId,
        /// Whose key.
        key: &'static str,
    },
    /// A field differs from what the verifier knows.
    #[error("{check}: expected {expected}, found {found}")]
    Mismatch {
        /// The check, e.g. `receipt.request_digest`, `offer.payout`.
        check: &'static CheckId,
        /// What it should be.
        expected: String,
        /// What it is.
        found: String,
    },
    /// The offer's expiry has passed.
    #[error(
        "{}: the offer expired at {expires_at}, it is now {now} (Unix seconds)",
        offer::EXPIRED
    )]
    Expired {
        /// Its expiry.
        expires_at: u64,
        /// The verifier's time.
        now: u64,
    },
    /// The same receipt (or another for the same request) was seen before.
    #[error("{check}: {0}", check = receipt::DUPLICATE)]
    Duplicate(String),
}

impl ReceiptError {
    /// The name of the failed check.
    pub fn check(&self) -> &'static str {
        match self {
            ReceiptError::Missing => receipt::MISSING.name,
            ReceiptError::Format { check, .. }
            | ReceiptError::Signature { check, .. }
            | ReceiptError::Mismatch { check, .. } => check.name,
            ReceiptError::Expired { .. } => offer::EXPIRED.name,
            ReceiptError::Duplicate(_) => receipt::DUPLICATE.name,
        }
    }

    fn mismatch(check: &'static CheckId, expected: impl ToString, found: impl ToString) -> Self {
        ReceiptError::Mismatch {
            check,
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }
}

/// An Ed25519 signing key that is wiped when dropped (ed25519-dalek's `zeroize`): the
/// enclave's receipt key, or a client's acknowledgement key.
pub struct SigningKeyPair(SigningKey);

impl SigningKeyPair {
    /// A fresh key from the operating system's generator.
    pub fn generate() -> Self {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rand_core::TryRngCore::try_fill_bytes(&mut rand_core::OsRng, seed.as_mut_slice())
            .unwrap_or_else(|e| panic!("the operating system's random generator failed: {e}"));
        Self(SigningKey::from_bytes(&seed))
    }

    /// The key from its 32-byte seed (a client key read from its file).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The seed, for storing a client key (wiped when the returned value drops).
    pub fn seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    fn sign(&self, body: &[u8]) -> [u8; SIGNATURE] {
        self.0.sign(body).to_bytes()
    }
}

fn verify_sig(
    key: &[u8; 32],
    body: &[u8],
    sig: &[u8],
    check: &'static CheckId,
    whose: &'static str,
) -> Result<(), ReceiptError> {
    let bad = || ReceiptError::Signature { check, key: whose };
    let key = VerifyingKey::from_bytes(key).map_err(|_| bad())?;
    let sig = Signature::from_slice(sig).map_err(|_| bad())?;
    key.verify_strict(body, &sig).map_err(|_| bad())
}

/// Splits signed bytes into body and signature, within [`MAX_SIGNED`].
fn split_signed<'a>(
    bytes: &'a [u8],
    check: &'static CheckId,
) -> Result<(&'a [u8], &'a [u8]), ReceiptError> {
    if bytes.len() > MAX_SIGNED || bytes.len() < 8 + SIGNATURE {
        return Err(ReceiptError::Format {
            check,
            detail: format!(
                "{} bytes, not between {} and {MAX_SIGNED}",
                bytes.len(),
                8 + SIGNATURE
            ),
        });
    }
    Ok(bytes.split_at(bytes.len() - SIGNATURE))
}

/// What a worker charges for a model, and where it is paid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The worker: SHA-256 of its base claims.
    pub worker_id: [u8; 32],
    /// The served model's name.
    pub model: String,
    /// Price of a million prompt tokens, in nanotons.
    pub price_prompt: u64,
    /// Price of a million completion tokens, in nanotons.
    pub price_completion: u64,
    /// Where the owner is paid (equal to the claims' payout address).
    pub payout_address: String,
    /// After this (Unix seconds) the offer no longer holds.
    pub expires_at: u64,
}

impl Offer {
    /// The canonical body.
    pub fn encode(&self) -> Result<Vec<u8>, ReceiptError> {
        let mut w = Writer::new(OFFER_MAGIC, &offer::FORMAT);
        w.bytes(&self.worker_id);
        w.text(&self.model)?;
        w.u64(self.price_prompt);
        w.u64(self.price_completion);
        w.text(&self.payout_address)?;
        w.u64(self.expires_at);
        Ok(w.out)
    }

    /// Decodes a canonical body.
    pub fn decode(body: &[u8]) -> Result<Self, ReceiptError> {
        let mut r = Reader::new(body, OFFER_MAGIC, &offer::FORMAT)?;
        let offer = Offer {
            worker_id: r.array("worker_id")?,
            model: r.text("model")?,
            price_prompt: r.u64("price_prompt")?,
            price_completion: r.u64("price_completion")?,
            payout_address: r.text("payout_address")?,
            expires_at: r.u64("expires_at")?,
        };
        r.end()?;
        Ok(offer)
    }

    /// Signs the offer with the enclave's receipt key.
    pub fn sign(&self, key: &SigningKeyPair) -> Result<SignedOffer, ReceiptError> {
        let body = self.encode()?;
        let signature = key.sign(&body);
        Ok(SignedOffer {
            body: crate::bundle::Bytes(body),
            signature: crate::bundle::Bytes(signature.to_vec()),
        })
    }

    /// What `prompt` and `completion` tokens cost under this offer, in nanotons (rounded
    /// up, so that a request is never free by rounding).
    pub fn cost(&self, prompt: u32, completion: u32) -> u128 {
        let total = u128::from(prompt) * u128::from(self.price_prompt)
            + u128::from(completion) * u128::from(self.price_completion);
        total.div_ceil(1_000_000)
    }
}

/// An offer with its signature, as routers list it (base64 in JSON).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedOffer {
    /// The canonical [`Offer`] body.
    pub body: crate::bundle::Bytes,
    /// Ed25519 signature by the receipt key.
    pub signature: crate::bundle::Bytes,
}

impl SignedOffer {
    /// SHA-256 of the body: what receipts name.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(&self.body.0).into()
    }

    /// Verifies the offer against the claims it must belong to (whose digest is
    /// `worker_id`) at `now` (Unix seconds): signature by the claims' receipt key, same
    /// worker, same payout address, not expired.
    pub fn verify(
        &self,
        claims: &crate::Claims,
        worker_id: &[u8; 32],
        now: u64,
    ) -> Result<Offer, ReceiptError> {
        if self.body.0.len() > MAX_SIGNED {
            return Err(ReceiptError::Format {
                check: &offer::FORMAT,
                detail: format!("{} bytes, more than {MAX_SIGNED}", self.body.0.len()),
            });
        }
        verify_sig(
            &claims.receipt_public_key,
            &self.body.0,
            &self.signature.0,
            &offer::SIGNATURE,
            "receipt key in the worker's claims",
        )?;
        let offer = Offer::decode(&self.body.0)?;
        if &offer.worker_id != worker_id {
            return Err(ReceiptError::mismatch(
                &offer::WORKER,
                hex::encode(worker_id),
                hex::encode(offer.worker_id),
            ));
        }
        if offer.payout_address != claims.payout_address {
            return Err(ReceiptError::mismatch(
                &offer::PAYOUT,
                &claims.payout_address,
                &offer.payout_address,
            ));
        }
        if offer.expires_at <= now {
            return Err(ReceiptError::Expired {
                expires_at: offer.expires_at,
                now,
            });
        }
        Ok(offer)
    }
}

/// What one sealed answer used, signed inside the enclave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The worker: SHA-256 of its base claims.
    pub worker_id: [u8; 32],
    /// SHA-256 of the exact sealed request bytes.
    pub request_digest: [u8; 32],
    /// The served model's name.
    pub model: String,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Completion tokens.
    pub completion_tokens: u32,
    /// SHA-256 of the offer body in force (all zero when the worker has no offer).
    pub offer_digest: [u8; 32],
    /// When the request was opened, Unix milliseconds.
    pub started_at_ms: u64,
    /// When the answer ended, Unix milliseconds.
    pub ended_at_ms: u64,
    /// This boot's receipt number, from 1, never repeated.
    pub counter: u64,
}

impl Receipt {
    /// The canonical body.
    pub fn encode(&self) -> Result<Vec<u8>, ReceiptError> {
        let mut w = Writer::new(RECEIPT_MAGIC, &receipt::FORMAT);
        w.bytes(&self.worker_id);
        w.bytes(&self.request_digest);
        w.text(&self.model)?;
        w.bytes(&self.prompt_tokens.to_be_bytes());
        w.bytes(&self.completion_tokens.to_be_bytes());
        w.bytes(&self.offer_digest);
        w.u64(self.started_at_ms);
        w.u64(self.ended_at_ms);
        w.u64(self.counter);
        Ok(w.out)
    }

    /// Decodes a canonical body.
    pub fn decode(body: &[u8]) -> Result<Self, ReceiptError> {
        let mut r = Reader::new(body, RECEIPT_MAGIC, &receipt::FORMAT)?;
        let receipt = Receipt {
            worker_id: r.array("worker_id")?,
            request_digest: r.array("request_digest")?,
            model: r.text("model")?,
            prompt_tokens: u32::from_be_bytes(r.array("prompt_tokens")?),
            completion_tokens: u32::from_be_bytes(r.array("completion_tokens")?),
            offer_digest: r.array("offer_digest")?,
            started_at_ms: r.u64("started_at_ms")?,
            ended_at_ms: r.u64("ended_at_ms")?,
            counter: r.u64("counter")?,
        };
        r.end()?;
        Ok(receipt)
    }

    /// Body followed by the receipt key's signature: the bytes that travel.
    pub fn sign(&self, key: &SigningKeyPair) -> Result<Vec<u8>, ReceiptError> {
        let mut out = self.encode()?;
        let sig = key.sign(&out);
        out.extend_from_slice(&sig);
        Ok(out)
    }

    /// Checks signed receipt bytes under `receipt_key` and decodes them.
    pub fn verify(signed: &[u8], receipt_key: &[u8; 32]) -> Result<Self, ReceiptError> {
        let (body, sig) = split_signed(signed, &receipt::FORMAT)?;
        verify_sig(
            receipt_key,
            body,
            sig,
            &receipt::SIGNATURE,
            "receipt key in the worker's claims",
        )?;
        let r = Self::decode(body)?;
        if r.ended_at_ms < r.started_at_ms {
            return Err(ReceiptError::mismatch(
                &receipt::TIME,
                format!("an end at or after {}", r.started_at_ms),
                r.ended_at_ms,
            ));
        }
        Ok(r)
    }

    /// SHA-256 of signed receipt bytes: what an acknowledgement names.
    pub fn digest_of(signed: &[u8]) -> [u8; 32] {
        Sha256::digest(signed).into()
    }
}

/// What a client expects of the receipt that ends its answer.
#[derive(Clone, Debug)]
pub struct Expected {
    /// The worker it sealed to.
    pub worker_id: [u8; 32],
    /// SHA-256 of the sealed bytes it sent.
    pub request_digest: [u8; 32],
    /// The offer it accepted, when it chose one.
    pub offer_digest: Option<[u8; 32]>,
    /// Token counts the answer itself reported (`usage`), when it did.
    pub usage: Option<(u32, u32)>,
    /// Content events received (a streamed answer sends at most one per token).
    pub content_events: u32,
}

impl Expected {
    /// Checks a verified receipt against what the client sent and received.
    pub fn check(&self, r: &Receipt) -> Result<(), ReceiptError> {
        if r.worker_id != self.worker_id {
            return Err(ReceiptError::mismatch(
                &receipt::WORKER,
                hex::encode(self.worker_id),
                hex::encode(r.worker_id),
            ));
        }
        if r.request_digest != self.request_digest {
            return Err(ReceiptError::mismatch(
                &receipt::REQUEST_DIGEST,
                hex::encode(self.request_digest),
                hex::encode(r.request_digest),
            ));
        }
        if let Some(offer) = self.offer_digest {
            if r.offer_digest != offer {
                return Err(ReceiptError::mismatch(
                    &receipt::OFFER,
                    hex::encode(offer),
                    hex::encode(r.offer_digest),
                ));
            }
        }
        if let Some((prompt, completion)) = self.usage {
            if r.prompt_tokens != prompt {
                return Err(ReceiptError::mismatch(
                    &receipt::PROMPT_TOKENS,
                    prompt,
                    r.prompt_tokens,
                ));
            }
            if r.completion_tokens != completion {
                return Err(ReceiptError::mismatch(
                    &receipt::COMPLETION_TOKENS,
                    completion,
                    r.completion_tokens,
                ));
            }
        }
        if r.completion_tokens < self.content_events {
            return Err(ReceiptError::mismatch(
                &receipt::COMPLETION_TOKENS,
                format!("at least {} (content events received)", self.content_events),
                r.completion_tokens,
            ));
        }
        Ok(())
    }
}

/// A client's acknowledgement of a receipt it verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// SHA-256 of the signed receipt.
    pub receipt_digest: [u8; 32],
    /// The client's public key (Ed25519).
    pub client_key: [u8; 32],
    /// When it was acknowledged, Unix seconds.
    pub acked_at: u64,
}

impl Ack {
    /// Acknowledges signed receipt bytes with the client's key: body then signature.
    pub fn sign(signed_receipt: &[u8], key: &SigningKeyPair, now: u64) -> Vec<u8> {
        let ack = Ack {
            receipt_digest: Receipt::digest_of(signed_receipt),
            client_key: key.public_key(),
            acked_at: now,
        };
        let mut out = ack.encode();
        let sig = key.sign(&out);
        out.extend_from_slice(&sig);
        out
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(ACK_MAGIC, &ack::FORMAT);
        w.bytes(&self.receipt_digest);
        w.bytes(&self.client_key);
        w.u64(self.acked_at);
        w.out
    }

    /// Checks an acknowledgement (signed by the key it names) of `signed_receipt`.
    pub fn verify(signed_ack: &[u8], signed_receipt: &[u8]) -> Result<Self, ReceiptError> {
        let (body, sig) = split_signed(signed_ack, &ack::FORMAT)?;
        let mut r = Reader::new(body, ACK_MAGIC, &ack::FORMAT)?;
        let ack = Ack {
            receipt_digest: r.array("receipt_digest")?,
            client_key: r.array("client_key")?,
            acked_at: r.u64("acked_at")?,
        };
        r.end()?;
        verify_sig(
            &ack.client_key,
            body,
            sig,
            &ack::SIGNATURE,
            "client key it names",
        )?;
        let digest = Receipt::digest_of(signed_receipt);
        if ack.receipt_digest != digest {
            return Err(ReceiptError::mismatch(
                &ack::RECEIPT,
                hex::encode(digest),
                hex::encode(ack.receipt_digest),
            ));
        }
        Ok(ack)
    }
}

/// Canonical writer ([`crate::canon`]): magic, then fields.
struct Writer {
    out: Vec<u8>,
    check: &'static CheckId,
}

impl Writer {
    fn new(magic: &[u8; 8], check: &'static CheckId) -> Self {
        Self {
            out: magic.to_vec(),
            check,
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    fn text(&mut self, s: &str) -> Result<(), ReceiptError> {
        canon::put_var(&mut self.out, s.as_bytes(), "text").map_err(|_| ReceiptError::Format {
            check: self.check,
            detail: format!("a text field of {} bytes", s.len()),
        })
    }
}

/// The strict reader of [`crate::canon`], past a magic, with failures named `check`.
struct Reader<'a> {
    inner: canon::Reader<'a>,
    check: &'static CheckId,
}

impl<'a> Reader<'a> {
    fn new(
        bytes: &'a [u8],
        magic: &[u8; 8],
        check: &'static CheckId,
    ) -> Result<Self, ReceiptError> {
        if bytes.get(..8) != Some(magic.as_slice()) {
            return Err(ReceiptError::Format {
                check,
                detail: format!(
                    "does not start with {:?}",
                    String::from_utf8_lossy(magic.as_slice())
                ),
            });
        }
        Ok(Self {
            inner: canon::Reader::new(bytes, 8),
            check,
        })
    }

    fn named<T>(&self, r: Result<T, canon::CanonError>) -> Result<T, ReceiptError> {
        r.map_err(|e| ReceiptError::Format {
            check: self.check,
            detail: e.to_string(),
        })
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ReceiptError> {
        let r = self.inner.array(field);
        self.named(r)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, ReceiptError> {
        let r = self.inner.u64(field);
        self.named(r)
    }

    fn text(&mut self, field: &'static str) -> Result<String, ReceiptError> {
        let r = self.inner.text(field);
        self.named(r)
    }

    fn end(&self) -> Result<(), ReceiptError> {
        self.named(self.inner.end())
    }
}

#[cfg(test)]
#[path = "receipt_tests.rs"]
mod tests;
