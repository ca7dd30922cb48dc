//! The router's HTTP surface, as workers, clients and routers must agree on it.
//!
//! A router lists workers and forwards sealed bytes; it is never trusted with content or
//! with the truth of what it lists. Workers register with fresh evidence over the router's
//! challenge; clients read the list, verify every candidate themselves, seal to the one
//! they choose and send through `POST /v1/sealed` with [`HEADER_WORKER`]. The answer is
//! the worker's sealed stream, forwarded chunk by chunk; [`FrameScanner`] lets the router
//! pick the receipt's clear copy out of it without buffering the answer.

use serde::{Deserialize, Serialize};

use crate::bundle::EvidenceBundle;
use crate::receipt::SignedOffer;

/// `GET`: a registration challenge.
pub const PATH_CHALLENGE: &str = "/v1/workers/challenge";
/// `POST`: register (or re-register) a worker; `GET ?model=M`: list workers.
pub const PATH_WORKERS: &str = "/v1/workers";
/// The worker's signed offer (served by the enclave).
pub const PATH_OFFER: &str = "/v1/offer";
/// Names the worker a sealed request is for (hex worker id).
pub const HEADER_WORKER: &str = "silk-worker";
/// Names the offer (hex digest) the client accepted; the receipt must name it too.
pub const HEADER_OFFER: &str = "silk-offer";
/// Largest registration body a router reads.
pub const MAX_REGISTRATION: usize = 256 << 10;

/// The path of fresh evidence from one worker, through a router.
pub fn attestation_path(worker_id: &str) -> String {
    format!("/v1/workers/{worker_id}/attestation")
}

/// What `GET /v1/workers/challenge` answers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    /// Hex nonce the registration's fresh evidence must carry.
    pub challenge: String,
    /// Seconds the challenge stays valid.
    pub expires_in: u64,
    /// How often the worker must re-register, in seconds.
    pub heartbeat_secs: u64,
}

/// What a worker posts to `/v1/workers`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The challenge being answered (hex).
    pub challenge: String,
    /// Fresh evidence whose claims carry the challenge.
    pub fresh: EvidenceBundle,
    /// Evidence over the base claims (the ones sealed requests are bound to).
    pub base: EvidenceBundle,
    /// The served model's name.
    pub model: String,
    /// The worker's signed offer.
    pub offer: SignedOffer,
    /// `host:port` of the worker's RA-TLS listener, as the router can reach it.
    pub address: String,
}

/// What a successful registration answers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Registered {
    /// The worker id (hex SHA-256 of the base claims).
    pub id: String,
    /// Re-register within this many seconds.
    pub heartbeat_secs: u64,
}

/// Load figures a router reports for a worker.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Requests this router has in flight to the worker.
    pub in_flight: u64,
    /// Requests waiting in the worker's queue (from its health report).
    pub queue: u64,
    /// Completion tokens per second over the last minute, from receipts.
    pub tokens_per_s: f64,
    /// The router's concurrency limit for the worker.
    pub limit: u64,
}

/// One listed worker. The router vouches for none of it: clients verify `bundle` and
/// `offer` themselves.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkerEntry {
    /// Hex SHA-256 of the base claims.
    pub id: String,
    /// The served model's name.
    pub model: String,
    /// Evidence over the base claims.
    pub bundle: EvidenceBundle,
    /// The signed offer.
    pub offer: SignedOffer,
    /// Load.
    pub load: Load,
}

/// What `GET /v1/workers` answers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkerList {
    /// Workers, least loaded first.
    pub workers: Vec<WorkerEntry>,
}

/// Reads the framing of a sealed stream as it passes, without decrypting or keeping it,
/// and keeps the receipt's clear copy when it comes. Framing errors are not its concern:
/// the client authenticates every chunk; the scanner only stops looking.
#[derive(Debug, Default)]
pub struct FrameScanner {
    header: Vec<u8>,
    skip: usize,
    clear: Option<Vec<u8>>,
    in_clear: bool,
    broken: bool,
}

impl FrameScanner {
    /// Feeds the next bytes of the stream.
    pub fn push(&mut self, mut bytes: &[u8]) {
        use crate::seal::{CHUNK_HEADER, FLAG_CLEAR_RECEIPT};
        while !bytes.is_empty() && !self.broken {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                if self.in_clear {
                    if let Some(c) = self.clear.as_mut() {
                        c.extend_from_slice(&bytes[..n]);
                    }
                }
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let need = CHUNK_HEADER - self.header.len();
            let n = need.min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() < CHUNK_HEADER {
                return;
            }
            let len = u32::from_be_bytes([
                self.header[1],
                self.header[2],
                self.header[3],
                self.header[4],
            ]) as usize;
            self.in_clear = self.header[0] == FLAG_CLEAR_RECEIPT;
            if self.in_clear {
                if len > crate::receipt::MAX_SIGNED || self.clear.is_some() {
                    self.broken = true;
                    self.clear = None;
                    return;
                }
                self.clear = Some(Vec::with_capacity(len));
            }
            self.skip = len;
            self.header.clear();
        }
    }

    /// The receipt's clear copy, once it has arrived whole.
    pub fn clear_receipt(&self) -> Option<&[u8]> {
        match (&self.clear, self.skip, self.in_clear) {
            (Some(c), 0, _) if !self.broken => Some(c),
            _ => None,
        }
    }
}
