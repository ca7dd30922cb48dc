//! The Linux kernel as TDVF measures it: QEMU's bzImage header patch and the PE/COFF
//! Authenticode hash.
//!
//! Under TDX (unlike SEV, where QEMU leaves the header alone so the SEV hashes table
//! matches the file) QEMU's `x86_load_linux` writes loader fields into the bzImage setup
//! header before handing the kernel to OVMF over fw_cfg, and OVMF measures the patched
//! image. [`qemu_patch_bzimage`] reproduces that for QEMU ≥ 8 on a q35 machine with no
//! setup_data entries (no DTB); the Authenticode hash (Microsoft PE/COFF spec, "Calculating
//! the PE image hash", as edk2's `DxeTpm2MeasureBootLib` does it) then covers the whole
//! file except the checksum, the certificate-table directory entry and the certificates.

use sha2::{Digest, Sha384};

/// What is wrong with a kernel image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeError {
    /// A header field points outside the file.
    #[error("PE image is truncated or malformed: {0}")]
    Malformed(&'static str),
    /// Not a PE image at all.
    #[error("not a PE/COFF image ({0}); the kernel needs an EFI stub (CONFIG_EFI_STUB)")]
    NotPe(&'static str),
    /// Not a bzImage with a boot-protocol header QEMU would patch.
    #[error("not a bzImage: {0}")]
    NotBzImage(&'static str),
    /// The initrd does not fit below the initrd ceiling, so QEMU would refuse to boot.
    #[error("initrd of {size} bytes does not fit below {max:#x}")]
    InitrdTooLarge {
        /// Initrd size.
        size: usize,
        /// The highest address QEMU would use.
        max: u64,
    },
    /// A command-line option changes the header in a way this code does not reproduce.
    #[error(
        "kernel command line option {0} makes QEMU patch the header in a way silk does not model"
    )]
    Unsupported(&'static str),
}

fn u16_at(b: &[u8], at: usize, what: &'static str) -> Result<u16, PeError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(PeError::Malformed(what))
}

fn u32_at(b: &[u8], at: usize, what: &'static str) -> Result<u32, PeError> {
    b.get(at..at + 4)
        .map(crate::ovmf::le_u32)
        .ok_or(PeError::Malformed(what))
}

fn range<'a>(
    b: &'a [u8],
    start: usize,
    end: usize,
    what: &'static str,
) -> Result<&'a [u8], PeError> {
    b.get(start..end).ok_or(PeError::Malformed(what))
}

/// The Authenticode SHA-384 of a PE/COFF image (PE32 or PE32+).
pub fn authenticode_sha384(image: &[u8]) -> Result<[u8; 48], PeError> {
    if image.get(..2) != Some(b"MZ") {
        return Err(PeError::NotPe("no MZ signature"));
    }
    let pe = u32_at(image, 0x3c, "e_lfanew")? as usize;
    if image.get(pe..pe + 4) != Some(b"PE\0\0") {
        return Err(PeError::NotPe("no PE signature at e_lfanew"));
    }
    let coff = pe + 4;
    let sections = usize::from(u16_at(image, coff + 2, "NumberOfSections")?);
    let opt_size = usize::from(u16_at(image, coff + 16, "SizeOfOptionalHeader")?);
    let opt = coff + 20;
    // The data directories start after the fields that differ between PE32 and PE32+.
    let (rva_count_at, dirs_at) = match u16_at(image, opt, "optional header magic")? {
        0x10b => (opt + 92, opt + 96),
        0x20b => (opt + 108, opt + 112),
        _ => return Err(PeError::NotPe("unknown optional header magic")),
    };
    let checksum_at = opt + 64;
    let size_of_headers = u32_at(image, opt + 60, "SizeOfHeaders")? as usize;
    let rva_count = u32_at(image, rva_count_at, "NumberOfRvaAndSizes")?;
    let mut h = Sha384::new();
    h.update(range(image, 0, checksum_at, "headers")?);
    let mut cert_size = 0usize;
    if rva_count > 4 {
        let cert_dir = dirs_at + 4 * 8;
        h.update(range(image, checksum_at + 4, cert_dir, "headers")?);
        h.update(range(
            image,
            cert_dir + 8,
            size_of_headers,
            "SizeOfHeaders",
        )?);
        cert_size = u32_at(image, cert_dir + 4, "certificate table size")? as usize;
    } else {
        h.update(range(
            image,
            checksum_at + 4,
            size_of_headers,
            "SizeOfHeaders",
        )?);
    }
    // Sections in file order, each by its raw size.
    let table = opt + opt_size;
    let mut raw: Vec<(usize, usize)> = Vec::with_capacity(sections);
    for i in 0..sections {
        let s = table + 40 * i;
        let size = u32_at(image, s + 16, "section SizeOfRawData")? as usize;
        let ptr = u32_at(image, s + 20, "section PointerToRawData")? as usize;
        if size != 0 {
            raw.push((ptr, size));
        }
    }
    raw.sort_unstable();
    let mut hashed = size_of_headers;
    for (ptr, size) in raw {
        h.update(range(image, ptr, ptr.saturating_add(size), "section data")?);
        hashed = hashed.saturating_add(size);
    }
    // Anything after the last section, less the certificates at the end.
    if image.len() > hashed.saturating_add(cert_size) {
        h.update(&image[hashed..image.len() - cert_size]);
    }
    Ok(h.finalize().into())
}

/// The guest memory layout that decides where QEMU puts the initrd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QemuMemory {
    /// RAM mapped below 4 GiB.
    pub below_4g: u64,
    /// Room QEMU keeps for ACPI tables at the top of low memory (q35: 0x28000).
    pub acpi_data_size: u64,
}

impl QemuMemory {
    /// The layout of a q35 machine with `ram_size` bytes of RAM (QEMU `pc_q35_init`: up to
    /// 2.75 GiB stays below 4 GiB, more is split at 2 GiB).
    pub fn q35(ram_size: u64) -> Self {
        let lowmem = if ram_size >= 0xb000_0000 {
            0x8000_0000
        } else {
            0xb000_0000
        };
        QemuMemory {
            below_4g: ram_size.min(lowmem),
            acpi_data_size: 0x28000,
        }
    }
}

/// The bzImage as QEMU hands it to the firmware under TDX: the setup header's loader
/// fields filled in (`hw/i386/x86-common.c`, `x86_load_linux`).
pub fn qemu_patch_bzimage(
    kernel: &[u8],
    initrd_size: Option<usize>,
    cmdline: &str,
    mem: QemuMemory,
) -> Result<Vec<u8>, PeError> {
    if kernel.get(0x202..0x206) != Some(b"HdrS") {
        return Err(PeError::NotBzImage(
            "no HdrS boot-protocol signature at 0x202",
        ));
    }
    let protocol = u16_at(kernel, 0x206, "boot protocol version")?;
    let loadflags = *kernel.get(0x211).ok_or(PeError::Malformed("loadflags"))?;
    if protocol < 0x202 || loadflags & 0x01 == 0 {
        return Err(PeError::NotBzImage(
            "boot protocol older than 2.02 or not loaded high",
        ));
    }
    if cmdline.contains("vga=") {
        return Err(PeError::Unsupported("vga="));
    }
    // "High and recent kernel" placement.
    let real_addr: u32 = 0x10000;
    let cmdline_addr: u32 = 0x20000;
    let xloadflags = u16_at(kernel, 0x236, "xloadflags")?;
    let mut initrd_max: u64 = if protocol >= 0x20c && xloadflags & 0x2 != 0 {
        u64::from(u32::MAX) // XLF_CAN_BE_LOADED_ABOVE_4G
    } else if protocol >= 0x203 {
        u64::from(u32_at(kernel, 0x22c, "initrd_addr_max")?)
    } else {
        0x37ff_ffff
    };
    let ceiling = mem.below_4g.saturating_sub(mem.acpi_data_size);
    if initrd_max >= ceiling {
        initrd_max = ceiling.saturating_sub(1);
    }

    let mut k = kernel.to_vec();
    let put32 =
        |k: &mut Vec<u8>, at: usize, v: u32| k[at..at + 4].copy_from_slice(&v.to_le_bytes());
    if k.len() < 0x240 {
        return Err(PeError::Malformed("setup header"));
    }
    put32(&mut k, 0x228, cmdline_addr); // cmd_line_ptr
    k[0x210] = 0xb0; // type_of_loader: QEMU
    k[0x211] |= 0x80; // CAN_USE_HEAP
    let heap_end = (cmdline_addr - real_addr - 0x200) as u16;
    k[0x224..0x226].copy_from_slice(&heap_end.to_le_bytes());
    if let Some(size) = initrd_size {
        if size as u64 >= initrd_max {
            return Err(PeError::InitrdTooLarge {
                size,
                max: initrd_max,
            });
        }
        let addr = (initrd_max - size as u64) & !4095;
        put32(&mut k, 0x218, addr as u32); // ramdisk_image
        put32(&mut k, 0x21c, size as u32); // ramdisk_size
    }
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q35_split() {
        assert_eq!(QemuMemory::q35(2 << 30).below_4g, 2 << 30);
        assert_eq!(QemuMemory::q35(0xb000_0000).below_4g, 0x8000_0000);
        assert_eq!(QemuMemory::q35(16 << 30).below_4g, 0x8000_0000);
    }

    #[test]
    fn rejects_non_pe() {
        assert!(matches!(
            authenticode_sha384(b"not a kernel"),
            Err(PeError::NotPe(_))
        ));
        let mut mz = vec![0u8; 0x100];
        mz[..2].copy_from_slice(b"MZ");
        mz[0x3c..0x40].copy_from_slice(&0x1000u32.to_le_bytes());
        assert!(matches!(authenticode_sha384(&mz), Err(PeError::NotPe(_))));
        assert!(matches!(
            qemu_patch_bzimage(&mz, None, "", QemuMemory::q35(1 << 30)),
            Err(PeError::NotBzImage(_))
        ));
    }
}
