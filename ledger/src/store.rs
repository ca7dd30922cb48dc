//! The payee's store of promises: the highest one per channel, kept safely on disk.
//!
//! A promise is acknowledged to the payer only after [`PromiseStore::keep`] returns, and
//! `keep` returns only once the promise is on disk whole: written to a temporary file in
//! the same directory, synced, renamed over the channel's file, and the directory synced.
//! A crash at any point leaves either the previous promise or the new one, never a torn
//! file; stray temporary files are ignored (and cleared) when the store is opened.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::promise::{PromiseError, SignedPromise};

/// Why a promise was not kept.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The promise does not verify under the channel's payer key.
    #[error(transparent)]
    Promise(#[from] PromiseError),
    /// The store could not be read or written.
    #[error("promise store {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A stored file is not a signed promise.
    #[error("promise store {path}: not a stored promise: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// What [`PromiseStore::keep`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// It is now the channel's latest.
    Stored,
    /// A promise with this or a higher sequence number is already kept.
    Older {
        /// The kept one's sequence number.
        kept_seqno: u64,
    },
}

/// The highest promise per channel, one file each.
pub struct PromiseStore {
    dir: PathBuf,
}

const TMP_SUFFIX: &str = ".tmp";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl PromiseStore {
    /// Opens (creating) the store in `dir`, clearing temporary files a crash left.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        clear_torn(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, channel_id: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}.json", hex::encode(channel_id)))
    }

    /// The latest promise kept for `channel_id`.
    pub fn latest(&self, channel_id: &[u8; 32]) -> Result<Option<SignedPromise>, StoreError> {
        let path = self.path(channel_id);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let p: SignedPromise = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if &p.promise.channel_id != channel_id {
            return Err(StoreError::Corrupt {
                path,
                detail: "the promise is for another channel".into(),
            });
        }
        Ok(Some(p))
    }

    /// Keeps `promise` if it verifies under `payer_key` and is newer than the kept one;
    /// returns once it is safely on disk. `&mut self`: the check against the kept promise
    /// and the write must not interleave with another keep (an older promise could
    /// otherwise overwrite a newer one).
    pub fn keep(
        &mut self,
        promise: &SignedPromise,
        payer_key: &[u8; 32],
    ) -> Result<Kept, StoreError> {
        promise.verify(payer_key)?;
        let channel = promise.promise.channel_id;
        if let Some(kept) = self.latest(&channel)? {
            if kept.promise.seqno >= promise.promise.seqno {
                return Ok(Kept::Older {
                    kept_seqno: kept.promise.seqno,
                });
            }
        }
        let path = self.path(&channel);
        let text = serde_json::to_vec_pretty(promise).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        write_durably(&self.dir, &format!("{}.json", hex::encode(channel)), &text)?;
        Ok(Kept::Stored)
    }
}

/// Writes `path` so that a crash leaves either the old file or the new one whole: a
/// temporary file beside it, synced, renamed over the name, the directory synced (the
/// rename itself is durable only then). The directory is made when missing.
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// [`write_file`] of `dir/name`, its error naming the file.
pub(crate) fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let path = dir.join(name);
    write_file(&path, bytes).map_err(io(&path))
}

/// Removes the temporary files a crash left in `dir`.
pub(crate) fn clear_torn(dir: &Path) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.to_string_lossy().ends_with(TMP_SUFFIX) {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promise::Promise;
    use ed25519_dalek::SigningKey;

    fn signed(seqno: u64, amount: u128) -> SignedPromise {
        Promise {
            channel_id: [1; 32],
            seqno,
            amount,
        }
        .sign(&SigningKey::from_bytes(&[3; 32]))
        .unwrap()
    }

    fn payer() -> [u8; 32] {
        SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes()
    }

    #[test]
    fn keeps_the_highest_promise_and_refuses_forgeries() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = PromiseStore::open(dir.path()).unwrap();
        assert_eq!(store.keep(&signed(2, 20), &payer()).unwrap(), Kept::Stored);
        assert_eq!(
            store.keep(&signed(1, 30), &payer()).unwrap(),
            Kept::Older { kept_seqno: 2 }
        );
        assert_eq!(store.keep(&signed(5, 50), &payer()).unwrap(), Kept::Stored);
        let mut forged = signed(9, 90);
        forged.promise.amount = 900;
        assert!(matches!(
            store.keep(&forged, &payer()),
            Err(StoreError::Promise(PromiseError::Signature))
        ));
        let again = PromiseStore::open(dir.path()).unwrap();
        assert_eq!(again.latest(&[1; 32]).unwrap(), Some(signed(5, 50)));
    }

    #[test]
    fn a_crash_mid_write_leaves_the_previous_promise() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = PromiseStore::open(dir.path()).unwrap();
        store.keep(&signed(4, 40), &payer()).unwrap();
        // A crash after writing part of the next one: only the temporary file is torn.
        std::fs::write(
            dir.path()
                .join(format!("{}.json{TMP_SUFFIX}", hex::encode([1u8; 32]))),
            b"{\"promise\": {\"chan",
        )
        .unwrap();
        let reopened = PromiseStore::open(dir.path()).unwrap();
        assert_eq!(reopened.latest(&[1; 32]).unwrap(), Some(signed(4, 40)));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
