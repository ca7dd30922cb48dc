//! The on-disk cache of fetched collateral. It is not trusted (everything in it is
//! verified against vendor roots by whoever uses it), only kept whole: an item is written
//! to a temporary file in the same directory and renamed over the old one, so a crash
//! leaves the old item or the new one, never half of either.

use std::io::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

/// A file name for an item: its kind and a digest of what names it (for a VCEK, the KDS
/// path with the product line, chip and TCB).
pub fn name(kind: &str, item: &str, ext: &str) -> String {
    let digest = Sha256::digest(item.as_bytes());
    format!("{kind}-{}.{ext}", hex::encode(&digest[..16]))
}

/// The cached item, if there is a cache and it holds one.
pub fn read(dir: Option<&Path>, name: &str) -> Option<Vec<u8>> {
    let path = dir?.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), "collateral cache unreadable: {e}");
            None
        }
    }
}

/// Keeps `bytes` as `name`. A cache that cannot be written is logged, not fatal: the item
/// is served from memory and fetched again after a restart.
pub fn write(dir: Option<&Path>, name: &str, bytes: &[u8]) {
    let Some(dir) = dir else { return };
    if let Err(e) = write_whole(dir, name, bytes) {
        tracing::warn!(dir = %dir.display(), file = name, "collateral cache not written: {e}");
    }
}

fn write_whole(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_written_whole_and_read_back() {
        let dir = std::env::temp_dir().join(format!("silk-cache-{}", std::process::id()));
        let n = name("vcek", "https://kds/x", "der");
        assert!(n.starts_with("vcek-") && n.ends_with(".der"));
        assert_ne!(n, name("vcek", "https://kds/y", "der"));
        assert_eq!(read(Some(&dir), &n), None);
        write(Some(&dir), &n, b"one");
        write(Some(&dir), &n, b"two");
        assert_eq!(read(Some(&dir), &n).as_deref(), Some(&b"two"[..]));
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        assert_eq!(read(None, &n), None);
        write(None, &n, b"ignored");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
