//! Intel TDX and SGX rules; `crate::tdx` evaluates them against a verified quote.

use serde::{Deserialize, Serialize};

use super::{default_statuses, key, Age, HexBytes, PolicyError, RuleError, StatusRule};

/// One accepted TDX measurement: an MRTD and, where given, RTMR values. An RTMR left out
/// is not compared (say so explicitly by leaving it out; the verdict warns).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TdxMeasurement {
    /// The TD's build-time measurement (48 bytes).
    pub mrtd: HexBytes<48>,
    /// RTMR0 (firmware configuration, VMM-dependent).
    pub rtmr0: Option<HexBytes<48>>,
    /// RTMR1 (kernel).
    pub rtmr1: Option<HexBytes<48>>,
    /// RTMR2 (kernel command line and initrd).
    pub rtmr2: Option<HexBytes<48>>,
    /// RTMR3 (runtime, e.g. application measurements).
    pub rtmr3: Option<HexBytes<48>>,
}

impl TdxMeasurement {
    pub(crate) fn rtmrs(&self) -> [Option<&HexBytes<48>>; 4] {
        [
            self.rtmr0.as_ref(),
            self.rtmr1.as_ref(),
            self.rtmr2.as_ref(),
            self.rtmr3.as_ref(),
        ]
    }
}

impl std::fmt::Display for TdxMeasurement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mrtd={}", self.mrtd)?;
        for (i, r) in self.rtmrs().iter().enumerate() {
            match r {
                Some(r) => write!(f, " rtmr{i}={r}")?,
                None => write!(f, " rtmr{i}=*")?,
            }
        }
        Ok(())
    }
}

/// Rules for Intel TDX quotes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TdxPolicy {
    /// Accepted measurements (MRTD with optional RTMRs).
    #[serde(default)]
    pub measurements: Vec<TdxMeasurement>,
    /// Accept any measurement. For experiments only: every verdict warns about it.
    #[serde(default)]
    pub allow_any_measurement: bool,
    /// Accept TDs with the DEBUG attribute.
    #[serde(default)]
    pub allow_debug: bool,
    /// TCB statuses accepted (Intel's spellings); default `["UpToDate"]` only.
    #[serde(default = "default_statuses")]
    pub allowed_tcb_statuses: Vec<StatusRule>,
    /// When set, every advisory id the TCB status carries must be in this list.
    pub allowed_advisory_ids: Option<Vec<String>>,
    /// Minimum TEE_TCB_SVN, compared byte by byte (32 hex digits).
    pub min_tee_tcb_svn: Option<HexBytes<16>>,
    /// REPORT_DATA that the quote must carry exactly.
    pub report_data: Option<HexBytes<64>>,
    /// Exact MRCONFIGID.
    pub mr_config_id: Option<HexBytes<48>>,
    /// Exact MROWNER.
    pub mr_owner: Option<HexBytes<48>>,
    /// Exact MROWNERCONFIG.
    pub mr_owner_config: Option<HexBytes<48>>,
    /// Accepted MRSEAM values (the TDX module's measurement); empty accepts any.
    #[serde(default)]
    pub mr_seam: Vec<HexBytes<48>>,
    /// Oldest acceptable collateral, counted from its TCB info issue date.
    pub max_collateral_age: Option<Age>,
}

/// Rules for Intel SGX quotes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SgxPolicy {
    /// Accepted MRENCLAVE values.
    #[serde(default)]
    pub mr_enclave: Vec<HexBytes<32>>,
    /// Accepted MRSIGNER values; empty accepts any signer of an allowed MRENCLAVE.
    #[serde(default)]
    pub mr_signer: Vec<HexBytes<32>>,
    /// Accept any MRENCLAVE. For experiments only.
    #[serde(default)]
    pub allow_any_measurement: bool,
    /// Accept debug enclaves.
    #[serde(default)]
    pub allow_debug: bool,
    /// Minimum ISV SVN.
    pub min_isv_svn: Option<u16>,
    /// TCB statuses accepted; default `["UpToDate"]` only.
    #[serde(default = "default_statuses")]
    pub allowed_tcb_statuses: Vec<StatusRule>,
    /// When set, every advisory id must be in this list.
    pub allowed_advisory_ids: Option<Vec<String>>,
    /// REPORT_DATA that the quote must carry exactly.
    pub report_data: Option<HexBytes<64>>,
    /// Oldest acceptable collateral.
    pub max_collateral_age: Option<Age>,
}

impl TdxPolicy {
    pub(super) fn validate(&self) -> Result<(), PolicyError> {
        if self.allowed_tcb_statuses.is_empty() {
            return Err(PolicyError::Invalid {
                rule: key::TDX_ALLOWED_TCB_STATUSES,
                reason: RuleError::NoStatuses,
            });
        }
        Ok(())
    }
}
