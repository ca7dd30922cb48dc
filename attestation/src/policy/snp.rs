//! SEV-SNP rules and their evaluation against a parsed report.

use serde::{Deserialize, Serialize};

use super::{key, HexBytes, PolicyError, RuleError};
use crate::snp::report::ProductLine;

/// Rules for AMD SEV-SNP attestation reports.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SnpPolicy {
    /// Launch measurements (SHA-384, 96 hex digits) that are accepted.
    #[serde(default)]
    pub measurements: Vec<HexBytes<48>>,
    /// Accept any measurement. For experiments only: every verdict warns about it.
    #[serde(default)]
    pub allow_any_measurement: bool,
    /// Accept guests launched with the DEBUG policy bit (their memory is readable by the host).
    #[serde(default)]
    pub allow_debug: bool,
    /// Minimum reported TCB, per component. Required: write zeros to accept any TCB.
    pub min_tcb: Option<MinTcb>,
    /// REPORT_DATA that the report must carry exactly (128 hex digits).
    pub report_data: Option<HexBytes<64>>,
    /// HOST_DATA that the report must carry exactly (64 hex digits).
    pub host_data: Option<HexBytes<32>>,
    /// Accept guests that may run with SMT enabled (default true). When false, the guest
    /// policy must forbid SMT and the platform must report SMT off.
    #[serde(default = "yes")]
    pub allow_smt: bool,
    /// Accept guests whose policy allows a migration agent (default false).
    #[serde(default)]
    pub allow_migration_agent: bool,
    /// Require the guest policy's SINGLE_SOCKET bit (default false).
    #[serde(default)]
    pub require_single_socket: bool,
    /// The least privileged VMPL accepted (0 is the most privileged; default 0).
    #[serde(default)]
    pub max_vmpl: u32,
    /// Accepted ID-key digests (SHA-384 of the ID public key); empty accepts any.
    #[serde(default)]
    pub id_key_digests: Vec<HexBytes<48>>,
    /// Accepted author-key digests; when non-empty the report must have an author key.
    #[serde(default)]
    pub author_key_digests: Vec<HexBytes<48>>,
    /// Minimum guest SVN.
    pub min_guest_svn: Option<u32>,
    /// Accepted product lines (`Milan`, `Genoa`, `Turin`); empty accepts any.
    #[serde(default)]
    pub products: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Minimum TCB components. `fmc` only exists on Turin and later.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MinTcb {
    /// Minimum boot loader SPL.
    #[serde(default)]
    pub bootloader: u8,
    /// Minimum PSP OS (TEE) SPL.
    #[serde(default)]
    pub tee: u8,
    /// Minimum SNP firmware SPL.
    #[serde(default)]
    pub snp: u8,
    /// Minimum CPU microcode SPL.
    #[serde(default)]
    pub microcode: u8,
    /// Minimum FMC SPL (Turin).
    pub fmc: Option<u8>,
}

impl std::fmt::Display for MinTcb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bl>={} tee>={} snp>={} ucode>={}",
            self.bootloader, self.tee, self.snp, self.microcode
        )?;
        if let Some(fmc) = self.fmc {
            write!(f, " fmc>={fmc}")?;
        }
        Ok(())
    }
}

impl SnpPolicy {
    pub(super) fn validate(&self) -> Result<(), PolicyError> {
        if self.max_vmpl > 3 {
            return Err(PolicyError::Invalid {
                rule: key::SNP_MAX_VMPL,
                reason: RuleError::VmplOutOfRange(self.max_vmpl),
            });
        }
        if let Some(bad) = self
            .products
            .iter()
            .find(|p| ProductLine::from_name(p).is_none())
        {
            return Err(PolicyError::Invalid {
                rule: key::SNP_PRODUCTS,
                reason: RuleError::UnknownProductLine(bad.clone()),
            });
        }
        Ok(())
    }
}
