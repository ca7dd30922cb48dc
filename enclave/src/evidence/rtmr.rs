//! Extending TDX RTMR3 from user space, where the kernel allows it.
//!
//! Linux 6.16 exposes the TD's measurement registers under
//! `/sys/devices/virtual/misc/tdx_guest/measurements/` (the `tsm-mr` framework); writing a
//! SHA-384 digest to `rtmr3:sha384` extends RTMR3 with it. Older kernels (the image's 6.12
//! included) have no such file: the enclave then leaves RTMR3 alone and the claims alone
//! carry what it was started with. Writing the file is the kernel's TDG.MR.RTMR.EXTEND;
//! no ioctl is needed.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::EvidenceError;

/// The RTMR3 file under a root directory (`/` in production).
pub fn rtmr3_path(root: &Path) -> PathBuf {
    root.join("sys/devices/virtual/misc/tdx_guest/measurements/rtmr3:sha384")
}

/// Extends RTMR3 with `digest`. `Ok(false)` when the kernel offers no way to.
pub fn extend_rtmr3(root: &Path, digest: &[u8; 48]) -> Result<bool, EvidenceError> {
    let path = rtmr3_path(root);
    if !path.exists() {
        return Ok(false);
    }
    let io = |source| EvidenceError::Io {
        what: "extending RTMR3 through",
        path: path.clone(),
        source,
    };
    // One write of the whole digest: the kernel extends only on a full 48-byte write.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(io)?;
    f.write_all(digest).map_err(io)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_interface_is_not_an_error_and_present_one_is_written() {
        let root = std::env::temp_dir().join(format!("silk-rtmr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        assert!(!extend_rtmr3(&root, &[1; 48]).expect("absent"));
        let path = rtmr3_path(&root);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, b"").expect("file");
        assert!(extend_rtmr3(&root, &[7; 48]).expect("written"));
        assert_eq!(std::fs::read(&path).expect("read"), vec![7; 48]);
        let _ = std::fs::remove_dir_all(&root);
    }
}
