//! `/dev/sev-guest`: SNP_GET_REPORT and SNP_GET_EXT_REPORT (Linux `uapi/linux/sev-guest.h`).
//!
//! The request and response structures are laid out exactly as the kernel's (`#[repr(C)]`,
//! sizes and offsets asserted in tests), the ioctl numbers are computed with the kernel's
//! `_IOWR` formula, and the firmware's MSG_REPORT_RSP (status, size, report) and the
//! extended report's certificate table (GUID, offset, length entries) are parsed by pure
//! functions. Only [`get_report`] and [`get_ext_report`] touch the device.

use std::path::Path;

use super::{EvidenceError, Platform, RawEvidence};

/// The guest device.
pub const DEVICE: &str = "/dev/sev-guest";

/// The kernel's `_IOWR(type, nr, size)`.
pub const fn iowr(ty: u8, nr: u8, size: usize) -> u64 {
    const READ_WRITE: u64 = 3;
    (READ_WRITE << 30) | ((size as u64) << 16) | ((ty as u64) << 8) | nr as u64
}

/// `struct snp_guest_request_ioctl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestRequestIoctl {
    /// Message version (1).
    pub msg_version: u8,
    /// Address of the request structure.
    pub req_data: u64,
    /// Address of the response structure.
    pub resp_data: u64,
    /// Firmware error (low 32 bits) and VMM error (high 32 bits).
    pub exitinfo2: u64,
}

/// `struct snp_report_req`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ReportReq {
    /// REPORT_DATA.
    pub user_data: [u8; 64],
    /// The VMPL the report is requested for.
    pub vmpl: u32,
    /// Must be zero.
    pub rsvd: [u8; 28],
}

/// `struct snp_ext_report_req`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExtReportReq {
    /// The report request.
    pub data: ReportReq,
    /// Address of the page-aligned certificate buffer.
    pub certs_address: u64,
    /// Its length; on `SNP_GUEST_VMM_ERR_INVALID_LEN` the kernel writes the size needed.
    pub certs_len: u32,
}

/// `struct snp_report_resp`: the firmware's response message.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ReportResp {
    /// MSG_REPORT_RSP.
    pub data: [u8; 4000],
}

/// SNP_GET_REPORT.
pub const SNP_GET_REPORT: u64 = iowr(b'S', 0x0, std::mem::size_of::<GuestRequestIoctl>());
/// SNP_GET_EXT_REPORT.
pub const SNP_GET_EXT_REPORT: u64 = iowr(b'S', 0x2, std::mem::size_of::<GuestRequestIoctl>());

/// The VMM's "certificate buffer too small" error (high half of `exitinfo2`).
pub const VMM_ERR_INVALID_LEN: u32 = 1;

const REPORT_LEN: usize = 1184;

/// Extracts the attestation report from MSG_REPORT_RSP (SNP ABI: status u32, report size
/// u32, 24 reserved bytes, then the report).
pub fn parse_report_response(resp: &[u8]) -> Result<Vec<u8>, EvidenceError> {
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(resp.get(at..at + 4)?.try_into().ok()?))
    };
    let status =
        u32_at(0).ok_or_else(|| EvidenceError::Malformed("short MSG_REPORT_RSP".into()))?;
    if status != 0 {
        return Err(EvidenceError::Firmware {
            code: status,
            meaning: match status {
                0x16 => "INVALID_PARAM",
                0x27 => "INVALID_KEY",
                _ => "unknown",
            },
        });
    }
    let size = u32_at(4).unwrap_or(0) as usize;
    if size != REPORT_LEN {
        return Err(EvidenceError::Malformed(format!(
            "MSG_REPORT_RSP says the report is {size} bytes, expected {REPORT_LEN}"
        )));
    }
    resp.get(0x20..0x20 + size)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| EvidenceError::Malformed("MSG_REPORT_RSP shorter than its report".into()))
}

/// A certificate in the extended report's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// The chip's VCEK.
    Vcek,
    /// A VLEK.
    Vlek,
    /// The AMD signing key.
    Ask,
    /// The AMD root key.
    Ark,
    /// A GUID this code does not know.
    Other([u8; 16]),
}

// GUIDs of the GHCB specification's certificate table, in their byte order on the wire.
const GUIDS: [(CertKind, &str); 4] = [
    (CertKind::Vcek, "63da758d-e664-4564-adc5-f4b93be8accd"),
    (CertKind::Vlek, "a8074bc2-a25a-483e-aae6-39c045a0b8a1"),
    (CertKind::Ask, "4ab7b379-bbac-4fe4-a02f-05aef327c782"),
    (CertKind::Ark, "c0b406a4-a803-4952-9743-3fb6014cd0ae"),
];

/// The 16 wire bytes of a GUID written `aabbccdd-eeff-gghh-iijj-kkllmmnnoopp` (the first
/// three groups little-endian, as EFI GUIDs are).
pub fn guid_bytes(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let raw = hex::decode(hex).ok()?;
    let raw: [u8; 16] = raw.try_into().ok()?;
    let mut out = raw;
    out[0..4].reverse();
    out[4..6].reverse();
    out[6..8].reverse();
    Some(out)
}

/// Parses the certificate table of an extended report (or configfs-tsm `auxblob`):
/// entries of GUID (16), offset (u32), length (u32), ended by an all-zero entry; offsets
/// are from the start of the table.
pub fn parse_cert_table(table: &[u8]) -> Result<Vec<(CertKind, Vec<u8>)>, EvidenceError> {
    let bad = |why: String| EvidenceError::Malformed(format!("certificate table: {why}"));
    let mut out = Vec::new();
    for i in 0.. {
        let at = i * 24;
        let entry = table
            .get(at..at + 24)
            .ok_or_else(|| bad("no terminating entry".into()))?;
        if entry.iter().all(|b| *b == 0) {
            return Ok(out);
        }
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&entry[..16]);
        let offset = u32::from_le_bytes([entry[16], entry[17], entry[18], entry[19]]) as usize;
        let len = u32::from_le_bytes([entry[20], entry[21], entry[22], entry[23]]) as usize;
        let data = offset
            .checked_add(len)
            .and_then(|end| table.get(offset..end))
            .ok_or_else(|| bad(format!("entry {i} points outside the table")))?;
        let kind = GUIDS
            .iter()
            .find(|(_, g)| guid_bytes(g) == Some(guid))
            .map_or(CertKind::Other(guid), |(k, _)| *k);
        out.push((kind, data.to_vec()));
    }
    Ok(out)
}

fn request_bytes(report_data: &[u8; 64], vmpl: u32) -> ReportReq {
    ReportReq {
        user_data: *report_data,
        vmpl,
        rsvd: [0; 28],
    }
}

/// Asks `/dev/sev-guest` (at `device`) for a report with `report_data` at `vmpl`.
pub fn get_report(
    device: &Path,
    report_data: &[u8; 64],
    vmpl: u32,
) -> Result<RawEvidence, EvidenceError> {
    let mut req = request_bytes(report_data, vmpl);
    let mut resp = ReportResp { data: [0; 4000] };
    let mut ioctl = GuestRequestIoctl {
        msg_version: 1,
        req_data: std::ptr::addr_of_mut!(req) as u64,
        resp_data: std::ptr::addr_of_mut!(resp) as u64,
        exitinfo2: 0,
    };
    super::sys::ioctl(device, SNP_GET_REPORT, std::ptr::addr_of_mut!(ioctl).cast())?;
    let report = parse_report_response(&resp.data)?;
    Ok(RawEvidence {
        platform: Platform::SevSnp,
        evidence: report,
        certificates: None,
    })
}

/// Asks for an extended report: the report plus the host-supplied certificate table.
pub fn get_ext_report(
    device: &Path,
    report_data: &[u8; 64],
    vmpl: u32,
) -> Result<RawEvidence, EvidenceError> {
    let mut certs_len: usize = 4 * 4096;
    loop {
        // The kernel wants a page-aligned, page-multiple buffer.
        let mut pages = vec![[0u8; 4096]; certs_len / 4096];
        let mut req = ExtReportReq {
            data: request_bytes(report_data, vmpl),
            certs_address: pages.as_mut_ptr() as u64,
            certs_len: certs_len as u32,
        };
        let mut resp = ReportResp { data: [0; 4000] };
        let mut ioctl = GuestRequestIoctl {
            msg_version: 1,
            req_data: std::ptr::addr_of_mut!(req) as u64,
            resp_data: std::ptr::addr_of_mut!(resp) as u64,
            exitinfo2: 0,
        };
        let r = super::sys::ioctl(
            device,
            SNP_GET_EXT_REPORT,
            std::ptr::addr_of_mut!(ioctl).cast(),
        );
        let vmm_error = (ioctl.exitinfo2 >> 32) as u32;
        if r.is_err() && vmm_error == VMM_ERR_INVALID_LEN && (req.certs_len as usize) > certs_len {
            certs_len = (req.certs_len as usize).div_ceil(4096) * 4096;
            continue;
        }
        r?;
        let report = parse_report_response(&resp.data)?;
        let table: Vec<u8> = pages.concat();
        return Ok(RawEvidence {
            platform: Platform::SevSnp,
            evidence: report,
            certificates: Some(table).filter(|t| t.iter().any(|b| *b != 0)),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn structures_match_the_kernel_abi() {
        assert_eq!(size_of::<GuestRequestIoctl>(), 32);
        assert_eq!(offset_of!(GuestRequestIoctl, req_data), 8);
        assert_eq!(offset_of!(GuestRequestIoctl, resp_data), 16);
        assert_eq!(offset_of!(GuestRequestIoctl, exitinfo2), 24);
        assert_eq!(size_of::<ReportReq>(), 96);
        assert_eq!(offset_of!(ReportReq, vmpl), 64);
        assert_eq!(size_of::<ExtReportReq>(), 112);
        assert_eq!(offset_of!(ExtReportReq, certs_address), 96);
        assert_eq!(offset_of!(ExtReportReq, certs_len), 104);
        assert_eq!(size_of::<ReportResp>(), 4000);
    }

    #[test]
    fn ioctl_numbers_match_the_kernel() {
        // From linux/sev-guest.h: _IOWR('S', 0x0, struct snp_guest_request_ioctl) etc.
        assert_eq!(SNP_GET_REPORT, 0xC020_5300);
        assert_eq!(SNP_GET_EXT_REPORT, 0xC020_5302);
    }

    fn response(status: u32, size: u32) -> Vec<u8> {
        let mut r = vec![0u8; 4000];
        r[0..4].copy_from_slice(&status.to_le_bytes());
        r[4..8].copy_from_slice(&size.to_le_bytes());
        for (i, b) in r[0x20..0x20 + 1184].iter_mut().enumerate() {
            *b = i as u8;
        }
        r
    }

    #[test]
    fn report_response_is_parsed_and_checked() {
        let report = parse_report_response(&response(0, 1184)).unwrap();
        assert_eq!(report.len(), 1184);
        assert_eq!(report[5], 5);
        let e = parse_report_response(&response(0x16, 1184)).unwrap_err();
        assert!(e.to_string().contains("INVALID_PARAM"), "{e}");
        assert!(parse_report_response(&response(0, 1000)).is_err());
        assert!(parse_report_response(&[0; 3]).is_err());
    }

    #[test]
    fn certificate_table_is_parsed() {
        let vcek = b"VCEK-DER".to_vec();
        let ask = b"ASK".to_vec();
        let mut table = Vec::new();
        let header = 3 * 24;
        for (guid, off, data) in [
            (GUIDS[0].1, header, &vcek),
            (GUIDS[2].1, header + vcek.len(), &ask),
        ] {
            table.extend_from_slice(&guid_bytes(guid).unwrap());
            table.extend_from_slice(&(off as u32).to_le_bytes());
            table.extend_from_slice(&(data.len() as u32).to_le_bytes());
        }
        table.extend_from_slice(&[0; 24]);
        table.extend_from_slice(&vcek);
        table.extend_from_slice(&ask);
        let certs = parse_cert_table(&table).unwrap();
        assert_eq!(
            certs,
            vec![(CertKind::Vcek, vcek.clone()), (CertKind::Ask, ask)]
        );
        // An entry pointing past the end, or no terminator, is an error.
        let mut bad = table.clone();
        bad[20] = 0xff;
        assert!(parse_cert_table(&bad).is_err());
        assert!(parse_cert_table(&table[..24]).is_err());
    }

    #[test]
    fn guid_bytes_are_efi_ordered() {
        let g = guid_bytes("63da758d-e664-4564-adc5-f4b93be8accd").unwrap();
        assert_eq!(&g[..4], &[0x8d, 0x75, 0xda, 0x63]);
        assert_eq!(&g[8..], &[0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd]);
    }

    #[test]
    fn missing_device_is_a_clear_error() {
        let e = get_report(Path::new("/nonexistent/sev-guest"), &[0; 64], 0).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/sev-guest"), "{e}");
    }
}
