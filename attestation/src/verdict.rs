//! The outcome of verifying evidence: every check that ran, each with what was expected,
//! what was found and whether it passed.
//!
//! A [`Verdict`] accepts only when it holds at least one check and every check passed, so an
//! empty verdict (nothing was checked) is a rejection, never an acceptance by default.

use serde::Serialize;

use crate::checks::CheckId;

/// Which family of checks a [`Check`] belongs to, in the order a verifier runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Vendor signature chain up to a pinned root, and the report's own signature.
    Signature,
    /// Platform report fields: debug, TCB, VMPL, TD attributes, guest policy.
    Platform,
    /// Measurements against the policy's allowlist.
    Measurement,
    /// REPORT_DATA binding.
    Binding,
    /// Age of the evidence and its collateral.
    Freshness,
    /// Not attestation: price offers, usage receipts and their acknowledgements (what an
    /// answer cost, signed by the attested receipt key and by the client).
    Usage,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Signature => "signature",
            Stage::Platform => "platform",
            Stage::Measurement => "measurement",
            Stage::Binding => "binding",
            Stage::Freshness => "freshness",
            Stage::Usage => "usage",
        })
    }
}

/// Whether a check passed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The check held.
    Pass,
    /// The check failed; the reason says why in words.
    Fail {
        /// Why the check failed.
        reason: String,
    },
}

/// One check of a verification, made from its entry in the registry ([`crate::checks`]),
/// which gives it its name and stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Check {
    /// Stable, machine-readable name, e.g. `snp.report_signature`.
    pub name: &'static str,
    /// The family the check belongs to.
    pub stage: Stage,
    /// What the policy or the vendor chain expects, in words.
    pub expected: String,
    /// What the evidence shows.
    pub found: String,
    /// Pass or fail, with the reason.
    pub outcome: Outcome,
}

impl Check {
    /// A passing check.
    pub fn pass(
        id: &'static CheckId,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        Self {
            name: id.name,
            stage: id.stage,
            expected: expected.into(),
            found: found.into(),
            outcome: Outcome::Pass,
        }
    }

    /// A failing check with its reason.
    pub fn fail(
        id: &'static CheckId,
        expected: impl Into<String>,
        found: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            name: id.name,
            stage: id.stage,
            expected: expected.into(),
            found: found.into(),
            outcome: Outcome::Fail {
                reason: reason.into(),
            },
        }
    }

    /// A check that passes when `ok` holds, and otherwise fails with `reason`.
    pub fn from_bool(
        id: &'static CheckId,
        ok: bool,
        expected: impl Into<String>,
        found: impl Into<String>,
        reason: impl FnOnce() -> String,
    ) -> Self {
        if ok {
            Self::pass(id, expected, found)
        } else {
            Self::fail(id, expected, found, reason())
        }
    }

    /// A check that passes with `Ok(found)` and fails with the error as its reason.
    pub fn from_result<E: std::fmt::Display>(
        id: &'static CheckId,
        expected: impl Into<String>,
        result: Result<String, E>,
        found_on_error: impl Into<String>,
    ) -> Self {
        match result {
            Ok(found) => Self::pass(id, expected, found),
            Err(e) => Self::fail(id, expected, found_on_error, e.to_string()),
        }
    }

    /// Whether this check passed.
    pub fn passed(&self) -> bool {
        matches!(self.outcome, Outcome::Pass)
    }

    /// Whether this is the check `id`.
    pub fn is(&self, id: &CheckId) -> bool {
        self.name == id.name
    }
}

/// The evidence format a verdict is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// An AMD SEV-SNP attestation report.
    SevSnp,
    /// An Intel TDX DCAP quote.
    Tdx,
    /// An Intel SGX DCAP quote.
    Sgx,
    /// An NVIDIA GPU's SPDM attestation report.
    NvidiaGpu,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Platform::SevSnp => "AMD SEV-SNP",
            Platform::Tdx => "Intel TDX",
            Platform::Sgx => "Intel SGX",
            Platform::NvidiaGpu => "NVIDIA GPU",
        })
    }
}

/// Every check run on one piece of evidence, and the warnings a reader must see.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// The evidence format.
    pub platform: Platform,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
    /// Things that passed but weaken the result (e.g. a policy that allows any measurement).
    pub warnings: Vec<String>,
    /// What the evidence says, for display: field name and value (hex for digests).
    pub facts: Vec<Fact>,
    /// True when the evidence came from silk's simulated platform, not hardware.
    pub simulated: bool,
}

/// One field of the evidence, shown to a reader beside the checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fact {
    /// The field's name, e.g. `measurement`.
    pub name: &'static str,
    /// Its value in words or hex.
    pub value: String,
}

impl Verdict {
    /// An empty verdict for `platform`; it rejects until checks are added and all pass.
    pub fn new(platform: Platform) -> Self {
        Self {
            platform,
            checks: Vec::new(),
            warnings: Vec::new(),
            facts: Vec::new(),
            simulated: false,
        }
    }

    /// Adds one check.
    pub fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Takes in the facts, warnings and checks of a part's verdict (one GPU's, folded into
    /// the CVM's or into all GPUs'), after a fact `gpu` naming the part.
    pub fn absorb(&mut self, part: String, other: Verdict) {
        self.fact("gpu", part);
        self.facts.extend(other.facts);
        self.warnings.extend(other.warnings);
        self.checks.extend(other.checks);
    }

    /// Adds a warning.
    pub fn warn(&mut self, warning: impl Into<String>) {
        self.warnings.push(warning.into());
    }

    /// Records a field of the evidence for display.
    pub fn fact(&mut self, name: &'static str, value: impl Into<String>) {
        self.facts.push(Fact {
            name,
            value: value.into(),
        });
    }

    /// True only when at least one check ran and every check passed.
    pub fn accepted(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(Check::passed)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed())
    }

    /// The check `id`, if it ran (the first, when it ran for several parts).
    pub fn check(&self, id: &CheckId) -> Option<&Check> {
        self.checks.iter().find(|c| c.is(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::snp;

    #[test]
    fn empty_verdict_rejects() {
        assert!(!Verdict::new(Platform::SevSnp).accepted());
    }

    #[test]
    fn one_failure_rejects_and_later_checks_stay_visible() {
        let mut v = Verdict::new(Platform::SevSnp);
        v.push(Check::pass(&snp::REPORT_SIGNATURE, "x", "x"));
        v.push(Check::fail(&snp::DEBUG, "x", "y", "differs"));
        v.push(Check::pass(&snp::REPORT_DATA, "x", "x"));
        assert!(!v.accepted());
        assert_eq!(
            v.failures().map(|c| c.name).collect::<Vec<_>>(),
            [snp::DEBUG.name]
        );
        assert!(v.check(&snp::REPORT_DATA).is_some_and(Check::passed));
        assert_eq!(v.check(&snp::DEBUG).map(|c| c.stage), Some(Stage::Platform));
    }

    #[test]
    fn all_passing_accepts() {
        let mut v = Verdict::new(Platform::SevSnp);
        v.push(Check::from_bool(&snp::DEBUG, true, "", "", String::new));
        assert!(v.accepted());
    }
}
