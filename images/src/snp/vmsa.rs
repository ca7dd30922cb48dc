//! The initial VMSA (VM save area) pages that the VMM hands the firmware for each vCPU.
//!
//! SNP_LAUNCH_UPDATE measures each vCPU's VMSA page, so its exact bytes are part of the
//! launch digest. The layout is AMD APM vol. 2 table B-4 (Linux `struct sev_es_save_area`);
//! the initial register values are what KVM/QEMU (or EC2, GCE) put there at reset. Only the
//! fields a VMM sets are written; everything else is zero.

/// A vCPU model as QEMU names it, and the CPUID signature QEMU reports for it in `rdx` at
/// reset (family/model/stepping, AMD CPUID Fn0000_0001_EAX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuType {
    /// QEMU's `-cpu` name, e.g. `EPYC-Milan`.
    pub name: &'static str,
    /// CPU family.
    pub family: u32,
    /// CPU model.
    pub model: u32,
    /// CPU stepping.
    pub stepping: u32,
}

/// The QEMU `-cpu` models with SEV-SNP-capable signatures (QEMU's `builtin_x86_defs`).
/// Versions of one model share its signature.
pub const VCPU_TYPES: &[VcpuType] = &[
    vcpu("EPYC", 23, 1, 2),
    vcpu("EPYC-v1", 23, 1, 2),
    vcpu("EPYC-v2", 23, 1, 2),
    vcpu("EPYC-IBPB", 23, 1, 2),
    vcpu("EPYC-v3", 23, 1, 2),
    vcpu("EPYC-v4", 23, 1, 2),
    vcpu("EPYC-Rome", 23, 49, 0),
    vcpu("EPYC-Rome-v1", 23, 49, 0),
    vcpu("EPYC-Rome-v2", 23, 49, 0),
    vcpu("EPYC-Rome-v3", 23, 49, 0),
    vcpu("EPYC-Rome-v4", 23, 49, 0),
    vcpu("EPYC-Rome-v5", 23, 49, 0),
    vcpu("EPYC-Milan", 25, 1, 1),
    vcpu("EPYC-Milan-v1", 25, 1, 1),
    vcpu("EPYC-Milan-v2", 25, 1, 1),
    vcpu("EPYC-Milan-v3", 25, 1, 1),
    vcpu("EPYC-Genoa", 25, 17, 0),
    vcpu("EPYC-Genoa-v1", 25, 17, 0),
    vcpu("EPYC-Genoa-v2", 25, 17, 0),
    vcpu("EPYC-Turin", 26, 0, 0),
    vcpu("EPYC-Turin-v1", 26, 0, 0),
];

const fn vcpu(name: &'static str, family: u32, model: u32, stepping: u32) -> VcpuType {
    VcpuType {
        name,
        family,
        model,
        stepping,
    }
}

impl VcpuType {
    /// Looks a QEMU `-cpu` name up, ignoring case.
    pub fn from_name(name: &str) -> Option<VcpuType> {
        VCPU_TYPES
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .copied()
    }

    /// The 32-bit CPUID signature (AMD pub. 25481, CPUID Fn0000_0001_EAX): families above
    /// 0xf are split into a base of 0xf plus an extended family.
    pub fn signature(&self) -> u32 {
        let (fam_lo, fam_hi) = if self.family > 0xf {
            (0xf, (self.family - 0xf) & 0xff)
        } else {
            (self.family, 0)
        };
        (fam_hi << 20)
            | (((self.model >> 4) & 0xf) << 16)
            | (fam_lo << 8)
            | ((self.model & 0xf) << 4)
            | (self.stepping & 0xf)
    }
}

/// Which VMM launched the guest: they differ in a few reset register values and in how the
/// CPUID page is ordered in the measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmmType {
    /// QEMU/KVM: `rdx` holds the vCPU signature, MXCSR and FCW have their reset values.
    Qemu,
    /// AWS EC2 (as of 2026: `rdx` = 0x600; instances launched before that used 0).
    Ec2,
    /// Google Compute Engine: SNP secure-memory pages are unmeasured, its own PAT.
    Gce,
}

impl VmmType {
    /// Parses `qemu`, `ec2` or `gce`, ignoring case.
    pub fn from_name(name: &str) -> Option<VmmType> {
        match name.to_ascii_lowercase().as_str() {
            "qemu" => Some(VmmType::Qemu),
            "ec2" => Some(VmmType::Ec2),
            "gce" => Some(VmmType::Gce),
            _ => None,
        }
    }
}

/// The BSP starts at the architectural reset vector.
pub const BSP_EIP: u32 = 0xffff_fff0;

/// Byte offsets in the save area (APM vol. 2 table B-4).
mod off {
    pub const ES: usize = 0x00;
    pub const CS: usize = 0x10;
    pub const SS: usize = 0x20;
    pub const DS: usize = 0x30;
    pub const FS: usize = 0x40;
    pub const GS: usize = 0x50;
    pub const GDTR: usize = 0x60;
    pub const LDTR: usize = 0x70;
    pub const IDTR: usize = 0x80;
    pub const TR: usize = 0x90;
    pub const EFER: usize = 0xd0;
    pub const CR4: usize = 0x148;
    pub const CR0: usize = 0x158;
    pub const DR7: usize = 0x160;
    pub const DR6: usize = 0x168;
    pub const RFLAGS: usize = 0x170;
    pub const RIP: usize = 0x178;
    pub const G_PAT: usize = 0x268;
    pub const RDX: usize = 0x310;
    pub const SEV_FEATURES: usize = 0x3b0;
    pub const XCR0: usize = 0x3e8;
    pub const MXCSR: usize = 0x408;
    pub const X87_FCW: usize = 0x410;
}

/// Writes a VMCB segment: selector u16, attrib u16, limit u32, base u64.
fn seg(page: &mut [u8; 4096], at: usize, selector: u16, attrib: u16, limit: u32, base: u64) {
    page[at..at + 2].copy_from_slice(&selector.to_le_bytes());
    page[at + 2..at + 4].copy_from_slice(&attrib.to_le_bytes());
    page[at + 4..at + 8].copy_from_slice(&limit.to_le_bytes());
    page[at + 8..at + 16].copy_from_slice(&base.to_le_bytes());
}

fn put64(page: &mut [u8; 4096], at: usize, v: u64) {
    page[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Builds the reset-state VMSA page for a vCPU that starts at `eip`.
pub fn vmsa_page(eip: u32, sev_features: u64, vcpu: VcpuType, vmm: VmmType) -> [u8; 4096] {
    let (cs_flags, ss_flags, tr_flags, rdx, mxcsr, fcw, g_pat): (
        u16,
        u16,
        u16,
        u64,
        u32,
        u16,
        u64,
    ) = match vmm {
        VmmType::Qemu => (
            0x9b,
            0x93,
            0x8b,
            u64::from(vcpu.signature()),
            0x1f80,
            0x37f,
            0x0007_0406_0007_0406,
        ),
        // EC2 leaves the BSP's code segment not-yet-accessed.
        VmmType::Ec2 => (
            if eip == BSP_EIP { 0x9a } else { 0x9b },
            0x92,
            0x83,
            0x600,
            0,
            0,
            0x0007_0406_0007_0406,
        ),
        VmmType::Gce => (0x9b, 0x93, 0x8b, 0x600, 0, 0, 0x0007_0106),
    };
    let mut p = [0u8; 4096];
    seg(&mut p, off::ES, 0, 0x93, 0xffff, 0);
    seg(
        &mut p,
        off::CS,
        0xf000,
        cs_flags,
        0xffff,
        u64::from(eip & 0xffff_0000),
    );
    seg(&mut p, off::SS, 0, ss_flags, 0xffff, 0);
    seg(&mut p, off::DS, 0, 0x93, 0xffff, 0);
    seg(&mut p, off::FS, 0, 0x93, 0xffff, 0);
    seg(&mut p, off::GS, 0, 0x93, 0xffff, 0);
    seg(&mut p, off::GDTR, 0, 0, 0xffff, 0);
    seg(&mut p, off::IDTR, 0, 0, 0xffff, 0);
    seg(&mut p, off::LDTR, 0, 0x82, 0xffff, 0);
    seg(&mut p, off::TR, 0, tr_flags, 0xffff, 0);
    put64(&mut p, off::EFER, 0x1000); // KVM sets EFER.SVME
    put64(&mut p, off::CR4, 0x40); // KVM sets CR4.MCE
    put64(&mut p, off::CR0, 0x10);
    put64(&mut p, off::DR7, 0x400);
    put64(&mut p, off::DR6, 0xffff_0ff0);
    put64(&mut p, off::RFLAGS, 0x2);
    put64(&mut p, off::RIP, u64::from(eip & 0xffff));
    put64(&mut p, off::G_PAT, g_pat);
    put64(&mut p, off::RDX, rdx);
    put64(&mut p, off::SEV_FEATURES, sev_features);
    put64(&mut p, off::XCR0, 0x1);
    p[off::MXCSR..off::MXCSR + 4].copy_from_slice(&mxcsr.to_le_bytes());
    p[off::X87_FCW..off::X87_FCW + 2].copy_from_slice(&fcw.to_le_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_at(p: &[u8], at: usize) -> u64 {
        crate::ovmf::le_u64(&p[at..at + 8])
    }

    #[test]
    fn signatures_match_amd_encoding() {
        // Values QEMU reports in CPUID 1 EAX for these models.
        assert_eq!(
            VcpuType::from_name("EPYC").unwrap().signature(),
            0x0080_0f12
        );
        assert_eq!(
            VcpuType::from_name("epyc-rome").unwrap().signature(),
            0x0083_0f10
        );
        assert_eq!(
            VcpuType::from_name("EPYC-Milan").unwrap().signature(),
            0x00a0_0f11
        );
        assert_eq!(
            VcpuType::from_name("EPYC-Genoa").unwrap().signature(),
            0x00a1_0f10
        );
        assert_eq!(
            VcpuType::from_name("EPYC-Turin").unwrap().signature(),
            0x00b0_0f00
        );
        assert!(VcpuType::from_name("Skylake").is_none());
    }

    #[test]
    fn qemu_bsp_fields_at_apm_offsets() {
        let milan = VcpuType::from_name("EPYC-Milan").unwrap();
        let p = vmsa_page(BSP_EIP, 0x21, milan, VmmType::Qemu);
        // CS: selector 0xf000, attrib 0x9b, limit 0xffff, base 0xffff0000.
        assert_eq!(&p[0x10..0x12], &0xf000u16.to_le_bytes());
        assert_eq!(&p[0x12..0x14], &0x9bu16.to_le_bytes());
        assert_eq!(&p[0x14..0x18], &0xffffu32.to_le_bytes());
        assert_eq!(u64_at(&p, 0x18), 0xffff_0000);
        assert_eq!(&p[0x72..0x74], &0x82u16.to_le_bytes()); // LDTR attrib
        assert_eq!(&p[0x92..0x94], &0x8bu16.to_le_bytes()); // TR attrib
        assert_eq!(u64_at(&p, 0xd0), 0x1000);
        assert_eq!(u64_at(&p, 0x178), 0xfff0);
        assert_eq!(u64_at(&p, 0x268), 0x0007_0406_0007_0406);
        assert_eq!(u64_at(&p, 0x310), 0x00a0_0f11);
        assert_eq!(u64_at(&p, 0x3b0), 0x21);
        assert_eq!(u64_at(&p, 0x3e8), 1);
        assert_eq!(&p[0x408..0x40c], &0x1f80u32.to_le_bytes());
        assert_eq!(&p[0x410..0x412], &0x37fu16.to_le_bytes());
        // Nothing past the x87 area is set.
        assert!(p[0x420..].iter().all(|&b| b == 0));
    }

    #[test]
    fn ap_and_vmm_differences() {
        let epyc = VcpuType::from_name("EPYC-v4").unwrap();
        let ap = vmsa_page(0x0080_b004, 1, epyc, VmmType::Qemu);
        assert_eq!(u64_at(&ap, 0x18), 0x0080_0000); // CS base from the AP EIP
        assert_eq!(u64_at(&ap, 0x178), 0xb004);
        let ec2_bsp = vmsa_page(BSP_EIP, 1, epyc, VmmType::Ec2);
        let ec2_ap = vmsa_page(0x0080_b004, 1, epyc, VmmType::Ec2);
        assert_eq!(ec2_bsp[0x12], 0x9a);
        assert_eq!(ec2_ap[0x12], 0x9b);
        assert_eq!(u64_at(&ec2_bsp, 0x310), 0x600);
        assert_eq!(&ec2_bsp[0x408..0x40c], &[0; 4]);
        let gce = vmsa_page(BSP_EIP, 1, epyc, VmmType::Gce);
        assert_eq!(u64_at(&gce, 0x268), 0x0007_0106);
        assert_eq!(VmmType::from_name("EC2"), Some(VmmType::Ec2));
        assert_eq!(VmmType::from_name("xen"), None);
    }
}
