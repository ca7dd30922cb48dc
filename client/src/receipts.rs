//! The client's side of usage receipts: checking the receipt that ends every sealed answer,
//! acknowledging it with the client's own key, and keeping both for settlement.
//!
//! The receipt is checked against what the client itself knows — the sealed bytes it sent,
//! the worker it sealed to, the offer it accepted, and the tokens the answer reported or
//! the content events it carried — so a receipt that was altered, swapped or inflated
//! anywhere is an integrity failure named `receipt.*`. The client key (Ed25519) is made on
//! first use and stored with 0600 rights; it never leaves the machine.

use std::io::Write;
use std::path::{Path, PathBuf};

use silk_protocol::receipt::{Ack, Expected, Receipt, ReceiptError, SigningKeyPair};

use crate::session::ClientError;
use silk_protocol::attestation::checks::receipt;

/// A worker a request was sealed to, as its receipt must name it.
#[derive(Clone, Debug)]
pub struct SealedTo {
    /// Its base claims digest.
    pub worker_id: [u8; 32],
    /// The receipt key in its verified claims.
    pub receipt_key: [u8; 32],
    /// The offer accepted, when one was chosen.
    pub offer_digest: Option<[u8; 32]>,
    /// That offer, signed (kept with the receipt so that it can be priced offline).
    pub offer: Option<silk_protocol::receipt::SignedOffer>,
}

/// What the receipt of one request must say, fixed when the request is sealed.
#[derive(Clone, Debug)]
pub struct ReceiptExpect {
    /// The workers sealed to: one, or the K of a spread request (any one may answer).
    pub workers: Vec<SealedTo>,
    /// SHA-256 of the sealed request bytes.
    pub request_digest: [u8; 32],
}

/// A receipt that verified, with its signed bytes.
#[derive(Clone, Debug)]
pub struct VerifiedReceipt {
    /// The signed receipt bytes, as the worker signed them.
    pub signed: Vec<u8>,
    /// What it says.
    pub receipt: Receipt,
    /// The verified offer it was served under, when the client chose one.
    pub offer: Option<silk_protocol::receipt::SignedOffer>,
}

/// Token counts seen in the plaintext of an answer: the `usage` object when the answer
/// carries one, and the number of content events of a streamed answer.
#[derive(Debug, Default)]
pub(crate) struct UsageTally {
    usage: Option<(u32, u32)>,
    content_events: u32,
}

impl UsageTally {
    /// Reads one plaintext chunk: a whole JSON answer, or SSE events.
    pub(crate) fn observe(&mut self, chunk: &[u8]) {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(chunk) {
            self.take_usage(&v);
            return;
        }
        for line in chunk.split(|&b| b == b'\n') {
            let Some(data) = line.strip_prefix(b"data: ") else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
                continue;
            };
            self.take_usage(&v);
            let choice = &v["choices"][0];
            let content = choice["delta"]["content"]
                .as_str()
                .or_else(|| choice["text"].as_str());
            if content.is_some_and(|c| !c.is_empty()) {
                self.content_events += 1;
            }
        }
    }

    fn take_usage(&mut self, v: &serde_json::Value) {
        let u = &v["usage"];
        let count = |k: &str| u[k].as_u64().and_then(|n| u32::try_from(n).ok());
        if let (Some(p), Some(c)) = (count("prompt_tokens"), count("completion_tokens")) {
            self.usage = Some((p, c));
        }
    }

    /// Checks the answer's receipt: present, signed by the worker's receipt key, naming
    /// this request, worker and offer, counting what the answer carried, and equal to its
    /// clear copy when one came.
    pub(crate) fn verify(
        &self,
        expect: &ReceiptExpect,
        sealed: Option<&[u8]>,
        clear: Option<&[u8]>,
    ) -> Result<VerifiedReceipt, ClientError> {
        let signed = sealed.ok_or(ReceiptError::Missing).map_err(receipt_error)?;
        // Which of the workers sealed to answered: the receipt says, and its signature must
        // then be that worker's.
        let named = signed
            .len()
            .checked_sub(silk_protocol::receipt::SIGNATURE)
            .and_then(|n| Receipt::decode(&signed[..n]).ok())
            .map(|r| r.worker_id);
        let to = match named {
            Some(id) => expect.workers.iter().find(|w| w.worker_id == id),
            None => expect.workers.first(),
        };
        let to = to.ok_or_else(|| {
            let ids: Vec<_> = expect
                .workers
                .iter()
                .map(|w| hex::encode(w.worker_id))
                .collect();
            receipt_error(ReceiptError::Mismatch {
                check: &receipt::WORKER,
                expected: format!("one of {}", ids.join(", ")),
                found: named.map(hex::encode).unwrap_or_default(),
            })
        })?;
        let receipt = Receipt::verify(signed, &to.receipt_key).map_err(receipt_error)?;
        Expected {
            worker_id: to.worker_id,
            request_digest: expect.request_digest,
            offer_digest: to.offer_digest,
            usage: self.usage,
            content_events: self.content_events,
        }
        .check(&receipt)
        .map_err(receipt_error)?;
        if clear.is_some_and(|c| c != signed) {
            return Err(ClientError::Integrity {
                check: receipt::CLEAR_COPY.name,
                detail: "the receipt's clear copy differs from the sealed one (altered on the way)"
                    .into(),
            });
        }
        Ok(VerifiedReceipt {
            signed: signed.to_vec(),
            receipt,
            offer: to.offer.clone(),
        })
    }
}

/// A receipt failure as the client reports it: an integrity error naming the check.
pub fn receipt_error(e: ReceiptError) -> ClientError {
    ClientError::Integrity {
        check: e.check(),
        detail: e.to_string(),
    }
}

/// `$XDG_CONFIG_HOME/silk` (or `~/.config/silk`): where the client key and receipts live.
pub fn config_dir() -> Result<PathBuf, ClientError> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("silk"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ClientError::Config("neither XDG_CONFIG_HOME nor HOME is set".into()))?;
    Ok(PathBuf::from(home).join(".config/silk"))
}

/// Loads the client key from `dir/client.key`, making it (0600) on first use.
pub fn client_key(dir: &Path) -> Result<SigningKeyPair, ClientError> {
    let path = dir.join("client.key");
    let cfg =
        |e: std::io::Error| ClientError::Config(format!("client key {}: {e}", path.display()));
    match std::fs::read(&path) {
        Ok(bytes) => {
            let bytes = zeroize::Zeroizing::new(bytes);
            let seed = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                ClientError::Config(format!(
                    "client key {}: {} bytes, not a 32-byte Ed25519 seed",
                    path.display(),
                    bytes.len()
                ))
            })?;
            Ok(SigningKeyPair::from_seed(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(cfg)?;
            let key = SigningKeyPair::generate();
            // Written whole to a temporary file with 0600 rights, then renamed: a crash
            // leaves either no key or a whole one, never a readable or partial one.
            let tmp = dir.join(".client.key.tmp");
            let mut f = open_private(&tmp, true).map_err(cfg)?;
            f.write_all(key.seed().as_slice()).map_err(cfg)?;
            f.sync_all().map_err(cfg)?;
            std::fs::rename(&tmp, &path).map_err(cfg)?;
            Ok(key)
        }
        Err(e) => Err(cfg(e)),
    }
}

fn open_private(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.mode(0o600).create(true);
    if truncate {
        o.write(true).truncate(true);
    } else {
        o.append(true);
    }
    o.open(path)
}

/// One line of a receipts file: the signed receipt and the client's acknowledgement, hex.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptLine {
    /// Hex of the signed receipt.
    pub receipt: String,
    /// Hex of the signed acknowledgement, when the client made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<String>,
    /// The worker id (hex), as a router's receipts file names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The signed offer the receipt was served under, when the client chose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<silk_protocol::receipt::SignedOffer>,
}

/// Acknowledges a verified receipt with `key` and appends both to `file` (0600, one JSON
/// line, written with a single call so concurrent answers do not interleave).
pub fn acknowledge(
    file: &Path,
    key: &SigningKeyPair,
    receipt: &VerifiedReceipt,
) -> Result<(), ClientError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let ack = Ack::sign(&receipt.signed, key, now);
    let line = ReceiptLine {
        receipt: hex::encode(&receipt.signed),
        ack: Some(hex::encode(ack)),
        worker: Some(hex::encode(receipt.receipt.worker_id)),
        offer: receipt.offer.clone(),
    };
    let mut text = serde_json::to_string(&line).unwrap_or_default();
    text.push('\n');
    let cfg = |e: std::io::Error| ClientError::Config(format!("receipts {}: {e}", file.display()));
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(cfg)?;
    }
    open_private(file, false)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_reads_usage_and_counts_content_events() {
        let mut t = UsageTally::default();
        t.observe(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n");
        t.observe(b"data: {\"choices\":[{\"delta\":{\"content\":\"\"}}]}\n\n");
        t.observe(b"data: {\"choices\":[{\"text\":\" there\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n");
        assert_eq!(t.content_events, 2);
        assert_eq!(t.usage, Some((5, 2)));
        let mut whole = UsageTally::default();
        whole.observe(br#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}"#);
        assert_eq!(whole.usage, Some((9, 4)));
    }

    #[test]
    fn client_key_is_made_once_with_private_rights() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("silk-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = client_key(&dir).unwrap();
        let b = client_key(&dir).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let mode = std::fs::metadata(dir.join("client.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.join("client.key"), b"short").unwrap();
        let err = client_key(&dir).err().unwrap().to_string();
        assert!(err.contains("not a 32-byte Ed25519 seed"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
