//! Product lines and the TCB_VERSION layouts that differ between them.

use std::fmt;

/// An AMD EPYC product line with SEV-SNP; each has its own AMD root key (ARK).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProductLine {
    /// EPYC 7003 (Zen 3).
    Milan,
    /// EPYC 9004/8004 (Zen 4), including Bergamo and Siena.
    Genoa,
    /// EPYC 9005 (Zen 5).
    Turin,
}

impl ProductLine {
    /// All product lines this crate knows, in release order.
    pub const ALL: [ProductLine; 3] = [ProductLine::Milan, ProductLine::Genoa, ProductLine::Turin];

    /// The line named `name` as AMD spells it in certificates and KDS URLs, ignoring case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|line| line.name().eq_ignore_ascii_case(name))
    }

    /// AMD's spelling: `Milan`, `Genoa` or `Turin`.
    pub fn name(self) -> &'static str {
        match self {
            ProductLine::Milan => "Milan",
            ProductLine::Genoa => "Genoa",
            ProductLine::Turin => "Turin",
        }
    }

    /// Whether TCB_VERSION uses the layout introduced with Turin (with an FMC SPL).
    pub fn has_turin_tcb_layout(self) -> bool {
        matches!(self, ProductLine::Turin)
    }
}

impl fmt::Display for ProductLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A raw TCB_VERSION: the security patch levels (SPLs) of the platform's firmware components.
///
/// The byte layout depends on the product line, so it is decoded with [`TcbVersion::parts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TcbVersion(pub u64);

/// A TCB_VERSION decoded for one product line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TcbParts {
    /// SPL of the FMC (first mutable code); only Turin and later have one.
    pub fmc: Option<u8>,
    /// SPL of the PSP bootloader.
    pub bootloader: u8,
    /// SPL of the PSP operating system (TEE).
    pub tee: u8,
    /// SPL of the SNP firmware.
    pub snp: u8,
    /// Lowest current patch level of all cores' microcode.
    pub microcode: u8,
}

impl TcbVersion {
    /// Decodes the SPLs with `line`'s layout.
    ///
    /// Milan and Genoa: BOOT_LOADER `[7:0]`, TEE `[15:8]`, SNP `[55:48]`, MICROCODE `[63:56]`.
    /// Turin: FMC `[7:0]`, BOOT_LOADER `[15:8]`, TEE `[23:16]`, SNP `[31:24]`, MICROCODE `[63:56]`.
    pub fn parts(self, line: ProductLine) -> TcbParts {
        let b = self.0.to_le_bytes();
        if line.has_turin_tcb_layout() {
            TcbParts {
                fmc: Some(b[0]),
                bootloader: b[1],
                tee: b[2],
                snp: b[3],
                microcode: b[7],
            }
        } else {
            TcbParts {
                fmc: None,
                bootloader: b[0],
                tee: b[1],
                snp: b[6],
                microcode: b[7],
            }
        }
    }

    /// Encodes `parts` with `line`'s layout; the inverse of [`TcbVersion::parts`].
    ///
    /// An FMC SPL is dropped for lines without one, and taken as 0 on Turin when absent.
    pub fn from_parts(parts: TcbParts, line: ProductLine) -> Self {
        let mut b = [0u8; 8];
        if line.has_turin_tcb_layout() {
            b[0] = parts.fmc.unwrap_or(0);
            b[1] = parts.bootloader;
            b[2] = parts.tee;
            b[3] = parts.snp;
        } else {
            b[0] = parts.bootloader;
            b[1] = parts.tee;
            b[6] = parts.snp;
        }
        b[7] = parts.microcode;
        TcbVersion(u64::from_le_bytes(b))
    }
}

impl fmt::Display for TcbVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#018x}", self.0)
    }
}

impl fmt::Display for TcbParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(fmc) = self.fmc {
            write!(f, "fmc={fmc} ")?;
        }
        write!(
            f,
            "bl={} tee={} snp={} ucode={}",
            self.bootloader, self.tee, self.snp, self.microcode
        )
    }
}
