//! The SEV-SNP `ATTESTATION_REPORT` wire format.
//!
//! Offsets follow the ATTESTATION_REPORT structure table of AMD's *SEV Secure Nested Paging
//! Firmware ABI Specification* (publication 56860, revision 1.58), cross-checked against
//! `virtee/sev`. All integers are little-endian. The report is 0x4A0 bytes; the firmware signs
//! bytes `[0, 0x2A0)` with the VCEK or VLEK (ECDSA P-384 with SHA-384).
//!
//! Versions: 2 is the original layout; 3 fills the CPUID family/model/stepping bytes at
//! 0x188..0x18B; 4 is seen in the field (e.g. firmware 1.55.31 on Milan) but its changes are
//! under AMD embargo and the public layout is that of version 3, so it is parsed as version 3;
//! 5 adds the launch and current mitigation vectors at 0x1F8 and 0x200. Anything else is
//! rejected rather than guessed at.
//!
//! Parsing is strict: the spec's reserved, must-be-zero bytes must be zero, including the 368
//! reserved bytes after R and S in the signature, which the signature does not cover and which
//! would otherwise let anyone produce many byte strings for one signed report.

use std::fmt;

use thiserror::Error;

use crate::checks::{snp, CheckId};

pub use super::tcb::{ProductLine, TcbParts, TcbVersion};

/// Size of an attestation report in bytes.
pub const REPORT_SIZE: usize = 0x4A0;
/// Number of leading bytes covered by the report's signature.
pub const SIGNED_LEN: usize = 0x2A0;

/// SIGNATURE_ALGO value for ECDSA P-384 with SHA-384, the only algorithm SNP defines.
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;

// Offsets into the report (ABI spec, ATTESTATION_REPORT table).
const OFF_VERSION: usize = 0x00;
const OFF_GUEST_SVN: usize = 0x04;
const OFF_POLICY: usize = 0x08;
const OFF_FAMILY_ID: usize = 0x10;
const OFF_IMAGE_ID: usize = 0x20;
const OFF_VMPL: usize = 0x30;
const OFF_SIGNATURE_ALGO: usize = 0x34;
const OFF_CURRENT_TCB: usize = 0x38;
const OFF_PLATFORM_INFO: usize = 0x40;
/// AUTHOR_KEY_EN (bit 0), MASK_CHIP_KEY (bit 1), SIGNING_KEY (bits 4:2), bits 31:5 reserved.
const OFF_KEY_FLAGS: usize = 0x48;
const OFF_RESERVED_4C: usize = 0x4C;
const OFF_REPORT_DATA: usize = 0x50;
const OFF_MEASUREMENT: usize = 0x90;
const OFF_HOST_DATA: usize = 0xC0;
const OFF_ID_KEY_DIGEST: usize = 0xE0;
const OFF_AUTHOR_KEY_DIGEST: usize = 0x110;
const OFF_REPORT_ID: usize = 0x140;
const OFF_REPORT_ID_MA: usize = 0x160;
const OFF_REPORTED_TCB: usize = 0x180;
/// CPUID_FAM_ID, CPUID_MOD_ID, CPUID_STEP (version 3 and later; reserved in version 2).
const OFF_CPUID: usize = 0x188;
const OFF_CHIP_ID: usize = 0x1A0;
const OFF_COMMITTED_TCB: usize = 0x1E0;
/// CURRENT_BUILD, CURRENT_MINOR, CURRENT_MAJOR, then one reserved byte.
const OFF_CURRENT_VERSION: usize = 0x1E8;
/// COMMITTED_BUILD, COMMITTED_MINOR, COMMITTED_MAJOR, then one reserved byte.
const OFF_COMMITTED_VERSION: usize = 0x1EC;
const OFF_LAUNCH_TCB: usize = 0x1F0;
/// LAUNCH_MIT_VECTOR (version 5 and later; reserved before).
const OFF_LAUNCH_MIT_VECTOR: usize = 0x1F8;
/// CURRENT_MIT_VECTOR (version 5 and later; reserved before).
const OFF_CURRENT_MIT_VECTOR: usize = 0x200;
const OFF_RESERVED_TAIL_V5: usize = 0x208;
/// SIGNATURE: R (72 bytes), S (72 bytes), 368 reserved bytes (ABI spec, ECDSA signature format).
const OFF_SIGNATURE: usize = SIGNED_LEN;
const SIG_COMPONENT_LEN: usize = 72;
const OFF_SIG_RESERVED: usize = OFF_SIGNATURE + 2 * SIG_COMPONENT_LEN;

const fn bit(value: u64, n: u32) -> bool {
    (value >> n) & 1 == 1
}

/// The guest policy the guest owner set at launch (ABI spec, GUEST_POLICY table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct GuestPolicy(pub u64);

impl GuestPolicy {
    /// Minimum ABI minor version the guest requires (bits 7:0).
    pub fn abi_minor(self) -> u8 {
        self.0.to_le_bytes()[0]
    }
    /// Minimum ABI major version the guest requires (bits 15:8).
    pub fn abi_major(self) -> u8 {
        self.0.to_le_bytes()[1]
    }
    /// The host may run the guest with SMT enabled (bit 16).
    pub fn smt_allowed(self) -> bool {
        bit(self.0, 16)
    }
    /// The guest may be associated with a migration agent (bit 18).
    pub fn migrate_ma_allowed(self) -> bool {
        bit(self.0, 18)
    }
    /// The host may debug the guest, i.e. read and write its memory (bit 19).
    pub fn debug_allowed(self) -> bool {
        bit(self.0, 19)
    }
    /// The guest may only be activated on one socket (bit 20).
    pub fn single_socket_required(self) -> bool {
        bit(self.0, 20)
    }
    /// CXL may be populated with devices or memory (bit 21).
    pub fn cxl_allowed(self) -> bool {
        bit(self.0, 21)
    }
    /// Memory encryption must use AES-256-XTS (bit 22).
    pub fn mem_aes_256_xts_required(self) -> bool {
        bit(self.0, 22)
    }
    /// Running Average Power Limit must be disabled (bit 23).
    pub fn rapl_disabled(self) -> bool {
        bit(self.0, 23)
    }
    /// Ciphertext hiding must be enabled (bit 24).
    pub fn ciphertext_hiding_required(self) -> bool {
        bit(self.0, 24)
    }
    /// The guest may not use the page move and swap commands (bit 25).
    pub fn page_swap_disabled(self) -> bool {
        bit(self.0, 25)
    }
}

/// What the platform had enabled when the report was made (ABI spec, PLATFORM_INFO table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct PlatformInfo(pub u64);

impl PlatformInfo {
    /// SMT is enabled on the host (bit 0).
    pub fn smt_enabled(self) -> bool {
        bit(self.0, 0)
    }
    /// Transparent SME is enabled (bit 1).
    pub fn tsme_enabled(self) -> bool {
        bit(self.0, 1)
    }
    /// The platform uses ECC memory (bit 2).
    pub fn ecc_enabled(self) -> bool {
        bit(self.0, 2)
    }
    /// RAPL is disabled (bit 3).
    pub fn rapl_disabled(self) -> bool {
        bit(self.0, 3)
    }
    /// Ciphertext hiding is enabled (bit 4).
    pub fn ciphertext_hiding_enabled(self) -> bool {
        bit(self.0, 4)
    }
    /// Alias detection completed since the last reset and found no aliasing addresses (bit 5).
    pub fn alias_check_complete(self) -> bool {
        bit(self.0, 5)
    }
    /// SEV-TIO is enabled (bit 7).
    pub fn tio_enabled(self) -> bool {
        bit(self.0, 7)
    }
}

/// Which key signed the report: the SIGNING_KEY field, bits 4:2 of the word at 0x48.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigningKey {
    /// Versioned Chip Endorsement Key (0): derived from the chip's secret and its TCB.
    Vcek,
    /// Versioned Loaded Endorsement Key (1): loaded by a cloud provider, not chip-specific.
    Vlek,
    /// No key (7): the report is not signed.
    None,
    /// A value the spec reserves (2 to 6).
    Reserved(u8),
}

impl SigningKey {
    fn from_field(value: u8) -> Self {
        match value {
            0 => SigningKey::Vcek,
            1 => SigningKey::Vlek,
            7 => SigningKey::None,
            other => SigningKey::Reserved(other),
        }
    }
}

impl fmt::Display for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigningKey::Vcek => f.write_str("VCEK"),
            SigningKey::Vlek => f.write_str("VLEK"),
            SigningKey::None => f.write_str("none"),
            SigningKey::Reserved(v) => write!(f, "reserved value {v}"),
        }
    }
}

/// The CPU the report was made on (version 3 and later).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cpuid {
    /// Combined extended family and family, e.g. 0x19 for Zen 3/4.
    pub family: u8,
    /// Combined extended model and model.
    pub model: u8,
    /// Stepping.
    pub stepping: u8,
}

impl Cpuid {
    /// The product line of this CPU, if it is one this crate knows.
    ///
    /// Ranges as in `virtee/sev`'s `Generation::identify_cpu`: family 0x19 models 0x00-0x0F
    /// are Milan, 0x10-0x1F and 0xA0-0xAF Genoa (with Bergamo and Siena); family 0x1A models
    /// 0x00-0x11 are Turin. Later family 0x1A models (Venice) have no pinned root here.
    pub fn product_line(&self) -> Option<ProductLine> {
        match (self.family, self.model) {
            (0x19, 0x00..=0x0F) => Some(ProductLine::Milan),
            (0x19, 0x10..=0x1F | 0xA0..=0xAF) => Some(ProductLine::Genoa),
            (0x1A, 0x00..=0x11) => Some(ProductLine::Turin),
            _ => None,
        }
    }
}

impl fmt::Display for Cpuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "family {:#04x} model {:#04x} stepping {:#04x}",
            self.family, self.model, self.stepping
        )
    }
}

/// A firmware version (major.minor, build).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FirmwareVersion {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Build number.
    pub build: u8,
}

impl fmt::Display for FirmwareVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.build)
    }
}

/// The report's ECDSA P-384 signature, R and S as on the wire: 72-byte little-endian integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EcdsaSignature {
    /// R, little-endian, zero-padded to 72 bytes.
    pub r: [u8; 72],
    /// S, little-endian, zero-padded to 72 bytes.
    pub s: [u8; 72],
}

/// A signature component with non-zero bytes beyond the 48 a P-384 scalar has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("signature {component} has non-zero bytes beyond 48")]
pub struct OversizedScalar {
    /// `R` or `S`.
    pub component: &'static str,
}

impl EcdsaSignature {
    /// `r || s`, each the 48-byte big-endian P-384 scalar, as
    /// [`crate::signature::SignatureBytes::Fixed`] takes it.
    pub fn to_fixed(&self) -> Result<[u8; 96], OversizedScalar> {
        let mut out = [0u8; 96];
        for (component, le, dst) in [("R", &self.r, 0), ("S", &self.s, 48)] {
            let (low, high) = le.split_at(48);
            if high.iter().any(|&b| b != 0) {
                return Err(OversizedScalar { component });
            }
            for (d, s) in out[dst..dst + 48].iter_mut().zip(low.iter().rev()) {
                *d = *s;
            }
        }
        Ok(out)
    }
}

/// A parsed SEV-SNP attestation report. Nothing here is verified; see
/// [`crate::snp::certs::verify_signature_chain`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AttestationReport {
    /// Format version (2, 3, 4 or 5).
    pub version: u32,
    /// The guest's security version number, from its ID block.
    pub guest_svn: u32,
    /// The guest policy.
    pub policy: GuestPolicy,
    /// Family ID from the ID block.
    pub family_id: [u8; 16],
    /// Image ID from the ID block.
    pub image_id: [u8; 16],
    /// The VMPL the report was requested from (0 is the most privileged).
    pub vmpl: u32,
    /// Signature algorithm; always [`SIG_ALGO_ECDSA_P384_SHA384`] after parsing.
    pub signature_algo: u32,
    /// The platform's current TCB.
    pub current_tcb: TcbVersion,
    /// Platform state.
    pub platform_info: PlatformInfo,
    /// AUTHOR_KEY_EN: AUTHOR_KEY_DIGEST holds the digest of an author key.
    pub author_key_en: bool,
    /// MASK_CHIP_KEY: the firmware wrote zeros instead of a signature.
    pub mask_chip_key: bool,
    /// Which key signed the report.
    pub signing_key: SigningKey,
    /// Guest-chosen data, e.g. a hash binding keys to the report.
    pub report_data: [u8; 64],
    /// The launch measurement.
    pub measurement: [u8; 48],
    /// Host-chosen data given at launch.
    pub host_data: [u8; 32],
    /// SHA-384 of the ID key that signed the ID block, or zeros.
    pub id_key_digest: [u8; 48],
    /// SHA-384 of the author key that signed the ID key, or zeros.
    pub author_key_digest: [u8; 48],
    /// The guest's report ID.
    pub report_id: [u8; 32],
    /// The report ID of the guest's migration agent.
    pub report_id_ma: [u8; 32],
    /// The TCB the signing key was derived from; the VCEK's certificate names the same.
    pub reported_tcb: TcbVersion,
    /// The CPU (version 3 and later).
    pub cpuid: Option<Cpuid>,
    /// The chip's identifier, or zeros when the platform masks it. Turin uses the first
    /// 8 bytes and zeros the rest.
    pub chip_id: [u8; 64],
    /// The committed TCB.
    pub committed_tcb: TcbVersion,
    /// The running firmware's version.
    pub current_version: FirmwareVersion,
    /// The committed firmware's version.
    pub committed_version: FirmwareVersion,
    /// The TCB when the guest was launched.
    pub launch_tcb: TcbVersion,
    /// Mitigations verified at launch (version 5 and later).
    pub launch_mitigation_vector: Option<u64>,
    /// Mitigations verified now (version 5 and later).
    pub current_mitigation_vector: Option<u64>,
    /// The signature over bytes `[0, SIGNED_LEN)`.
    pub signature: EcdsaSignature,
}

/// Why bytes are not an attestation report.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The input is not exactly [`REPORT_SIZE`] bytes.
    #[error("attestation report is {found} bytes, expected {expected}")]
    WrongLength {
        /// [`REPORT_SIZE`].
        expected: usize,
        /// The input's length.
        found: usize,
    },
    /// VERSION is not one whose layout is known.
    #[error("attestation report VERSION is {found}, supported versions are 2, 3, 4 and 5")]
    UnsupportedVersion {
        /// The VERSION field.
        found: u32,
    },
    /// SIGNATURE_ALGO is not ECDSA P-384 with SHA-384.
    #[error("attestation report SIGNATURE_ALGO is {found}, expected {expected} (ECDSA P-384 with SHA-384)")]
    UnsupportedSignatureAlgorithm {
        /// [`SIG_ALGO_ECDSA_P384_SHA384`].
        expected: u32,
        /// The SIGNATURE_ALGO field.
        found: u32,
    },
    /// A field the spec reserves as must-be-zero is not zero.
    #[error("attestation report reserved field {field} at {offset:#x} is not zero")]
    ReservedNotZero {
        /// The reserved field's description.
        field: &'static str,
        /// Offset of the first non-zero byte.
        offset: usize,
    },
}

impl ReportError {
    /// The offset of the field at fault, where there is one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            ReportError::WrongLength { .. } => None,
            ReportError::UnsupportedVersion { .. } => Some(0),
            ReportError::UnsupportedSignatureAlgorithm { .. } => Some(OFF_SIGNATURE_ALGO),
            ReportError::ReservedNotZero { offset, .. } => Some(*offset),
        }
    }
}

/// Reads fixed-size fields from a buffer already checked to be [`REPORT_SIZE`] long.
struct Fields<'a>(&'a [u8; REPORT_SIZE]);

impl Fields<'_> {
    fn array<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.0[offset..offset + N]);
        out
    }
    fn u8(&self, offset: usize) -> u8 {
        self.0[offset]
    }
    fn u32(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.array(offset))
    }
    fn u64(&self, offset: usize) -> u64 {
        u64::from_le_bytes(self.array(offset))
    }
    fn tcb(&self, offset: usize) -> TcbVersion {
        TcbVersion(self.u64(offset))
    }
    fn version(&self, offset: usize) -> FirmwareVersion {
        FirmwareVersion {
            build: self.u8(offset),
            minor: self.u8(offset + 1),
            major: self.u8(offset + 2),
        }
    }
    fn zero(&self, field: &'static str, start: usize, end: usize) -> Result<(), ReportError> {
        match self.0[start..end].iter().position(|&b| b != 0) {
            None => Ok(()),
            Some(i) => Err(ReportError::ReservedNotZero {
                field,
                offset: start + i,
            }),
        }
    }
}

impl AttestationReport {
    /// The check that fails when bytes do not parse as a report (then nothing else runs).
    pub const FORMAT_CHECK: &'static CheckId = &snp::REPORT_FORMAT;

    /// Parses a report, rejecting wrong lengths, unknown versions, signature algorithms
    /// other than ECDSA P-384/SHA-384, and non-zero reserved fields.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, ReportError> {
        let bytes: &[u8; REPORT_SIZE] = raw.try_into().map_err(|_| ReportError::WrongLength {
            expected: REPORT_SIZE,
            found: raw.len(),
        })?;
        let f = Fields(bytes);

        let version = f.u32(OFF_VERSION);
        let (has_cpuid, has_mit_vectors) = match version {
            2 => (false, false),
            3 | 4 => (true, false),
            5 => (true, true),
            found => return Err(ReportError::UnsupportedVersion { found }),
        };

        let signature_algo = f.u32(OFF_SIGNATURE_ALGO);
        if signature_algo != SIG_ALGO_ECDSA_P384_SHA384 {
            return Err(ReportError::UnsupportedSignatureAlgorithm {
                expected: SIG_ALGO_ECDSA_P384_SHA384,
                found: signature_algo,
            });
        }

        let key_flags = f.u32(OFF_KEY_FLAGS);
        if key_flags >> 5 != 0 {
            return Err(ReportError::ReservedNotZero {
                field: "key flags bits 31:5",
                offset: OFF_KEY_FLAGS,
            });
        }
        f.zero("reserved after key flags", OFF_RESERVED_4C, OFF_REPORT_DATA)?;

        let cpuid_end = if has_cpuid { OFF_CPUID + 3 } else { OFF_CPUID };
        f.zero("reserved before CHIP_ID", cpuid_end, OFF_CHIP_ID)?;
        f.zero(
            "reserved after CURRENT_MAJOR",
            OFF_CURRENT_VERSION + 3,
            OFF_COMMITTED_VERSION,
        )?;
        f.zero(
            "reserved after COMMITTED_MAJOR",
            OFF_COMMITTED_VERSION + 3,
            OFF_LAUNCH_TCB,
        )?;
        let tail = if has_mit_vectors {
            OFF_RESERVED_TAIL_V5
        } else {
            OFF_LAUNCH_MIT_VECTOR
        };
        f.zero("reserved before SIGNATURE", tail, OFF_SIGNATURE)?;
        f.zero("reserved part of SIGNATURE", OFF_SIG_RESERVED, REPORT_SIZE)?;

        Ok(Self {
            version,
            guest_svn: f.u32(OFF_GUEST_SVN),
            policy: GuestPolicy(f.u64(OFF_POLICY)),
            family_id: f.array(OFF_FAMILY_ID),
            image_id: f.array(OFF_IMAGE_ID),
            vmpl: f.u32(OFF_VMPL),
            signature_algo,
            current_tcb: f.tcb(OFF_CURRENT_TCB),
            platform_info: PlatformInfo(f.u64(OFF_PLATFORM_INFO)),
            author_key_en: key_flags & 1 == 1,
            mask_chip_key: (key_flags >> 1) & 1 == 1,
            // Masked to three bits, so the cast keeps the whole field.
            signing_key: SigningKey::from_field(((key_flags >> 2) & 0b111) as u8),
            report_data: f.array(OFF_REPORT_DATA),
            measurement: f.array(OFF_MEASUREMENT),
            host_data: f.array(OFF_HOST_DATA),
            id_key_digest: f.array(OFF_ID_KEY_DIGEST),
            author_key_digest: f.array(OFF_AUTHOR_KEY_DIGEST),
            report_id: f.array(OFF_REPORT_ID),
            report_id_ma: f.array(OFF_REPORT_ID_MA),
            reported_tcb: f.tcb(OFF_REPORTED_TCB),
            cpuid: has_cpuid.then(|| Cpuid {
                family: f.u8(OFF_CPUID),
                model: f.u8(OFF_CPUID + 1),
                stepping: f.u8(OFF_CPUID + 2),
            }),
            chip_id: f.array(OFF_CHIP_ID),
            committed_tcb: f.tcb(OFF_COMMITTED_TCB),
            current_version: f.version(OFF_CURRENT_VERSION),
            committed_version: f.version(OFF_COMMITTED_VERSION),
            launch_tcb: f.tcb(OFF_LAUNCH_TCB),
            launch_mitigation_vector: has_mit_vectors.then(|| f.u64(OFF_LAUNCH_MIT_VECTOR)),
            current_mitigation_vector: has_mit_vectors.then(|| f.u64(OFF_CURRENT_MIT_VECTOR)),
            signature: EcdsaSignature {
                r: f.array(OFF_SIGNATURE),
                s: f.array(OFF_SIGNATURE + SIG_COMPONENT_LEN),
            },
        })
    }

    /// The product line named by the report's CPUID (version 3 and later); `None` for
    /// version 2 reports and unknown CPUs. The certificate chain names the line too, and
    /// [`crate::snp::certs::verify_signature_chain`] requires the two to agree.
    pub fn product_line(&self) -> Option<ProductLine> {
        self.cpuid.as_ref().and_then(Cpuid::product_line)
    }

    /// The CHIP_ID is all zeros: the platform masks it (MASK_CHIP_ID).
    pub fn chip_id_masked(&self) -> bool {
        self.chip_id.iter().all(|&b| b == 0)
    }
}
