//! The `[gpu]` rules: which NVIDIA GPUs a verifier accepts and how strictly.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::{key, PolicyError, RuleError};
use crate::gpu::GpuArch;

/// Rules for NVIDIA GPU evidence. Without this section GPU evidence is rejected.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GpuPolicy {
    /// Whether the CVM must present GPU evidence at all (the composite verifier reads it).
    #[serde(default)]
    pub required: bool,
    /// The exact number of GPUs the evidence must cover (the composite verifier reads it);
    /// none: any number.
    pub count: Option<usize>,
    /// Accepted architectures (`hopper`, `blackwell`); empty accepts none.
    #[serde(default)]
    pub architectures: Vec<GpuArch>,
    /// Minimum driver version (`550.90.07`). Required: write `0` to accept any.
    pub min_driver_version: Option<String>,
    /// Minimum VBIOS version (`96.00.9F.00.01`). Required: write `0` to accept any.
    pub min_vbios_version: Option<String>,
    /// Accept evidence when no revocation (OCSP) data was supplied; every verdict warns.
    #[serde(default)]
    pub allow_missing_revocation: bool,
    /// Accept evidence whose driver or VBIOS RIM is not at hand, without comparing the
    /// measurements it would cover. For development only: every verdict warns.
    #[serde(default)]
    pub allow_missing_rims: bool,
    /// Accept GPUs in protected-PCIe (multi-GPU, NVSwitch) mode, whose trust also rests
    /// on the switches' attestation, which silk does not check.
    #[serde(default)]
    pub allow_protected_pcie: bool,
}

impl GpuPolicy {
    pub(super) fn validate(&self) -> Result<(), PolicyError> {
        for (rule, value, hex) in [
            (key::GPU_MIN_DRIVER_VERSION, &self.min_driver_version, false),
            (key::GPU_MIN_VBIOS_VERSION, &self.min_vbios_version, true),
        ] {
            if let Some(v) = value {
                Version::parse(v, hex).map_err(|e| PolicyError::Invalid {
                    rule,
                    reason: RuleError::Version(e),
                })?;
            }
        }
        if self.count == Some(0) && self.required {
            return Err(PolicyError::Invalid {
                rule: key::GPU_COUNT,
                reason: RuleError::RequiredButNone,
            });
        }
        Ok(())
    }
}

/// A dotted version compared part by part as numbers (decimal for drivers, hex for
/// VBIOS), so that `550.100` is newer than `550.90.07`.
#[derive(Clone, Debug)]
pub struct Version(Vec<u64>);

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Version {}

/// Text that is not a dotted version.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a dotted version")]
pub struct VersionError(pub String);

impl Version {
    /// Parses `text`; `hex` reads each part as hexadecimal (VBIOS versions).
    pub fn parse(text: &str, hex: bool) -> Result<Self, VersionError> {
        let radix = if hex { 16 } else { 10 };
        text.trim()
            .split('.')
            .map(|p| u64::from_str_radix(p, radix))
            .collect::<Result<Vec<_>, _>>()
            .map(Version)
            .map_err(|_| VersionError(text.to_owned()))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    /// Missing trailing parts count as zero: `550.90` equals `550.90.0`.
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.0.len().max(other.0.len());
        let part = |v: &Self, i: usize| v.0.get(i).copied().unwrap_or(0);
        (0..n)
            .map(|i| part(self, i).cmp(&part(other, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    #[test]
    fn versions_compare_numerically() {
        let v = |s| Version::parse(s, false).unwrap();
        assert!(v("550.100") > v("550.90.07"));
        assert!(v("550.90") == v("550.90.0"));
        let h = |s| Version::parse(s, true).unwrap();
        assert!(h("96.00.9F.00.01") > h("96.00.5e.00.04"));
        assert!(Version::parse("5x.1", false).is_err());
    }

    #[test]
    fn gpu_section_parses_and_validates() {
        let p = Policy::from_toml(
            "[gpu]\nrequired = true\ncount = 1\narchitectures = [\"hopper\"]\n\
             min_driver_version = \"550.0\"\nmin_vbios_version = \"96.00.5E.00.01\"\n",
        )
        .unwrap();
        let gpu = p.gpu.unwrap();
        assert_eq!(gpu.architectures, vec![GpuArch::Hopper]);
        assert!(!gpu.allow_missing_revocation && !gpu.allow_missing_rims);
        let e = Policy::from_toml("[gpu]\nmin_driver_version = \"new\"\n").unwrap_err();
        assert!(e.to_string().contains("gpu.min_driver_version"), "{e}");
        assert!(Policy::from_toml("[gpu]\narchitectures = [\"ampere\"]\n").is_err());
        assert!(Policy::from_toml("[gpu]\nallow_mising_rims = true\n").is_err());
        assert!(Policy::from_toml("[gpu]\nrequired = true\ncount = 0\n").is_err());
    }
}
