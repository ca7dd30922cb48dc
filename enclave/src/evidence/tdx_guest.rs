//! `/dev/tdx_guest`: TDX_CMD_GET_REPORT0 (Linux `uapi/linux/tdx-guest.h`).
//!
//! This yields a TDREPORT, which only the local platform can verify; a remotely
//! verifiable quote comes from configfs-tsm (the kernel asks the quoting service). The
//! provider uses the TDREPORT to check that the device answers and to expose the TD's
//! measurements locally.

use std::path::Path;

use super::sev_guest::iowr;
use super::{EvidenceError, Platform, RawEvidence};

/// The guest device.
pub const DEVICE: &str = "/dev/tdx_guest";

/// Size of a TDREPORT.
pub const TDREPORT_LEN: usize = 1024;

/// `struct tdx_report_req`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ReportReq {
    /// REPORTDATA.
    pub reportdata: [u8; 64],
    /// The TDREPORT the kernel writes.
    pub tdreport: [u8; TDREPORT_LEN],
}

/// TDX_CMD_GET_REPORT0.
pub const TDX_CMD_GET_REPORT0: u64 = iowr(b'T', 1, std::mem::size_of::<ReportReq>());

/// Asks `/dev/tdx_guest` (at `device`) for a TDREPORT with `report_data`.
pub fn get_tdreport(device: &Path, report_data: &[u8; 64]) -> Result<RawEvidence, EvidenceError> {
    let mut req = ReportReq {
        reportdata: *report_data,
        tdreport: [0; TDREPORT_LEN],
    };
    super::sys::ioctl(
        device,
        TDX_CMD_GET_REPORT0,
        std::ptr::addr_of_mut!(req).cast(),
    )?;
    if req.tdreport.iter().all(|b| *b == 0) {
        return Err(EvidenceError::Malformed("the TDREPORT is all zeros".into()));
    }
    Ok(RawEvidence {
        platform: Platform::TdxReport,
        evidence: req.tdreport.to_vec(),
        certificates: None,
    })
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn structure_and_ioctl_match_the_kernel() {
        assert_eq!(size_of::<ReportReq>(), 1088);
        assert_eq!(offset_of!(ReportReq, tdreport), 64);
        // _IOWR('T', 1, struct tdx_report_req)
        assert_eq!(TDX_CMD_GET_REPORT0, 0xC440_5401);
    }

    #[test]
    fn missing_device_is_a_clear_error() {
        let e = get_tdreport(Path::new("/nonexistent/tdx_guest"), &[0; 64]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/tdx_guest"), "{e}");
    }
}
