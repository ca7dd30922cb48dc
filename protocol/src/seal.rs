//! Sealed requests (RFC 9180 HPKE) and the sealed response stream keyed from them.
//!
//! A request is sealed to the enclave's attested X25519 key in HPKE base mode with
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM. The HPKE `info` binds the
//! protocol version and the digest of the claims the client verified, so a request sealed
//! for one enclave (or one set of claims) opens nowhere else. The response is a stream of
//! AES-256-GCM chunks under a key and base nonce exported from the same HPKE context: only
//! the client that sealed the request can read the answer. Each chunk's nonce and
//! associated data carry its sequence number and a "last" flag, so reordering, replay,
//! dropping, splicing between streams and truncation all fail authentication or the final
//! check. The last chunk is the signed usage receipt ([`crate::receipt`]), repeated once
//! in clear after it for those on the path who settle payment without seeing content.
//! `docs/protocol.md` gives the byte layout.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::{CryptoRng, OsRng, RngCore, TryRngCore, UnwrapErr};
use zeroize::Zeroizing;

/// Wire version of sealed requests and streams.
pub const VERSION: u8 = 1;
/// Bytes before the ciphertext of a sealed request: version, claims digest, encapsulated key.
pub const REQUEST_HEADER: usize = 1 + 32 + 32;
/// Largest plaintext in one response chunk.
pub const MAX_CHUNK: usize = 1 << 20;
/// Bytes of framing before each chunk's ciphertext: flags and length.
pub const CHUNK_HEADER: usize = 1 + 4;

const INFO_LABEL: &[u8] = b"silk/v1 request";
const EXPORT_LABEL: &[u8] = b"silk/v1 response";
const CHUNK_LABEL: &[u8] = b"silk/v1 chunk";
const TAG: usize = 16;
const FLAG_LAST: u8 = 0x01;
/// The chunk's plaintext is the signed usage receipt; it is always the last chunk.
const FLAG_RECEIPT: u8 = 0x02;
/// A frame after the last chunk carrying the same receipt unencrypted, for the router and
/// the worker's owner (it is signed, so it needs no seal; the client checks it is equal).
pub const FLAG_CLEAR_RECEIPT: u8 = 0x80;

pub(crate) type Kem = X25519HkdfSha256;
pub(crate) type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
pub(crate) type PublicKey = <Kem as hpke::Kem>::PublicKey;

/// The operating system's random generator, in the form HPKE takes.
pub fn os_rng() -> UnwrapErr<OsRng> {
    OsRng.unwrap_err()
}

/// The enclave's HPKE key pair. The private key never leaves this type and is wiped when
/// it is dropped (x25519-dalek's `zeroize` feature).
pub struct EnclaveKeys {
    pub(crate) private: PrivateKey,
    public: PublicKey,
}

impl EnclaveKeys {
    /// A fresh key pair.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let (private, public) = Kem::gen_keypair(rng);
        Self { private, public }
    }

    /// The public key as it goes into the claims.
    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.public.to_bytes());
        out
    }
}

// The message of `SealError::Recipients` spells the bound out.
const _: () = assert!(crate::spread::MAX_RECIPIENTS == 8);

/// Why a request could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// A spread request names no recipient, or more than [`crate::spread::MAX_RECIPIENTS`].
    #[error("a spread request must name 1 to 8 workers, not {0}")]
    Recipients(usize),
    /// The enclave public key is not a valid X25519 key.
    #[error("the enclave's HPKE public key is invalid")]
    BadPublicKey,
    /// Shorter than the header and the AEAD tag.
    #[error("sealed request is {0} bytes, shorter than its header and tag")]
    TooShort(usize),
    /// A version this code does not speak.
    #[error("sealed request version {0} is not supported (this side speaks {VERSION})")]
    UnknownVersion(u8),
    /// Sealed for other claims (another enclave, or keys that have since rotated).
    #[error("the request was sealed for other claims (another enclave or rotated keys)")]
    WrongClaims,
    /// The encapsulated key or the ciphertext does not authenticate.
    #[error("the sealed request does not decrypt: it was altered or sealed to another key")]
    Decrypt,
}

fn info(claims_digest: &[u8; 32]) -> Vec<u8> {
    [INFO_LABEL, claims_digest.as_slice()].concat()
}

/// Seals `body` to the enclave's key `enclave_pk`, bound to the verified claims' digest.
/// Returns the request bytes and the opener for the answer's stream.
pub fn seal_request<R: RngCore + CryptoRng>(
    enclave_pk: &[u8; 32],
    claims_digest: &[u8; 32],
    body: &[u8],
    rng: &mut R,
) -> Result<(Vec<u8>, StreamOpener), SealError> {
    let pk = PublicKey::from_bytes(enclave_pk).map_err(|_| SealError::BadPublicKey)?;
    let (enc, mut ctx) = hpke::setup_sender::<AesGcm256, HkdfSha256, Kem, _>(
        &OpModeS::Base,
        &pk,
        &info(claims_digest),
        rng,
    )
    .map_err(|_| SealError::BadPublicKey)?;
    let mut out = Vec::with_capacity(REQUEST_HEADER + body.len() + TAG);
    out.push(VERSION);
    out.extend_from_slice(claims_digest);
    out.extend_from_slice(&enc.to_bytes());
    let ct = ctx.seal(body, &out).map_err(|_| SealError::Decrypt)?;
    out.extend_from_slice(&ct);
    let keys = export_keys(|label, buf| ctx.export(label, buf))?;
    Ok((out, StreamOpener::new(keys)))
}

/// Opens a sealed request with the enclave's keys, checking that it was sealed for the
/// claims whose digest is `claims_digest`. Returns the plaintext (wiped when dropped) and
/// the sealer for the answer's stream.
pub fn open_request(
    keys: &EnclaveKeys,
    claims_digest: &[u8; 32],
    wire: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, StreamSealer), SealError> {
    if wire.first() == Some(&crate::spread::VERSION) {
        return crate::spread::open(keys, claims_digest, wire);
    }
    if wire.len() < REQUEST_HEADER + TAG {
        return Err(SealError::TooShort(wire.len()));
    }
    if wire[0] != VERSION {
        return Err(SealError::UnknownVersion(wire[0]));
    }
    if &wire[1..33] != claims_digest {
        return Err(SealError::WrongClaims);
    }
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&wire[33..65])
        .map_err(|_| SealError::Decrypt)?;
    let mut ctx = hpke::setup_receiver::<AesGcm256, HkdfSha256, Kem>(
        &OpModeR::Base,
        &keys.private,
        &enc,
        &info(claims_digest),
    )
    .map_err(|_| SealError::Decrypt)?;
    let plain = ctx
        .open(&wire[REQUEST_HEADER..], &wire[..REQUEST_HEADER])
        .map_err(|_| SealError::Decrypt)?;
    let keys = export_keys(|label, buf| ctx.export(label, buf))?;
    Ok((Zeroizing::new(plain), StreamSealer::new(keys)))
}

pub(crate) struct StreamKeys {
    cipher: Aes256Gcm,
    base_nonce: Zeroizing<[u8; 12]>,
}

pub(crate) fn export_keys(
    export: impl FnOnce(&[u8], &mut [u8]) -> Result<(), hpke::HpkeError>,
) -> Result<StreamKeys, SealError> {
    let mut buf = Zeroizing::new([0u8; 44]);
    export(EXPORT_LABEL, buf.as_mut_slice()).map_err(|_| SealError::Decrypt)?;
    let cipher = Aes256Gcm::new_from_slice(&buf[..32]).map_err(|_| SealError::Decrypt)?;
    let mut base_nonce = Zeroizing::new([0u8; 12]);
    base_nonce.copy_from_slice(&buf[32..]);
    Ok(StreamKeys { cipher, base_nonce })
}

impl StreamKeys {
    fn nonce(&self, seq: u64) -> [u8; 12] {
        let mut n = *self.base_nonce;
        for (b, s) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    fn aad(seq: u64, flags: u8) -> Vec<u8> {
        let mut aad = CHUNK_LABEL.to_vec();
        aad.extend_from_slice(&seq.to_be_bytes());
        aad.push(flags);
        aad
    }
}

/// Why a response stream was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StreamError {
    /// A chunk failed authentication: altered, reordered, replayed, dropped before it, or
    /// from another stream.
    #[error(
        "response chunk {seq} does not authenticate (altered, reordered, replayed or spliced)"
    )]
    BadChunk {
        /// The sequence number expected at that point.
        seq: u64,
    },
    /// A chunk declares more than [`MAX_CHUNK`] bytes.
    #[error("response chunk {seq} declares {len} bytes, more than allowed")]
    TooLarge {
        /// Its sequence number.
        seq: u64,
        /// The declared length.
        len: usize,
    },
    /// Unknown flag bits.
    #[error("response chunk {seq} has unknown flags {flags:#04x}")]
    BadFlags {
        /// Its sequence number.
        seq: u64,
        /// The flags.
        flags: u8,
    },
    /// Bytes arrived after the final chunk.
    #[error("data after the final response chunk")]
    AfterLast,
    /// The stream ended before its final chunk.
    #[error("the response stream was cut short after {chunks} chunks")]
    Truncated {
        /// Chunks received whole.
        chunks: u64,
    },
    /// The sealer was asked to continue after its final chunk.
    #[error("the stream is already finished")]
    Finished,
}

/// The enclave's side of a response stream.
pub struct StreamSealer {
    keys: StreamKeys,
    seq: u64,
    finished: bool,
}

impl StreamSealer {
    pub(crate) fn new(keys: StreamKeys) -> Self {
        Self {
            keys,
            seq: 0,
            finished: false,
        }
    }

    /// Seals the next chunk; `last` marks the end of the stream (a stream that should
    /// carry a receipt ends with [`StreamSealer::seal_receipt`] instead).
    pub fn seal(&mut self, plaintext: &[u8], last: bool) -> Result<Vec<u8>, StreamError> {
        self.seal_flags(plaintext, if last { FLAG_LAST } else { 0 })
    }

    /// Ends the stream with the signed receipt: sealed as the last chunk, then repeated in
    /// a clear frame.
    pub fn seal_receipt(&mut self, signed_receipt: &[u8]) -> Result<Vec<u8>, StreamError> {
        if signed_receipt.len() > crate::receipt::MAX_SIGNED {
            return Err(StreamError::TooLarge {
                seq: self.seq,
                len: signed_receipt.len(),
            });
        }
        let mut frame = self.seal_flags(signed_receipt, FLAG_LAST | FLAG_RECEIPT)?;
        frame.push(FLAG_CLEAR_RECEIPT);
        frame.extend_from_slice(&(signed_receipt.len() as u32).to_be_bytes());
        frame.extend_from_slice(signed_receipt);
        Ok(frame)
    }

    fn seal_flags(&mut self, plaintext: &[u8], flags: u8) -> Result<Vec<u8>, StreamError> {
        if self.finished {
            return Err(StreamError::Finished);
        }
        if plaintext.len() > MAX_CHUNK {
            return Err(StreamError::TooLarge {
                seq: self.seq,
                len: plaintext.len(),
            });
        }
        let nonce = self.keys.nonce(self.seq);
        let aad = StreamKeys::aad(self.seq, flags);
        let ct = self
            .keys
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| StreamError::Finished)?;
        let mut frame = Vec::with_capacity(CHUNK_HEADER + ct.len());
        frame.push(flags);
        frame.extend_from_slice(&(ct.len() as u32).to_be_bytes());
        frame.extend_from_slice(&ct);
        self.seq += 1;
        self.finished = flags & FLAG_LAST != 0;
        Ok(frame)
    }
}

/// The client's side of a response stream: feed it bytes as they arrive.
pub struct StreamOpener {
    keys: StreamKeys,
    seq: u64,
    finished: bool,
    buf: Vec<u8>,
    receipt: Option<Vec<u8>>,
    clear_receipt: Option<Vec<u8>>,
}

impl StreamOpener {
    pub(crate) fn new(keys: StreamKeys) -> Self {
        Self {
            keys,
            seq: 0,
            finished: false,
            buf: Vec::new(),
            receipt: None,
            clear_receipt: None,
        }
    }

    /// Consumes received bytes and returns the plaintexts of the chunks they completed.
    /// After an error the stream is unusable.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Zeroizing<Vec<u8>>>, StreamError> {
        if self.finished && !bytes.is_empty() {
            return Err(StreamError::AfterLast);
        }
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.buf.len() < CHUNK_HEADER {
                return Ok(out);
            }
            let flags = self.buf[0];
            let mut len_bytes = [0u8; 4];
            len_bytes.copy_from_slice(&self.buf[1..5]);
            let len = u32::from_be_bytes(len_bytes) as usize;
            if self.finished {
                // Only the receipt's clear copy may follow the last chunk, once.
                if flags != FLAG_CLEAR_RECEIPT
                    || self.clear_receipt.is_some()
                    || self.receipt.is_none()
                    || len > crate::receipt::MAX_SIGNED
                {
                    return Err(StreamError::AfterLast);
                }
                if self.buf.len() < CHUNK_HEADER + len {
                    return Ok(out);
                }
                self.clear_receipt = Some(self.buf[CHUNK_HEADER..CHUNK_HEADER + len].to_vec());
                self.buf.drain(..CHUNK_HEADER + len);
                continue;
            }
            let receipt = flags & FLAG_RECEIPT != 0;
            if flags & !(FLAG_LAST | FLAG_RECEIPT) != 0 || (receipt && flags & FLAG_LAST == 0) {
                return Err(StreamError::BadFlags {
                    seq: self.seq,
                    flags,
                });
            }
            if !(TAG..=MAX_CHUNK + TAG).contains(&len) {
                return Err(StreamError::TooLarge { seq: self.seq, len });
            }
            if self.buf.len() < CHUNK_HEADER + len {
                return Ok(out);
            }
            let nonce = self.keys.nonce(self.seq);
            let aad = StreamKeys::aad(self.seq, flags);
            let ct = &self.buf[CHUNK_HEADER..CHUNK_HEADER + len];
            let plain = self
                .keys
                .cipher
                .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: &aad })
                .map_err(|_| StreamError::BadChunk { seq: self.seq })?;
            self.buf.drain(..CHUNK_HEADER + len);
            if receipt {
                self.receipt = Some(plain);
            } else {
                out.push(Zeroizing::new(plain));
            }
            self.seq += 1;
            self.finished = flags & FLAG_LAST != 0;
        }
    }

    /// The signed receipt the stream ended with (authenticated by the stream's key).
    pub fn receipt(&self) -> Option<&[u8]> {
        self.receipt.as_deref()
    }

    /// The clear copy of the receipt that followed the last chunk, if it came (a router
    /// may strip it; when present the client checks it equals the sealed one).
    pub fn clear_receipt(&self) -> Option<&[u8]> {
        self.clear_receipt.as_deref()
    }

    /// Whether the final chunk has arrived.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Call at the end of the transport: an error unless the final chunk arrived and no
    /// bytes are left over.
    pub fn finish(&self) -> Result<(), StreamError> {
        if !self.finished {
            return Err(StreamError::Truncated { chunks: self.seq });
        }
        if !self.buf.is_empty() {
            return Err(StreamError::AfterLast);
        }
        Ok(())
    }
}
