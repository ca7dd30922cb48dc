//! Intel TDX measurements of a TDVF (OVMF) + kernel + initrd + command line guest.
//!
//! **MRTD** is one SHA-384 over the buffers that the TDX module hashes while the VMM builds
//! the TD (Intel TDX Module ABI spec, TDH.MEM.PAGE.ADD and TDH.MR.EXTEND): for every page
//! the VMM adds, a 128-byte buffer `"MEM.PAGE.ADD"` ‖ GPA; for every 256-byte chunk it
//! extends, a 128-byte buffer `"MR.EXTEND"` ‖ GPA followed by the chunk. Which pages are
//! added and extended comes from the TDVF metadata in the firmware (TDVF design guide,
//! "TDVF metadata"): every section is added (its pages in order), and sections with the
//! MR.EXTEND attribute (OVMF's boot firmware volume) are also extended. Upstream KVM
//! (`KVM_TDX_INIT_MEM_REGION`) extends each page right after adding it
//! ([`PageOrder::PerPage`]); older TDX stacks added a whole section first
//! ([`PageOrder::PerSection`]).
//!
//! **RTMRs** are extended by software: RTMR[i] ← SHA-384(RTMR[i] ‖ digest). For QEMU direct
//! kernel boot with TDVF and a Linux EFI-stub kernel (see `docs/measurement.md`):
//!
//! * RTMR0 (PCR 1, 7): TDVF's configuration — the TD HOB, the ACPI tables QEMU generates,
//!   the variable store, boot variables. It depends on the VMM version, machine type,
//!   memory size, vCPU count and devices, so silk takes it as a value recorded per VMM
//!   configuration rather than predicting it.
//! * RTMR1 (PCR 2–6): the kernel's PE/COFF Authenticode SHA-384 as OVMF loads it (QEMU
//!   patches the bzImage setup header first: [`crate::pe::qemu_patch_bzimage`]), then
//!   "Calling EFI Application from Boot Option", the separator, and the two
//!   ExitBootServices actions.
//! * RTMR2 (PCR 8–15): the EFI stub measures the load options (the command line as OVMF's
//!   X86QemuLoadImageLib builds it, UTF-16 with ` initrd=initrd` appended when there is an
//!   initrd, NUL-ended), then the initrd it loads. Only kernels whose EFI stub measures
//!   through the EFI CC measurement protocol (recent Linux, about 6.9 on) do this.

use crate::ovmf::{self, le_u32, le_u64, OvmfError, OvmfTable};
use crate::pe::{self, PeError, QemuMemory};
use sha2::{Digest, Sha384};

/// A 48-byte TDX measurement register.
pub type Mr = [u8; 48];

/// Section attribute: the pages are MR.EXTENDed into MRTD.
pub const ATTR_MR_EXTEND: u32 = 0x1;
/// Section attribute: the pages are added after boot (TDH.MEM.PAGE.AUG), not measured.
pub const ATTR_PAGE_AUG: u32 = 0x2;
const PAGE: u64 = 4096;
/// At most 4 GiB of measured pages.
const MAX_PAGES: u64 = 1 << 20;

/// What prevents computing a TDX measurement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TdxError {
    /// The firmware's GUIDed table is unusable.
    #[error("firmware: {0}")]
    Ovmf(#[from] OvmfError),
    /// The TDVF metadata header is malformed.
    #[error("TDVF metadata: {0}")]
    Metadata(&'static str),
    /// A section does not fit the image or is not page-aligned.
    #[error("TDVF section {index} is invalid: {why}")]
    Section {
        /// Position in the metadata.
        index: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// The kernel could not be parsed or patched.
    #[error("kernel: {0}")]
    Kernel(#[from] PeError),
}

/// TDVF section types (TDVF design guide, table "TDVF_SECTION").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TdvfSectionType {
    /// Boot firmware volume (0): code, measured into MRTD.
    Bfv,
    /// Configuration firmware volume (1): UEFI variables, measured into RTMR0 by TDVF.
    Cfv,
    /// TD hand-off block (2), written by the VMM.
    TdHob,
    /// Temporary memory (3).
    TempMem,
    /// Permanent memory (4).
    PermMem,
    /// Payload (5).
    Payload,
    /// Payload parameters (6).
    PayloadParam,
    /// A type this code does not know; measured by its attributes all the same.
    Other(u32),
}

/// One TDVF metadata section (`TDVF_SECTION`, 32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdvfSection {
    /// Offset of the section's bytes in the firmware file.
    pub data_offset: u32,
    /// Bytes in the file (the rest of the memory is zeros).
    pub raw_data_size: u32,
    /// Guest physical address.
    pub memory_address: u64,
    /// Bytes of guest memory.
    pub memory_data_size: u64,
    /// Section type.
    pub kind: TdvfSectionType,
    /// Attributes ([`ATTR_MR_EXTEND`], [`ATTR_PAGE_AUG`]).
    pub attributes: u32,
}

/// Parses the TDVF metadata (`"TDVF"`, length, version 1, count, sections) of an image.
pub fn tdvf_sections(image: &[u8]) -> Result<Vec<TdvfSection>, TdxError> {
    let table = OvmfTable::parse(image)?;
    let from_end = table.u32_at(&ovmf::TDX_METADATA_GUID, "TDX metadata", 0)? as usize;
    let start = image
        .len()
        .checked_sub(from_end)
        .ok_or(TdxError::Metadata("offset is past the start of the image"))?;
    let header = image
        .get(start..start.saturating_add(16))
        .ok_or(TdxError::Metadata("header is cut off"))?;
    if &header[..4] != b"TDVF" {
        return Err(TdxError::Metadata("signature is not TDVF"));
    }
    let len = le_u32(&header[4..8]) as usize;
    if le_u32(&header[8..12]) != 1 {
        return Err(TdxError::Metadata("version is not 1"));
    }
    let count = le_u32(&header[12..16]) as usize;
    let body = image
        .get(start + 16..start.saturating_add(len))
        .ok_or(TdxError::Metadata("length runs past the end of the image"))?;
    if count.checked_mul(32).is_none_or(|n| n > body.len()) {
        return Err(TdxError::Metadata("more sections than its length holds"));
    }
    let mut out = Vec::with_capacity(count);
    let mut pages = 0u64;
    for (index, d) in body.chunks_exact(32).take(count).enumerate() {
        let s = TdvfSection {
            data_offset: le_u32(&d[0..4]),
            raw_data_size: le_u32(&d[4..8]),
            memory_address: le_u64(&d[8..16]),
            memory_data_size: le_u64(&d[16..24]),
            kind: match le_u32(&d[24..28]) {
                0 => TdvfSectionType::Bfv,
                1 => TdvfSectionType::Cfv,
                2 => TdvfSectionType::TdHob,
                3 => TdvfSectionType::TempMem,
                4 => TdvfSectionType::PermMem,
                5 => TdvfSectionType::Payload,
                6 => TdvfSectionType::PayloadParam,
                t => TdvfSectionType::Other(t),
            },
            attributes: le_u32(&d[28..32]),
        };
        check_section(image, index, &s)?;
        // Real TDVF measures about a thousand pages; bound the work a bad image can ask for.
        pages += s.memory_data_size / PAGE;
        if pages > MAX_PAGES {
            return Err(TdxError::Section {
                index,
                why: "sections add up to more than 4 GiB of pages",
            });
        }
        out.push(s);
    }
    Ok(out)
}

fn check_section(image: &[u8], index: usize, s: &TdvfSection) -> Result<(), TdxError> {
    let bad = |why| Err(TdxError::Section { index, why });
    if !s.memory_address.is_multiple_of(PAGE) || !s.memory_data_size.is_multiple_of(PAGE) {
        return bad("memory address or size is not page-aligned");
    }
    if u64::from(s.raw_data_size) > s.memory_data_size {
        return bad("more file bytes than memory");
    }
    if (s.data_offset as usize).saturating_add(s.raw_data_size as usize) > image.len() {
        return bad("file bytes run past the end of the image");
    }
    // QEMU maps extended firmware volumes straight from the image; what it would extend
    // past the file bytes is not something to guess at.
    if s.attributes & ATTR_MR_EXTEND != 0 && u64::from(s.raw_data_size) != s.memory_data_size {
        return bad("an MR.EXTEND section must have as many file bytes as memory");
    }
    if s.memory_address.checked_add(s.memory_data_size).is_none() {
        return bad("memory range overflows");
    }
    Ok(())
}

/// In which order the VMM adds and extends a section's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageOrder {
    /// Each page is added, then its 16 chunks extended (upstream KVM and QEMU ≥ 10.1).
    #[default]
    PerPage,
    /// All pages of a section are added, then all of them extended (older TDX stacks).
    PerSection,
}

fn page_add(h: &mut Sha384, gpa: u64) {
    let mut buf = [0u8; 128];
    buf[..12].copy_from_slice(b"MEM.PAGE.ADD");
    buf[16..24].copy_from_slice(&gpa.to_le_bytes());
    h.update(buf);
}

fn mr_extend(h: &mut Sha384, gpa: u64, page: &[u8]) {
    for (i, chunk) in page.chunks_exact(256).enumerate() {
        let mut buf = [0u8; 128];
        buf[..9].copy_from_slice(b"MR.EXTEND");
        buf[16..24].copy_from_slice(&(gpa + 256 * i as u64).to_le_bytes());
        h.update(buf);
        h.update(chunk);
    }
}

/// A section's page `i` as guest memory: file bytes, then zeros (only unextended sections,
/// whose contents are not hashed, can be shorter in the file than in memory).
fn section_page(image: &[u8], s: &TdvfSection, i: u64) -> [u8; 4096] {
    let mut page = [0u8; 4096];
    let start = i * PAGE;
    let raw = u64::from(s.raw_data_size);
    if start < raw {
        let n = (raw - start).min(PAGE) as usize;
        let from = s.data_offset as usize + start as usize;
        page[..n].copy_from_slice(&image[from..from + n]);
    }
    page
}

/// Predicts MRTD for a TDVF firmware image.
pub fn mrtd(ovmf: &[u8], order: PageOrder) -> Result<Mr, TdxError> {
    let sections = tdvf_sections(ovmf)?;
    let mut h = Sha384::new();
    for s in sections
        .iter()
        .filter(|s| s.attributes & ATTR_PAGE_AUG == 0)
    {
        let pages = s.memory_data_size / PAGE;
        let extend = s.attributes & ATTR_MR_EXTEND != 0;
        for i in 0..pages {
            page_add(&mut h, s.memory_address + i * PAGE);
            if extend && order == PageOrder::PerPage {
                mr_extend(
                    &mut h,
                    s.memory_address + i * PAGE,
                    &section_page(ovmf, s, i),
                );
            }
        }
        if extend && order == PageOrder::PerSection {
            for i in 0..pages {
                mr_extend(
                    &mut h,
                    s.memory_address + i * PAGE,
                    &section_page(ovmf, s, i),
                );
            }
        }
    }
    Ok(h.finalize().into())
}

/// RTMR[i] ← SHA-384(RTMR[i] ‖ digest), from zero, over a list of event digests.
pub fn replay(digests: &[Mr]) -> Mr {
    digests.iter().fold([0u8; 48], |mr, d| {
        Sha384::new()
            .chain_update(mr)
            .chain_update(d)
            .finalize()
            .into()
    })
}

/// SHA-384 of some bytes, as an event digest.
pub fn sha384(data: &[u8]) -> Mr {
    Sha384::digest(data).into()
}

/// The inputs of a QEMU direct kernel boot under TDX.
#[derive(Debug, Clone)]
pub struct DirectBoot<'a> {
    /// The kernel file (`-kernel`), a bzImage with an EFI stub.
    pub kernel: &'a [u8],
    /// The initrd (`-initrd`), if any.
    pub initrd: Option<&'a [u8]>,
    /// The command line (`-append`).
    pub cmdline: &'a str,
    /// The guest memory layout QEMU uses to place the initrd (it writes the address into
    /// the kernel header, so it changes the kernel's measured hash).
    pub memory: QemuMemory,
}

/// The event digests TDVF and the EFI stub extend into RTMR1 and RTMR2, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmrEvents {
    /// RTMR1's events.
    pub rtmr1: Vec<Mr>,
    /// RTMR2's events.
    pub rtmr2: Vec<Mr>,
}

/// One event a direct kernel boot extends into RTMR1 or RTMR2, with what it measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedEvent {
    /// The register: 1 or 2.
    pub rtmr: usize,
    /// What it measures (`kernel`, `initrd`, `command line`, or the firmware's action).
    pub component: &'static str,
    /// Its SHA-384 digest.
    pub digest: Mr,
}

/// Lists the RTMR1 and RTMR2 events of a direct kernel boot with what each measures, in
/// the order the firmware and the EFI stub extend them (see the module's docs).
pub fn direct_boot_named_events(boot: &DirectBoot<'_>) -> Result<Vec<NamedEvent>, TdxError> {
    let initrd_size = boot.initrd.map(|i| i.len());
    let kernel = pe::qemu_patch_bzimage(boot.kernel, initrd_size, boot.cmdline, boot.memory)?;
    let kernel_hash = pe::authenticode_sha384(&kernel)?;
    let ev = |rtmr, component, digest| NamedEvent {
        rtmr,
        component,
        digest,
    };
    let mut out = vec![
        ev(1, "kernel", kernel_hash),
        ev(
            1,
            "boot option action",
            sha384(b"Calling EFI Application from Boot Option"),
        ),
        ev(1, "separator", sha384(&[0u8; 4])), // EV_SEPARATOR
        ev(
            1,
            "exit boot services action",
            sha384(b"Exit Boot Services Invocation"),
        ),
        ev(
            1,
            "exit boot services returned action",
            sha384(b"Exit Boot Services Returned with Success"),
        ),
    ];
    // OVMF passes no load options at all when there is neither a command line nor an
    // initrd, and the stub then measures none.
    if !boot.cmdline.is_empty() || boot.initrd.is_some() {
        out.push(ev(
            2,
            "command line",
            sha384(&load_options(boot.cmdline, boot.initrd.is_some())),
        ));
    }
    if let Some(initrd) = boot.initrd {
        out.push(ev(2, "initrd", sha384(initrd)));
    }
    Ok(out)
}

/// Lists the RTMR1 and RTMR2 event digests of a direct kernel boot.
pub fn direct_boot_events(boot: &DirectBoot<'_>) -> Result<RtmrEvents, TdxError> {
    let named = direct_boot_named_events(boot)?;
    let of = |r| {
        named
            .iter()
            .filter(|e| e.rtmr == r)
            .map(|e| e.digest)
            .collect()
    };
    Ok(RtmrEvents {
        rtmr1: of(1),
        rtmr2: of(2),
    })
}

/// The kernel's LoadOptions as OVMF's X86QemuLoadImageLib builds them: the command line
/// (plus ` initrd=initrd` when QEMU has an initrd) in UTF-16LE with a NUL terminator.
pub fn load_options(cmdline: &str, has_initrd: bool) -> Vec<u8> {
    let suffix = if has_initrd { " initrd=initrd" } else { "" };
    format!("{cmdline}{suffix}\0")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// Predicted RTMR1 and RTMR2 of a direct kernel boot.
pub fn rtmrs(boot: &DirectBoot<'_>) -> Result<(Mr, Mr), TdxError> {
    let ev = direct_boot_events(boot)?;
    Ok((replay(&ev.rtmr1), replay(&ev.rtmr2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_buffers_follow_the_module_spec() {
        let mut h = Sha384::new();
        page_add(&mut h, 0xffe2_0000);
        let mut want = [0u8; 128];
        want[..12].copy_from_slice(b"MEM.PAGE.ADD");
        want[16..24].copy_from_slice(&[0, 0, 0xe2, 0xff, 0, 0, 0, 0]);
        assert_eq!(<[u8; 48]>::from(h.finalize()), sha384(&want));

        let page = [3u8; 4096];
        let mut h = Sha384::new();
        mr_extend(&mut h, 0x1000, &page);
        let mut want = Vec::new();
        for i in 0..16u64 {
            let mut b = [0u8; 128];
            b[..9].copy_from_slice(b"MR.EXTEND");
            b[16..24].copy_from_slice(&(0x1000 + 256 * i).to_le_bytes());
            want.extend_from_slice(&b);
            want.extend_from_slice(&[3u8; 256]);
        }
        assert_eq!(<[u8; 48]>::from(h.finalize()), sha384(&want));
    }

    #[test]
    fn replay_extends_from_zero() {
        let d = sha384(b"x");
        let mut buf = [0u8; 96];
        buf[48..].copy_from_slice(&d);
        assert_eq!(replay(&[d]), sha384(&buf));
        assert_eq!(replay(&[]), [0u8; 48]);
    }

    fn section(raw: u32, mem: u64, attributes: u32) -> TdvfSection {
        TdvfSection {
            data_offset: 0,
            raw_data_size: raw,
            memory_address: 0x10_0000,
            memory_data_size: mem,
            kind: TdvfSectionType::Bfv,
            attributes,
        }
    }

    #[test]
    fn section_checks() {
        let image = [0u8; 0x3000];
        assert!(check_section(&image, 0, &section(0x2000, 0x2000, ATTR_MR_EXTEND)).is_ok());
        assert!(check_section(&image, 0, &section(0x1000, 0x2000, 0)).is_ok());
        let err = check_section(&image, 3, &section(0x1000, 0x2000, ATTR_MR_EXTEND));
        assert!(matches!(err, Err(TdxError::Section { index: 3, .. })));
        assert!(check_section(&image, 0, &section(0x4000, 0x4000, 0)).is_err());
        assert!(check_section(&image, 0, &section(0, 0x1001, 0)).is_err());
        let mut s = section(0, 0x1000, 0);
        s.memory_address = u64::MAX - 0xfff;
        assert!(check_section(&image, 0, &s).is_err());
    }

    #[test]
    fn non_bzimage_kernel_is_an_error() {
        let boot = |cmdline, initrd| DirectBoot {
            kernel: &[],
            initrd,
            cmdline,
            memory: QemuMemory::q35(1 << 30),
        };
        // The kernel is not a bzImage; the error says so rather than panicking.
        assert!(matches!(
            direct_boot_events(&boot("", None)),
            Err(TdxError::Kernel(PeError::NotBzImage(_)))
        ));
    }

    #[test]
    fn load_options_utf16() {
        assert_eq!(load_options("a", false), vec![b'a', 0, 0, 0]);
        let with = load_options("ro", true);
        assert_eq!(with.len(), 2 * ("ro initrd=initrd".len() + 1));
        assert_eq!(&with[..6], &[b'r', 0, b'o', 0, b' ', 0]);
    }
}
