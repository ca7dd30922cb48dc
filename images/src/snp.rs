//! The AMD SEV-SNP launch digest of an OVMF + kernel + initrd + command line guest.
//!
//! The launch digest (report field MEASUREMENT) is a chain of SHA-384 over PAGE_INFO
//! structures (SEV-SNP ABI spec, "SNP_LAUNCH_UPDATE", PAGE_INFO layout), one per page the
//! VMM launches, in launch order:
//!
//! 1. every 4 KiB page of the firmware image, mapped to end at 4 GiB (`Normal` pages);
//! 2. the sections of OVMF's SEV metadata, in table order: secure memory (`Zero`, or
//!    `Unmeasured` on GCE), the secrets page, the CPUID page (last on EC2), the SVSM CAA
//!    page, and the kernel-hashes page — a `Normal` page holding QEMU's SEV hashes table
//!    (SHA-256 of kernel, initrd and command line, `kernel-hashes=on`) or, without a
//!    kernel, `Zero` pages;
//! 3. one VMSA page per vCPU (the BSP's, then the APs' identical ones).
//!
//! This is an implementation of that procedure over bytes in memory, checked against
//! virtee's `sev` crate and `sev-snp-measure` (see `images/tests/snp.rs`).

mod vmsa;

pub use vmsa::{vmsa_page, VcpuType, VmmType, BSP_EIP, VCPU_TYPES};

use crate::ovmf::{self, le_u32, Guid, OvmfError, OvmfTable};
use sha2::{Digest, Sha256, Sha384};

/// A 48-byte SEV-SNP launch digest.
pub type LaunchDigest = [u8; 48];

/// SEV-SNP PAGE_INFO page types (SNP ABI spec, PAGE_TYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PageType {
    /// A page of data, measured by its SHA-384.
    Normal = 1,
    /// A VMSA page, measured by its SHA-384 at the VMSA GPA.
    Vmsa = 2,
    /// A page of zeros.
    Zero = 3,
    /// A page whose contents are not measured.
    Unmeasured = 4,
    /// The secrets page the firmware fills in.
    Secrets = 5,
    /// The CPUID page the firmware checks.
    Cpuid = 6,
}

/// The RMP records VMSA pages at GPA -1, page-aligned and cut to 52 bits.
const VMSA_GPA: u64 = 0x0000_ffff_ffff_f000;
const PAGE: usize = 4096;
const FOUR_GIB: u64 = 1 << 32;

/// What prevents predicting a launch digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnpError {
    /// The firmware's GUIDed table is unusable.
    #[error("firmware: {0}")]
    Ovmf(#[from] OvmfError),
    /// The firmware image is not a whole number of pages or does not fit below 4 GiB.
    #[error("firmware image is {0} bytes; it must be a non-empty multiple of 4096 up to 4 GiB")]
    FirmwareSize(usize),
    /// The SEV metadata header is malformed.
    #[error("SEV metadata: {0}")]
    Metadata(&'static str),
    /// The SEV metadata names a section type this code does not know.
    #[error("SEV metadata section {index} has unknown type {kind:#x}")]
    UnknownSection {
        /// Position in the metadata.
        index: usize,
        /// The type value.
        kind: u32,
    },
    /// A section's size is not a whole number of pages (or, for kernel hashes, not one).
    #[error("SEV metadata section at {gpa:#x} has size {size:#x}, not usable as {what}")]
    SectionSize {
        /// Section GPA.
        gpa: u32,
        /// Section size.
        size: u32,
        /// What the size had to be.
        what: &'static str,
    },
    /// A kernel was given but this firmware cannot measure one.
    #[error("a kernel was given but the firmware has no SNP kernel-hashes section (it is not an AmdSev build)")]
    NoKernelHashesSection,
    /// More than one vCPU but the firmware gives no AP reset vector.
    #[error("{0} vCPUs need an SEV-ES AP reset vector, and the firmware has none")]
    NoApResetVector(u32),
    /// Zero vCPUs.
    #[error("a guest needs at least one vCPU")]
    NoVcpus,
}

/// The SHA-256 hashes QEMU puts in the SEV hashes table for `-kernel/-initrd/-append`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SevHashes {
    /// SHA-256 of the kernel file as given to QEMU (QEMU does not patch it under SEV).
    pub kernel: [u8; 32],
    /// SHA-256 of the initrd (of nothing when there is none).
    pub initrd: [u8; 32],
    /// SHA-256 of the command line bytes and a terminating NUL, as QEMU passes them.
    pub cmdline: [u8; 32],
}

const HASH_TABLE_HEADER_GUID: Guid = Guid::new(
    0x9438d606,
    0x4f22,
    0x4cc9,
    [0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21],
);
const KERNEL_ENTRY_GUID: Guid = Guid::new(
    0x4de79437,
    0xabd2,
    0x427f,
    [0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b],
);
const INITRD_ENTRY_GUID: Guid = Guid::new(
    0x44baf731,
    0x3a2f,
    0x4bd7,
    [0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d],
);
const CMDLINE_ENTRY_GUID: Guid = Guid::new(
    0x97d02dd8,
    0xbd20,
    0x4c94,
    [0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a],
);
/// `SevHashTableEntry`: GUID, u16 length, SHA-256.
const ENTRY_LEN: usize = 16 + 2 + 32;
/// `SevHashTable`: GUID, u16 length, then cmdline, initrd, kernel entries.
const TABLE_LEN: usize = 16 + 2 + 3 * ENTRY_LEN;
/// QEMU pads the table to 16 bytes (`PaddedSevHashTable`).
pub const PADDED_TABLE_LEN: usize = (TABLE_LEN + 15) & !15;

impl SevHashes {
    /// Hashes a kernel, an optional initrd and an optional command line. The command line
    /// is taken byte for byte (QEMU does not trim it); `None` and `""` are the same.
    pub fn new(kernel: &[u8], initrd: Option<&[u8]>, cmdline: Option<&str>) -> SevHashes {
        let mut c = Sha256::new();
        c.update(cmdline.unwrap_or("").as_bytes());
        c.update([0u8]);
        SevHashes {
            kernel: Sha256::digest(kernel).into(),
            initrd: Sha256::digest(initrd.unwrap_or(&[])).into(),
            cmdline: c.finalize().into(),
        }
    }

    /// The padded table exactly as QEMU's `sev_add_kernel_loader_hashes` lays it out.
    pub fn table(&self) -> [u8; PADDED_TABLE_LEN] {
        let mut t = [0u8; PADDED_TABLE_LEN];
        t[..16].copy_from_slice(&HASH_TABLE_HEADER_GUID.0);
        t[16..18].copy_from_slice(&(TABLE_LEN as u16).to_le_bytes());
        let entries = [
            (CMDLINE_ENTRY_GUID, &self.cmdline),
            (INITRD_ENTRY_GUID, &self.initrd),
            (KERNEL_ENTRY_GUID, &self.kernel),
        ];
        for (i, (guid, hash)) in entries.iter().enumerate() {
            let at = 18 + i * ENTRY_LEN;
            t[at..at + 16].copy_from_slice(&guid.0);
            t[at + 16..at + 18].copy_from_slice(&(ENTRY_LEN as u16).to_le_bytes());
            t[at + 18..at + ENTRY_LEN].copy_from_slice(*hash);
        }
        t
    }
}

/// A section of OVMF's SEV metadata (edk2 `OvmfSevMetadata.asm`: u32 GPA, size, type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SevSection {
    /// Guest physical address.
    pub gpa: u32,
    /// Size in bytes.
    pub size: u32,
    /// What the VMM puts there.
    pub kind: SevSectionKind,
}

/// SEV metadata section types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SevSectionKind {
    /// Pre-validated memory the firmware uses before it can validate pages (1).
    SecMemory,
    /// The SNP secrets page (2).
    Secrets,
    /// The SNP CPUID page (3).
    Cpuid,
    /// The SVSM calling area (4).
    SvsmCaa,
    /// Where QEMU puts the SEV hashes table (0x10).
    KernelHashes,
}

/// The parts of an OVMF image that the SNP measurement needs.
#[derive(Debug, Clone)]
pub struct SevFirmware<'a> {
    image: &'a [u8],
    sections: Vec<SevSection>,
    ap_reset_eip: Option<u32>,
    hashes_table_gpa: Option<u32>,
}

impl<'a> SevFirmware<'a> {
    /// Parses the SEV metadata of an OVMF image.
    pub fn parse(image: &'a [u8]) -> Result<Self, SnpError> {
        if image.is_empty() || !image.len().is_multiple_of(PAGE) || image.len() as u64 > FOUR_GIB {
            return Err(SnpError::FirmwareSize(image.len()));
        }
        let table = OvmfTable::parse(image)?;
        // A zero EIP is how a firmware says it has no AP reset vector.
        let ap_reset_eip = table
            .u32_at(&ovmf::SEV_ES_RESET_BLOCK_GUID, "SEV-ES reset block", 0)
            .ok()
            .filter(|&eip| eip != 0);
        let hashes_table_gpa = table
            .u32_at(&ovmf::SEV_HASH_TABLE_RV_GUID, "SEV hash table", 0)
            .ok()
            .filter(|&gpa| gpa != 0);
        let meta_off = table.u32_at(&ovmf::SEV_METADATA_GUID, "SEV metadata", 0)? as usize;
        let sections = parse_metadata(image, meta_off)?;
        Ok(SevFirmware {
            image,
            sections,
            ap_reset_eip,
            hashes_table_gpa,
        })
    }

    /// The metadata sections, in launch order.
    pub fn sections(&self) -> &[SevSection] {
        &self.sections
    }

    /// The AP reset EIP from the SEV-ES reset block, if the firmware has one.
    pub fn ap_reset_eip(&self) -> Option<u32> {
        self.ap_reset_eip
    }

    /// Guest physical address of the first firmware byte (the image ends at 4 GiB).
    pub fn gpa(&self) -> u64 {
        FOUR_GIB - self.image.len() as u64
    }

    /// Whether a kernel can be measured (an AmdSev build with a kernel-hashes page).
    pub fn measures_kernel(&self) -> bool {
        self.sections
            .iter()
            .any(|s| s.kind == SevSectionKind::KernelHashes)
    }
}

/// Parses the `ASEV` header at `offset_from_end` and its section descriptors.
fn parse_metadata(image: &[u8], offset_from_end: usize) -> Result<Vec<SevSection>, SnpError> {
    let start = image
        .len()
        .checked_sub(offset_from_end)
        .ok_or(SnpError::Metadata(
            "header offset is past the start of the image",
        ))?;
    let header = image
        .get(start..start + 16)
        .ok_or(SnpError::Metadata("header is cut off"))?;
    if &header[..4] != b"ASEV" {
        return Err(SnpError::Metadata("signature is not ASEV"));
    }
    let size = le_u32(&header[4..8]) as usize;
    if le_u32(&header[8..12]) != 1 {
        return Err(SnpError::Metadata("version is not 1"));
    }
    let count = le_u32(&header[12..16]) as usize;
    let items = image
        .get(start + 16..start.saturating_add(size))
        .ok_or(SnpError::Metadata("size runs past the end of the image"))?;
    if count.checked_mul(12).is_none_or(|n| n > items.len()) {
        return Err(SnpError::Metadata("more sections than its size holds"));
    }
    items
        .chunks_exact(12)
        .take(count)
        .enumerate()
        .map(|(index, d)| {
            let kind = match le_u32(&d[8..12]) {
                1 => SevSectionKind::SecMemory,
                2 => SevSectionKind::Secrets,
                3 => SevSectionKind::Cpuid,
                4 => SevSectionKind::SvsmCaa,
                0x10 => SevSectionKind::KernelHashes,
                kind => return Err(SnpError::UnknownSection { index, kind }),
            };
            Ok(SevSection {
                gpa: le_u32(&d[0..4]),
                size: le_u32(&d[4..8]),
                kind,
            })
        })
        .collect()
}

/// The running launch digest (the firmware's GCTX.LD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gctx(pub LaunchDigest);

impl Gctx {
    /// Folds one PAGE_INFO into the digest: LD' = SHA-384(LD || contents || length 0x70 ||
    /// page type || IMI 0 || VMPL3..1 permissions 0 || reserved 0 || GPA).
    pub fn update(&mut self, page_type: PageType, gpa: u64, contents: &[u8; 48]) {
        let mut info = [0u8; 0x70];
        info[..48].copy_from_slice(&self.0);
        info[48..96].copy_from_slice(contents);
        info[96..98].copy_from_slice(&0x70u16.to_le_bytes());
        info[98] = page_type as u8;
        info[104..112].copy_from_slice(&gpa.to_le_bytes());
        self.0 = Sha384::digest(info).into();
    }

    /// Measures whole pages of data starting at `gpa` (caller checked the length).
    fn normal_pages(&mut self, gpa: u64, data: &[u8]) {
        for (i, page) in data.chunks_exact(PAGE).enumerate() {
            let h: [u8; 48] = Sha384::digest(page).into();
            self.update(PageType::Normal, gpa + (i * PAGE) as u64, &h);
        }
    }

    /// Measures `size` bytes of pages of a contentless type.
    fn empty_pages(&mut self, kind: PageType, s: &SevSection) -> Result<(), SnpError> {
        if !(s.size as usize).is_multiple_of(PAGE) {
            return Err(SnpError::SectionSize {
                gpa: s.gpa,
                size: s.size,
                what: "whole pages",
            });
        }
        for i in 0..s.size as u64 / PAGE as u64 {
            self.update(kind, u64::from(s.gpa) + i * PAGE as u64, &[0; 48]);
        }
        Ok(())
    }
}

/// Everything that determines an SEV-SNP launch digest.
#[derive(Debug, Clone)]
pub struct SnpInputs<'a> {
    /// The OVMF image (`-bios` / the whole firmware file).
    pub ovmf: &'a [u8],
    /// Hashes of `-kernel/-initrd/-append`; `None` when booting without a kernel.
    pub hashes: Option<SevHashes>,
    /// Number of vCPUs (`-smp`).
    pub vcpus: u32,
    /// The vCPU model (`-cpu`).
    pub vcpu_type: VcpuType,
    /// The VMM.
    pub vmm: VmmType,
    /// SEV_FEATURES in each VMSA (QEMU's default for SNP is 0x1, SNPActive; Linux 6.x
    /// hosts with debug-swap add 0x20).
    pub guest_features: u64,
}

/// The digest of the firmware pages alone: the seed a digest computation can resume from.
pub fn ovmf_digest(ovmf: &[u8]) -> Result<LaunchDigest, SnpError> {
    let fw = SevFirmware::parse(ovmf)?;
    let mut gctx = Gctx([0; 48]);
    gctx.normal_pages(fw.gpa(), ovmf);
    Ok(gctx.0)
}

/// Predicts the SEV-SNP launch digest (the attestation report's MEASUREMENT).
pub fn launch_digest(inputs: &SnpInputs<'_>) -> Result<LaunchDigest, SnpError> {
    let fw = SevFirmware::parse(inputs.ovmf)?;
    let mut gctx = Gctx([0; 48]);
    gctx.normal_pages(fw.gpa(), inputs.ovmf);
    measure_after_firmware(&fw, &mut gctx, inputs)?;
    Ok(gctx.0)
}

/// Steps 2 and 3: metadata sections then VMSAs.
fn measure_after_firmware(
    fw: &SevFirmware<'_>,
    gctx: &mut Gctx,
    inputs: &SnpInputs<'_>,
) -> Result<(), SnpError> {
    if inputs.vcpus == 0 {
        return Err(SnpError::NoVcpus);
    }
    if inputs.hashes.is_some() && !fw.measures_kernel() {
        return Err(SnpError::NoKernelHashesSection);
    }
    for s in fw.sections() {
        let gpa = u64::from(s.gpa);
        match s.kind {
            SevSectionKind::SecMemory if inputs.vmm == VmmType::Gce => {
                gctx.empty_pages(PageType::Unmeasured, s)?
            }
            SevSectionKind::SecMemory | SevSectionKind::SvsmCaa => {
                gctx.empty_pages(PageType::Zero, s)?
            }
            SevSectionKind::Secrets => gctx.update(PageType::Secrets, gpa, &[0; 48]),
            SevSectionKind::Cpuid if inputs.vmm != VmmType::Ec2 => {
                gctx.update(PageType::Cpuid, gpa, &[0; 48])
            }
            SevSectionKind::Cpuid => {}
            SevSectionKind::KernelHashes => match (&inputs.hashes, fw.hashes_table_gpa) {
                (Some(h), Some(table_gpa)) => {
                    // QEMU writes the table at the hash-table GPA's offset in this page.
                    let at = (table_gpa as usize) & (PAGE - 1);
                    if s.size as usize != PAGE || at + PADDED_TABLE_LEN > PAGE {
                        return Err(SnpError::SectionSize {
                            gpa: s.gpa,
                            size: s.size,
                            what: "one page holding the hashes table",
                        });
                    }
                    let mut page = [0u8; PAGE];
                    page[at..at + PADDED_TABLE_LEN].copy_from_slice(&h.table());
                    gctx.normal_pages(gpa, &page);
                }
                (Some(_), None) => return Err(SnpError::NoKernelHashesSection),
                (None, _) => gctx.empty_pages(PageType::Zero, s)?,
            },
        }
    }
    // EC2 launches the CPUID page after all the others.
    if inputs.vmm == VmmType::Ec2 {
        for s in fw
            .sections()
            .iter()
            .filter(|s| s.kind == SevSectionKind::Cpuid)
        {
            gctx.update(PageType::Cpuid, u64::from(s.gpa), &[0; 48]);
        }
    }
    let bsp = vmsa_page(BSP_EIP, inputs.guest_features, inputs.vcpu_type, inputs.vmm);
    let bsp_hash: [u8; 48] = Sha384::digest(bsp).into();
    gctx.update(PageType::Vmsa, VMSA_GPA, &bsp_hash);
    if inputs.vcpus > 1 {
        let eip = fw
            .ap_reset_eip
            .ok_or(SnpError::NoApResetVector(inputs.vcpus))?;
        let ap = vmsa_page(eip, inputs.guest_features, inputs.vcpu_type, inputs.vmm);
        let ap_hash: [u8; 48] = Sha384::digest(ap).into();
        for _ in 1..inputs.vcpus {
            gctx.update(PageType::Vmsa, VMSA_GPA, &ap_hash);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_table_layout() {
        let h = SevHashes::new(b"kernel", None, Some("console=ttyS0"));
        let t = h.table();
        assert_eq!(TABLE_LEN, 168);
        assert_eq!(PADDED_TABLE_LEN, 176);
        assert_eq!(&t[..16], &HASH_TABLE_HEADER_GUID.0);
        assert_eq!(&t[16..18], &168u16.to_le_bytes());
        assert_eq!(&t[18..34], &CMDLINE_ENTRY_GUID.0);
        assert_eq!(&t[34..36], &50u16.to_le_bytes());
        let cmd: [u8; 32] = Sha256::digest(b"console=ttyS0\0").into();
        assert_eq!(&t[36..68], &cmd);
        assert_eq!(&t[68..84], &INITRD_ENTRY_GUID.0);
        let empty: [u8; 32] = Sha256::digest(b"").into();
        assert_eq!(&t[86..118], &empty);
        assert_eq!(&t[118..134], &KERNEL_ENTRY_GUID.0);
        let kernel: [u8; 32] = Sha256::digest(b"kernel").into();
        assert_eq!(&t[136..168], &kernel);
        assert_eq!(&t[168..], &[0u8; 8]);
        // No command line is the empty one: just the NUL.
        assert_eq!(
            SevHashes::new(b"", None, None),
            SevHashes::new(b"", Some(b""), Some(""))
        );
    }

    #[test]
    fn page_info_layout() {
        let mut g = Gctx([7; 48]);
        g.update(PageType::Secrets, 0x1234_5000, &[9; 48]);
        let mut info = Vec::new();
        info.extend_from_slice(&[7; 48]);
        info.extend_from_slice(&[9; 48]);
        info.extend_from_slice(&[0x70, 0, 5, 0, 0, 0, 0, 0]);
        info.extend_from_slice(&0x1234_5000u64.to_le_bytes());
        let want: [u8; 48] = Sha384::digest(&info).into();
        assert_eq!(g.0, want);
    }

    #[test]
    fn metadata_parse_rejects_bad_input() {
        let mut img = vec![0u8; 64];
        img[16..20].copy_from_slice(b"ASEV");
        img[20..24].copy_from_slice(&40u32.to_le_bytes()); // 16 + 2 descriptors
        img[24..28].copy_from_slice(&1u32.to_le_bytes());
        img[28..32].copy_from_slice(&2u32.to_le_bytes());
        img[32..44].copy_from_slice(&[0, 0x80, 0, 0, 0, 0x10, 0, 0, 2, 0, 0, 0]);
        img[44..56].copy_from_slice(&[0, 0x90, 0, 0, 0, 0x10, 0, 0, 0x10, 0, 0, 0]);
        let s = parse_metadata(&img, 48).unwrap();
        assert_eq!(
            s,
            vec![
                SevSection {
                    gpa: 0x8000,
                    size: 0x1000,
                    kind: SevSectionKind::Secrets
                },
                SevSection {
                    gpa: 0x9000,
                    size: 0x1000,
                    kind: SevSectionKind::KernelHashes
                },
            ]
        );
        assert!(parse_metadata(&img, 1000).is_err());
        let mut bad = img.clone();
        bad[28..32].copy_from_slice(&3u32.to_le_bytes());
        assert!(parse_metadata(&bad, 48).is_err());
        let mut bad = img.clone();
        bad[40] = 7;
        assert_eq!(
            parse_metadata(&bad, 48),
            Err(SnpError::UnknownSection { index: 0, kind: 7 })
        );
        let mut bad = img;
        bad[16] = b'X';
        assert!(parse_metadata(&bad, 48).is_err());
    }

    /// A one-page firmware: SEV metadata with a secrets page, and the given AP EIP.
    fn tiny_firmware(ap_eip: u32) -> Vec<u8> {
        let mut meta = b"ASEV".to_vec();
        for v in [28u32, 1, 1, 0x80_0000, 0x1000, 2] {
            meta.extend_from_slice(&v.to_le_bytes());
        }
        let mut img = crate::ovmf::tests::image_with(
            &[
                (ovmf::SEV_ES_RESET_BLOCK_GUID, ap_eip.to_le_bytes().to_vec()),
                (ovmf::SEV_METADATA_GUID, 4000u32.to_le_bytes().to_vec()),
            ],
            PAGE,
        );
        img[96..96 + meta.len()].copy_from_slice(&meta);
        img
    }

    #[test]
    fn vcpu_errors() {
        let inputs = |ovmf, vcpus| SnpInputs {
            ovmf,
            hashes: None,
            vcpus,
            vcpu_type: VcpuType::from_name("EPYC-Milan").unwrap(),
            vmm: VmmType::Qemu,
            guest_features: 1,
        };
        let fw = tiny_firmware(0);
        assert!(launch_digest(&inputs(&fw, 1)).is_ok());
        assert_eq!(
            launch_digest(&inputs(&fw, 2)),
            Err(SnpError::NoApResetVector(2))
        );
        assert_eq!(launch_digest(&inputs(&fw, 0)), Err(SnpError::NoVcpus));
        let fw = tiny_firmware(0x0080_b004);
        assert_eq!(
            SevFirmware::parse(&fw).unwrap().ap_reset_eip(),
            Some(0x0080_b004)
        );
        assert_ne!(
            launch_digest(&inputs(&fw, 2)).unwrap(),
            launch_digest(&inputs(&fw, 3)).unwrap()
        );
    }

    #[test]
    fn firmware_size_checked() {
        assert_eq!(
            SevFirmware::parse(&[0u8; 100]).unwrap_err(),
            SnpError::FirmwareSize(100)
        );
    }
}
