//! `[runtime]`: pins on what the enclave was started with.
//!
//! The enclave states in its claims (bound to the hardware report through REPORT_DATA)
//! the start options that change what it does with a prompt or whom it pays: the model,
//! the evidence provider, the GPU policy it checks its own GPUs against and the payout
//! address. A policy that lists accepted values for any of them refuses an enclave started
//! otherwise. Unlisted ones are not pinned.

use serde::{Deserialize, Serialize};

use super::{key, PolicyError, RuleError};
use crate::checks::runtime;
use crate::checks::CheckId;
use crate::verdict::{Check, Verdict};

/// The evidence providers `silk-enclave` has, as its claims name them.
pub const EVIDENCE_PROVIDERS: [&str; 4] = ["configfs-tsm", "sev-guest", "tdx-guest", "simulated"];

/// A pinned GPU policy: `none` (the enclave checks no GPU) or the SHA-256 of the policy
/// file, 64 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct GpuPolicyPin(pub String);

impl GpuPolicyPin {
    fn digest(&self) -> Result<Option<[u8; 32]>, RuleError> {
        if self.0 == "none" {
            return Ok(None);
        }
        hex::decode(&self.0)
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| RuleError::GpuPolicyPin(self.0.clone()))
    }
}

/// Accepted values of what the enclave was started with; an empty list pins nothing.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimePolicy {
    /// Accepted model identities (`verity:<root>`, `sha256:<digest>`).
    #[serde(default)]
    pub models: Vec<String>,
    /// Accepted evidence providers ([`EVIDENCE_PROVIDERS`]).
    #[serde(default)]
    pub evidence_providers: Vec<String>,
    /// Accepted GPU policies.
    #[serde(default)]
    pub gpu_policies: Vec<GpuPolicyPin>,
    /// Accepted payout addresses.
    #[serde(default)]
    pub payout_addresses: Vec<String>,
}

/// What an enclave says it was started with (from its claims).
#[derive(Clone, Copy, Debug)]
pub struct RuntimeFacts<'a> {
    /// The model identity.
    pub model: &'a str,
    /// The evidence provider.
    pub evidence_provider: &'a str,
    /// SHA-256 of its GPU policy, `None` without one.
    pub gpu_policy: Option<&'a [u8]>,
    /// The payout address (empty when unpaid).
    pub payout_address: &'a str,
}

impl RuntimePolicy {
    pub(super) fn validate(&self) -> Result<(), PolicyError> {
        for pin in &self.gpu_policies {
            pin.digest().map_err(|reason| PolicyError::Invalid {
                rule: key::RUNTIME_GPU_POLICIES,
                reason,
            })?;
        }
        if let Some(bad) = self
            .evidence_providers
            .iter()
            .find(|p| !EVIDENCE_PROVIDERS.contains(&p.as_str()))
        {
            return Err(PolicyError::Invalid {
                rule: key::RUNTIME_EVIDENCE_PROVIDERS,
                reason: RuleError::UnknownEvidenceProvider(bad.clone()),
            });
        }
        Ok(())
    }

    /// Pushes one check per pinned item onto `verdict`.
    pub fn check(&self, facts: &RuntimeFacts<'_>, verdict: &mut Verdict) {
        let list = |id: &'static CheckId, allowed: &[String], found: &str, what: &str| {
            let expected = allowed.join(", ");
            if allowed.iter().any(|a| a == found) {
                Check::pass(id, expected, found.to_owned())
            } else {
                Check::fail(
                    id,
                    expected,
                    found.to_owned(),
                    format!("the enclave was started with {what} {found:?}, which the policy does not list"),
                )
            }
        };
        if !self.models.is_empty() {
            verdict.push(list(
                &runtime::MODEL,
                &self.models,
                facts.model,
                "the model",
            ));
        }
        if !self.evidence_providers.is_empty() {
            verdict.push(list(
                &runtime::EVIDENCE_PROVIDER,
                &self.evidence_providers,
                facts.evidence_provider,
                "the evidence provider",
            ));
        }
        if !self.gpu_policies.is_empty() {
            let found = facts
                .gpu_policy
                .map_or_else(|| "none".to_owned(), hex::encode);
            let allowed: Vec<String> = self
                .gpu_policies
                .iter()
                .map(|p| p.0.to_ascii_lowercase())
                .collect();
            verdict.push(list(
                &runtime::GPU_POLICY,
                &allowed,
                &found,
                "the GPU policy",
            ));
        }
        if !self.payout_addresses.is_empty() {
            verdict.push(list(
                &runtime::PAYOUT_ADDRESS,
                &self.payout_addresses,
                facts.payout_address,
                "the payout address",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Platform, Policy};

    fn facts() -> RuntimeFacts<'static> {
        RuntimeFacts {
            model: "verity:ab",
            evidence_provider: "tdx-guest",
            gpu_policy: None,
            payout_address: "EQpay",
        }
    }

    fn run(toml: &str, f: &RuntimeFacts<'_>) -> Verdict {
        let policy = Policy::from_toml(toml).expect("policy");
        let mut v = Verdict::new(Platform::Tdx);
        policy.runtime.expect("[runtime]").check(f, &mut v);
        v
    }

    #[test]
    fn each_pin_runs_only_when_set_and_names_what_differs() {
        let v = run("[runtime]\nmodels = [\"verity:ab\"]\n", &facts());
        assert!(v.check(&runtime::MODEL).expect("ran").passed());
        assert!(v.check(&runtime::PAYOUT_ADDRESS).is_none());
        let v = run(
            "[runtime]\nevidence_providers = [\"sev-guest\"]\npayout_addresses = [\"EQother\"]\n\
             gpu_policies = [\"none\"]\n",
            &facts(),
        );
        let c = v.check(&runtime::EVIDENCE_PROVIDER).expect("ran");
        assert!(!c.passed());
        assert!(format!("{c:?}").contains("tdx-guest"), "{c:?}");
        assert!(!v.check(&runtime::PAYOUT_ADDRESS).expect("ran").passed());
        assert!(v.check(&runtime::GPU_POLICY).expect("ran").passed());
        let digest = [0xAB; 32];
        let mut with_gpu = facts();
        with_gpu.gpu_policy = Some(&digest);
        let pin = format!(
            "[runtime]\ngpu_policies = [\"{}\"]\n",
            hex::encode_upper(digest)
        );
        assert!(run(&pin, &with_gpu)
            .check(&runtime::GPU_POLICY)
            .expect("ran")
            .passed());
        assert!(!run(&pin, &facts())
            .check(&runtime::GPU_POLICY)
            .expect("ran")
            .passed());
    }

    #[test]
    fn bad_pins_are_refused_by_name() {
        let e = Policy::from_toml("[runtime]\ngpu_policies = [\"abc\"]\n").unwrap_err();
        assert!(e.to_string().contains(key::RUNTIME_GPU_POLICIES), "{e}");
        let e = Policy::from_toml("[runtime]\nevidence_providers = [\"tpm\"]\n").unwrap_err();
        assert!(
            e.to_string().contains("unknown evidence provider `tpm`"),
            "{e}"
        );
    }
}
