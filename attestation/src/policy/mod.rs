//! The verifier's policy: what a relying party accepts, written in TOML.
//!
//! Every rule is explicit. An empty policy rejects everything: a platform section must be
//! present for its evidence to be considered, a measurement allowlist (or the loudly flagged
//! `allow_any_measurement`) must be given, and SEV-SNP needs a stated minimum TCB. Unknown
//! keys are errors, so a misspelt rule never silently turns into "no rule". The format is
//! documented in `docs/policy.md`.

mod gpu;
mod hex;
pub mod key;
mod runtime;
mod snp;
mod tdx;

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

pub use gpu::{GpuPolicy, Version, VersionError};
pub use hex::{HexBytes, HexError};
pub use runtime::{GpuPolicyPin, RuntimeFacts, RuntimePolicy};
pub use snp::{MinTcb, SnpPolicy};
pub use tdx::{SgxPolicy, TdxMeasurement, TdxPolicy};

use crate::checks::{self, CheckId};
use crate::tdx::TcbStatus;
use crate::verdict::{Check, Verdict};

/// Why a policy file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The TOML did not parse or a value had the wrong type or length.
    #[error("policy is not valid: {0}")]
    Syntax(#[from] toml::de::Error),
    /// A value parsed but is unusable.
    #[error("policy rule `{rule}` is invalid: {reason}")]
    Invalid {
        /// The rule's key path, e.g. `snp.max_vmpl` (one of [`key::ALL`]).
        rule: &'static str,
        /// What is wrong with it.
        reason: RuleError,
    },
}

/// What is wrong with a policy value that parsed but cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// `snp.max_vmpl` above 3.
    #[error("VMPLs are 0 to 3, found {0}")]
    VmplOutOfRange(u32),
    /// A product line silk does not know.
    #[error("unknown product line `{0}` (known: Milan, Genoa, Turin)")]
    UnknownProductLine(String),
    /// An empty list of accepted TCB statuses.
    #[error("empty: no quote could ever pass; leave it out for [\"UpToDate\"]")]
    NoStatuses,
    /// A minimum version that is not a dotted version.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// A GPU required, but none counted.
    #[error("a GPU is required but count is 0")]
    RequiredButNone,
    /// A GPU policy pin that is neither `none` nor 64 hex digits.
    #[error("`{0}` is neither `none` nor a SHA-256 (64 hex digits)")]
    GpuPolicyPin(String),
    /// An evidence provider silk does not have.
    #[error(
        "unknown evidence provider `{0}` (known: configfs-tsm, sev-guest, tdx-guest, simulated)"
    )]
    UnknownEvidenceProvider(String),
}

/// A platform section of the policy, whose absence rejects that platform's evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    /// `[snp]`.
    Snp,
    /// `[tdx]`.
    Tdx,
    /// `[sgx]`.
    Sgx,
    /// `[gpu]`.
    Gpu,
}

impl Section {
    /// The failing check (`policy.snp`, …) for evidence that has no section to be judged by.
    pub(crate) fn missing(self) -> Check {
        let (id, what): (&'static CheckId, &str) = match self {
            Section::Snp => (&checks::policy::SNP, "SEV-SNP"),
            Section::Tdx => (&checks::policy::TDX, "TDX"),
            Section::Sgx => (&checks::policy::SGX, "SGX"),
            Section::Gpu => (&checks::policy::GPU, "GPU"),
        };
        let section = id.policy.first().copied().unwrap_or_default();
        Check::fail(
            id,
            format!("a [{section}] section"),
            "none",
            format!("the policy has no [{section}] section, so {what} evidence cannot be accepted"),
        )
    }
}

/// A complete verification policy. See `docs/policy.md` for every key.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Accept evidence from silk's simulated TEE (development only; every output says so).
    #[serde(default)]
    pub allow_simulated: bool,
    /// SHA-256 digests of the silk development roots whose simulated evidence is accepted
    /// (only with `allow_simulated`).
    #[serde(default)]
    pub simulated_roots: Vec<HexBytes<32>>,
    /// Rules for AMD SEV-SNP reports; without this section SNP evidence is rejected.
    pub snp: Option<SnpPolicy>,
    /// Rules for Intel TDX quotes; without this section TDX evidence is rejected.
    pub tdx: Option<TdxPolicy>,
    /// Rules for Intel SGX quotes; without this section SGX evidence is rejected.
    pub sgx: Option<SgxPolicy>,
    /// Rules for NVIDIA GPU evidence; without this section GPU evidence is rejected.
    pub gpu: Option<GpuPolicy>,
    /// Pins on what the enclave was started with (model, evidence provider, GPU policy,
    /// payout address), as its claims state them; without it they are not pinned.
    pub runtime: Option<RuntimePolicy>,
}

impl Policy {
    /// Parses and validates a policy from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let policy: Policy = toml::from_str(text)?;
        policy.validate()?;
        Ok(policy)
    }

    fn validate(&self) -> Result<(), PolicyError> {
        if let Some(snp) = &self.snp {
            snp.validate()?;
        }
        if let Some(tdx) = &self.tdx {
            tdx.validate()?;
        }
        if let Some(gpu) = &self.gpu {
            gpu.validate()?;
        }
        if let Some(runtime) = &self.runtime {
            runtime.validate()?;
        }
        Ok(())
    }
}

/// A span of time written as a number with a unit: `90s`, `45m`, `12h`, `30d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Age(pub Duration);

/// Why text is not an [`Age`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgeError {
    /// Digits without a unit.
    #[error("`{0}` has no unit (use s, m, h or d)")]
    NoUnit(String),
    /// No digits before the unit.
    #[error("`{0}` does not start with a number")]
    NoNumber(String),
    /// A unit other than s, m, h or d.
    #[error("unknown unit `{unit}` in `{text}` (use s, m, h or d)")]
    UnknownUnit {
        /// The unit.
        unit: String,
        /// The whole text.
        text: String,
    },
    /// More seconds than a `u64` holds.
    #[error("`{0}` is too long a span")]
    TooLong(String),
}

impl Age {
    /// Parses `<digits><s|m|h|d>`.
    pub fn parse(text: &str) -> Result<Self, AgeError> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| AgeError::NoUnit(text.to_owned()))?;
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| AgeError::NoNumber(text.to_owned()))?;
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            other => {
                return Err(AgeError::UnknownUnit {
                    unit: other.to_owned(),
                    text: text.to_owned(),
                })
            }
        };
        n.checked_mul(scale)
            .map(|secs| Age(Duration::from_secs(secs)))
            .ok_or_else(|| AgeError::TooLong(text.to_owned()))
    }
}

impl std::fmt::Display for Age {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0.as_secs();
        match s {
            _ if s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            _ if s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            _ if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

impl<'de> Deserialize<'de> for Age {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Age::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Age {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A TCB status as written in a policy; it must be one of Intel's spellings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusRule(pub TcbStatus);

impl<'de> Deserialize<'de> for StatusRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<TcbStatus>()
            .map(StatusRule)
            .map_err(|_| serde::de::Error::custom(format!("unknown TCB status `{text}`")))
    }
}

impl Serialize for StatusRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

fn default_statuses() -> Vec<StatusRule> {
    vec![StatusRule(TcbStatus::UpToDate)]
}

/// The debug rule shared by every platform: debug evidence passes only when the policy
/// allows it, and then the verdict warns, since the host can read such a guest's memory.
pub(crate) fn debug_check(
    id: &'static CheckId,
    allowed: bool,
    debug_on: bool,
    what: &'static str,
    verdict: &mut Verdict,
) {
    verdict.push(Check::from_bool(
        id,
        allowed || !debug_on,
        if allowed {
            "debug allowed"
        } else {
            "debug off"
        },
        if debug_on { "debug on" } else { "debug off" },
        || format!("{what} is debuggable: the host can read and change its memory"),
    ));
    if allowed {
        verdict.warn(format!(
            "policy allows debug: {what} memory may be open to the host"
        ));
    }
}

/// Formats a list of hex values for the "expected" column.
pub(crate) fn one_of<T: std::fmt::Display>(items: &[T]) -> String {
    match items {
        [] => "(none configured)".to_owned(),
        [one] => one.to_string(),
        many => format!(
            "one of {}",
            many.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_policy_parses_but_has_no_sections() {
        let p = Policy::from_toml("").unwrap();
        assert!(p.snp.is_none() && p.tdx.is_none() && p.sgx.is_none() && p.gpu.is_none());
        assert!(!p.allow_simulated);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = Policy::from_toml("[snp]\nallow_debugg = true\n").unwrap_err();
        assert!(e.to_string().contains("allow_debugg"), "{e}");
        assert!(Policy::from_toml("nonsense = 1").is_err());
    }

    #[test]
    fn wrong_digest_length_names_the_rule() {
        let e = Policy::from_toml("[snp]\nmeasurements = [\"00\"]\n").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("measurements") && text.contains("expected 48 bytes"),
            "{text}"
        );
    }

    #[test]
    fn ages_parse_and_print() {
        assert_eq!(Age::parse("30d").unwrap().0.as_secs(), 30 * 86_400);
        assert_eq!(Age::parse("90s").unwrap().to_string(), "90s");
        assert_eq!(Age::parse("120m").unwrap().to_string(), "2h");
        assert!(Age::parse("30").is_err());
        assert!(Age::parse("5y").is_err());
        assert!(Age::parse("d").is_err());
    }

    #[test]
    fn unknown_tcb_status_is_an_error() {
        let e = Policy::from_toml("[tdx]\nallowed_tcb_statuses = [\"Fine\"]\n").unwrap_err();
        assert!(e.to_string().contains("unknown TCB status `Fine`"), "{e}");
    }

    #[test]
    fn one_of_formats() {
        assert_eq!(one_of::<u8>(&[]), "(none configured)");
        assert_eq!(one_of(&[1]), "1");
        assert_eq!(one_of(&[1, 2]), "one of 1, 2");
    }
}
