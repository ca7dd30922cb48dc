//! The one place the enclave calls into the kernel with raw pointers.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::EvidenceError;

/// Opens `device` read-write and issues `request` with `arg`, a pointer to the request
/// structure that the caller keeps alive and correctly laid out for `request`.
pub(super) fn ioctl(
    device: &Path,
    request: u64,
    arg: *mut libc::c_void,
) -> Result<(), EvidenceError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map_err(|source| EvidenceError::Io {
            what: "guest device",
            path: device.to_owned(),
            source,
        })?;
    // SAFETY: `file` is an open descriptor for the duration of the call, and the callers
    // in this module pass `arg` pointing at a live `#[repr(C)]` structure of the size the
    // request number encodes (asserted in their tests), whose embedded pointers refer to
    // buffers that also outlive the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request as libc::c_ulong, arg) };
    if rc < 0 {
        return Err(EvidenceError::Io {
            what: "guest request (ioctl)",
            path: device.to_owned(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}
