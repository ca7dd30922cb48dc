//! NVIDIA GPU confidential-computing evidence (Hopper H100, Blackwell B100/B200) and its
//! verification, after NVIDIA's reference verifiers (nv-local-gpu-verifier and the
//! attestation SDK).
//!
//! - [`spdm`]: the attestation report, an SPDM 1.1 GET_MEASUREMENTS request and response
//!   with NVIDIA's opaque data (driver and VBIOS versions, FWID, NVDEC0 status, …).
//! - [`certs`]: the device certificate chain to NVIDIA's pinned Device Identity CA, and
//!   the FWID in the leaf's TCG DICE extension.
//! - [`rim`]: the signed SWID reference manifests (driver and VBIOS RIMs) with their
//!   XML signature, canonicalized by [`c14n`].
//! - [`verify()`]: every check, each named (`gpu.report_signature`, `gpu.nonce`, …, see
//!   [`crate::checks::gpu`]), into a [`Verdict`](crate::Verdict); the rules come from the
//!   policy's `[gpu]` section ([`crate::policy::GpuPolicy`]).
//!
//! See `docs/gpu.md` for the checks and what is not done.

pub mod c14n;
pub mod certs;
mod measurements;
pub mod revocation;
pub mod rim;
pub mod spdm;
mod verify;

use serde::{Deserialize, Serialize};

pub use revocation::Revocation;
pub use rim::{
    GoldenMeasurement, MeasurementError, Rim, RimError, SchemaError, SignatureFormatError,
};
pub use spdm::{OpaqueError, RecordError, SpdmError, SpdmReport};
pub use verify::{
    check_count, report_signature, verify, verify_with, NonceRule, ReportSignatureError,
};

/// A GPU architecture with confidential computing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuArch {
    /// Hopper (H100, H200; chip GH100).
    Hopper,
    /// Blackwell (B100, B200, GB200; chip GB100 and later).
    Blackwell,
}

impl GpuArch {
    /// NVIDIA's name for it, as NVML and NRAS spell it (`HOPPER`).
    pub fn nvidia_name(self) -> &'static str {
        match self {
            GpuArch::Hopper => "HOPPER",
            GpuArch::Blackwell => "BLACKWELL",
        }
    }

    /// Parses `hopper`/`HOPPER`/`blackwell`/`BLACKWELL`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "hopper" => Some(GpuArch::Hopper),
            "blackwell" => Some(GpuArch::Blackwell),
            _ => None,
        }
    }

    /// The id under which NVIDIA's RIM service publishes the driver RIM for `version`.
    pub fn driver_rim_id(self, version: &str) -> String {
        match self {
            GpuArch::Hopper => format!("NV_GPU_DRIVER_GH100_{version}"),
            GpuArch::Blackwell => format!("NV_GPU_CC_DRIVER_GB100_{version}"),
        }
    }
}

impl std::fmt::Display for GpuArch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GpuArch::Hopper => "Hopper",
            GpuArch::Blackwell => "Blackwell",
        })
    }
}

/// One GPU's evidence, as the enclave collects it through NVML and ships it in the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuEvidence {
    /// The architecture NVML reported (checked against the certificate chain).
    pub arch: GpuArch,
    /// The attestation report: SPDM GET_MEASUREMENTS request and signed response.
    pub report: Vec<u8>,
    /// The device certificate chain, PEM, leaf first, ending in NVIDIA's root.
    pub cert_chain_pem: Vec<u8>,
}

/// The RIMs a verifier has, each with where it came from (a file name, a URL).
///
/// A report is matched with its RIMs the way NVIDIA's verifiers match them: by what the
/// RIM says it describes (Meta's `colloquialVersion`, the driver or VBIOS version, and
/// `product`, the chip), never by a file name or the SWID `tagId` (NVIDIA's tagIds are
/// opaque hashes, and its test and production RIMs for one VBIOS share one). Several RIMs
/// may describe one version; the verifier tries each. Entries are parsed when added and
/// verified when used.
#[derive(Clone, Debug, Default)]
pub struct RimStore {
    rims: Vec<StoredRim>,
}

/// One RIM in a [`RimStore`], with where it came from.
#[derive(Clone, Debug)]
pub struct StoredRim {
    /// Where the RIM came from, as verdicts name it (`1010_0200_882_96005E0001_PROD.swidtag`).
    pub source: String,
    /// The parsed (not yet verified) RIM.
    pub rim: Rim,
}

impl RimStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses and adds the RIM read from `source` (a file name, shown in verdicts). A RIM
    /// that describes the same version as another is kept beside it, not in its place.
    pub fn insert(&mut self, source: &str, xml: &[u8]) -> Result<(), RimError> {
        let rim = Rim::parse(xml)?;
        self.rims.push(StoredRim {
            source: source.to_owned(),
            rim,
        });
        Ok(())
    }

    /// The RIMs that describe `version` (a driver version like `550.144.03` or a VBIOS
    /// version like `96.00.5E.00.01`; case does not matter), in the order they were added.
    pub fn for_version<'a>(&'a self, version: &str) -> impl Iterator<Item = &'a StoredRim> + 'a {
        let version = version.trim().to_owned();
        self.rims
            .iter()
            .filter(move |s| s.rim.version.eq_ignore_ascii_case(&version))
    }

    /// How many RIMs the store holds.
    pub fn len(&self) -> usize {
        self.rims.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.rims.is_empty()
    }
}
