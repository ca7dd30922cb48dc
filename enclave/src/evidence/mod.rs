//! Evidence providers: how the enclave asks the hardware (or the simulator) for a report
//! over its REPORT_DATA.
//!
//! - [`configfs`]: Linux configfs-tsm, for SEV-SNP reports and TDX quotes (preferred).
//! - [`sev_guest`]: `/dev/sev-guest` SNP_GET_REPORT / SNP_GET_EXT_REPORT ioctls.
//! - [`tdx_guest`]: `/dev/tdx_guest` TDX_CMD_GET_REPORT0 (a local TDREPORT, not a quote).
//! - [`SimulatedProvider`]: silk's development platform, for machines without a TEE.
//! - [`ccel`]: the TDX event log the kernel exports from the ACPI CCEL table.
//! - [`gpu`]: NVIDIA GPU reports and certificate chains through NVML (loaded at run time).
//!
//! All sit behind [`EvidenceProvider`]; [`detect`] picks what the machine offers.

pub mod ccel;
pub mod configfs;
pub mod gpu;
pub mod rtmr;
pub mod sev_guest;
mod sys;
pub mod tdx_guest;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use silk_protocol::attestation::snp::simulated::{SimulatedChain, SimulatedPlatform};

/// What kind of evidence a provider returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// An SEV-SNP attestation report.
    SevSnp,
    /// A TDX DCAP quote.
    Tdx,
    /// A TDX TDREPORT (verifiable only on the same platform).
    TdxReport,
    /// silk's simulated SNP-layout report.
    Simulated,
}

/// Evidence as the kernel (or simulator) returned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvidence {
    /// Its kind.
    pub platform: Platform,
    /// The report or quote.
    pub evidence: Vec<u8>,
    /// Certificates the platform supplied (SNP certificate table), if any.
    pub certificates: Option<Vec<u8>>,
}

/// Why evidence could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// A file or device operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The kernel or firmware answered something malformed.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The firmware refused the request.
    #[error("firmware error {code:#x} ({meaning})")]
    Firmware {
        /// The status code.
        code: u32,
        /// Its name in the SNP ABI.
        meaning: &'static str,
    },
    /// Another process wrote to the configfs-tsm request meanwhile.
    #[error(
        "configfs-tsm request raced with another writer (generation {found}, expected {expected})"
    )]
    Raced {
        /// Generation expected after our writes.
        expected: u64,
        /// Generation found.
        found: u64,
    },
    /// configfs-tsm names a backend silk does not know.
    #[error("configfs-tsm provider `{0}` is not supported (expected sev_guest or tdx_guest)")]
    UnknownProvider(String),
    /// The provider cannot work here.
    #[error("{0}")]
    Unavailable(String),
}

/// Something that turns 64 bytes of REPORT_DATA into signed evidence.
pub trait EvidenceProvider: Send + Sync {
    /// A short name for logs and health output.
    fn name(&self) -> &'static str;
    /// Evidence over `report_data`.
    fn report(&self, report_data: &[u8; 64]) -> Result<RawEvidence, EvidenceError>;
    /// The development chain, for the simulated provider only.
    fn simulated_chain(&self) -> Option<&SimulatedChain> {
        None
    }
}

/// configfs-tsm under a root directory.
pub struct ConfigFsProvider {
    /// Usually [`configfs::DEFAULT_ROOT`].
    pub root: PathBuf,
    /// SNP VMPL to request (`privlevel`), if any.
    pub vmpl: Option<u32>,
}

static REQUESTS: AtomicU64 = AtomicU64::new(0);

impl EvidenceProvider for ConfigFsProvider {
    fn name(&self) -> &'static str {
        "configfs-tsm"
    }
    fn report(&self, report_data: &[u8; 64]) -> Result<RawEvidence, EvidenceError> {
        let name = format!(
            "silk-{}-{}",
            std::process::id(),
            REQUESTS.fetch_add(1, Ordering::Relaxed)
        );
        configfs::request(&configfs::SysFs, &self.root, &name, report_data, self.vmpl)
    }
}

/// `/dev/sev-guest`.
pub struct SevGuestProvider {
    /// Usually [`sev_guest::DEVICE`].
    pub device: PathBuf,
    /// VMPL to request.
    pub vmpl: u32,
    /// Ask for the extended report (with the host's certificate table).
    pub extended: bool,
}

impl EvidenceProvider for SevGuestProvider {
    fn name(&self) -> &'static str {
        "sev-guest"
    }
    fn report(&self, report_data: &[u8; 64]) -> Result<RawEvidence, EvidenceError> {
        if self.extended {
            sev_guest::get_ext_report(&self.device, report_data, self.vmpl)
        } else {
            sev_guest::get_report(&self.device, report_data, self.vmpl)
        }
    }
}

/// `/dev/tdx_guest` (TDREPORT only).
pub struct TdxGuestProvider {
    /// Usually [`tdx_guest::DEVICE`].
    pub device: PathBuf,
}

impl EvidenceProvider for TdxGuestProvider {
    fn name(&self) -> &'static str {
        "tdx-guest"
    }
    fn report(&self, report_data: &[u8; 64]) -> Result<RawEvidence, EvidenceError> {
        tdx_guest::get_tdreport(&self.device, report_data)
    }
}

/// silk's simulated platform: SNP-layout reports from a development chain.
pub struct SimulatedProvider {
    platform: SimulatedPlatform,
    measurement: [u8; 48],
}

impl SimulatedProvider {
    /// A provider that reports `measurement` (e.g. the image manifest's digest, widened).
    pub fn new(platform: SimulatedPlatform, measurement: [u8; 48]) -> Self {
        Self {
            platform,
            measurement,
        }
    }

    /// The development chain a verifier needs (and pins by its root's digest).
    pub fn chain(&self) -> &SimulatedChain {
        self.platform.chain()
    }
}

impl EvidenceProvider for SimulatedProvider {
    fn name(&self) -> &'static str {
        "simulated"
    }
    fn report(&self, report_data: &[u8; 64]) -> Result<RawEvidence, EvidenceError> {
        Ok(RawEvidence {
            platform: Platform::Simulated,
            evidence: self.platform.report(&self.measurement, report_data),
            certificates: None,
        })
    }
    fn simulated_chain(&self) -> Option<&SimulatedChain> {
        Some(self.platform.chain())
    }
}

/// Which provider to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// configfs-tsm.
    ConfigFs,
    /// `/dev/sev-guest`.
    SevGuest,
    /// `/dev/tdx_guest`.
    TdxGuest,
    /// The simulator.
    Simulated,
}

impl std::str::FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "configfs-tsm" | "configfs" | "tsm" => Ok(Self::ConfigFs),
            "sev-guest" => Ok(Self::SevGuest),
            "tdx-guest" => Ok(Self::TdxGuest),
            "simulated" => Ok(Self::Simulated),
            other => Err(format!(
                "unknown evidence provider `{other}` (configfs-tsm, sev-guest, tdx-guest, simulated)"
            )),
        }
    }
}

/// The hardware provider this machine offers, looking under `root` ("/" normally):
/// configfs-tsm first, then the guest devices. `None` on a machine without a TEE — the
/// simulator is never chosen implicitly.
pub fn detect(root: &Path) -> Option<ProviderKind> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    if at(configfs::DEFAULT_ROOT).is_dir() {
        Some(ProviderKind::ConfigFs)
    } else if at(sev_guest::DEVICE).exists() {
        Some(ProviderKind::SevGuest)
    } else if at(tdx_guest::DEVICE).exists() {
        Some(ProviderKind::TdxGuest)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_prefers_configfs_and_never_simulates() {
        let root = std::env::temp_dir().join(format!("silk-detect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("dev")).unwrap();
        assert_eq!(detect(&root), None);
        std::fs::write(root.join("dev/tdx_guest"), b"").unwrap();
        assert_eq!(detect(&root), Some(ProviderKind::TdxGuest));
        std::fs::write(root.join("dev/sev-guest"), b"").unwrap();
        assert_eq!(detect(&root), Some(ProviderKind::SevGuest));
        std::fs::create_dir_all(root.join("sys/kernel/config/tsm/report")).unwrap();
        assert_eq!(detect(&root), Some(ProviderKind::ConfigFs));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn provider_names_parse() {
        assert_eq!(
            "simulated".parse::<ProviderKind>(),
            Ok(ProviderKind::Simulated)
        );
        assert!("sgx"
            .parse::<ProviderKind>()
            .unwrap_err()
            .contains("unknown"));
    }

    #[test]
    fn simulated_provider_binds_report_data() {
        let p = SimulatedProvider::new(SimulatedPlatform::generate().unwrap(), [3; 48]);
        let ev = p.report(&[8; 64]).unwrap();
        assert_eq!(ev.platform, Platform::Simulated);
        assert_eq!(&ev.evidence[0x50..0x90], &[8; 64]);
        assert_eq!(&ev.evidence[0x90..0xC0], &[3; 48]);
    }
}
