//! The admission check of a registration: what the router can check from the bytes alone
//! (the challenge is the registry's; the connection to the worker is the server's).
//!
//! It only keeps junk out of the list. Clients verify every listed worker themselves
//! under their own policy; passing here proves nothing to them.

use axum::http::StatusCode;
use silk_protocol::attestation::{Policy, Verdict};
use silk_protocol::gpu::GpuInputs;
use silk_protocol::network::Registration;
use silk_protocol::{Claims, Expectations};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::registry::Listing;
use silk_protocol::attestation::checks::offer;

/// The oldest fresh evidence accepted, in seconds (the challenge itself lives 60 s).
pub const MAX_FRESH_AGE_SECS: u64 = 120;

/// The longest `host:port` accepted.
const MAX_ADDRESS: usize = 300;

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A bundle could not be evaluated at all.
    #[error("{which} evidence bundle: {error}")]
    Bundle {
        /// `fresh` or `base`.
        which: &'static str,
        /// What is wrong with it.
        error: String,
    },
    /// A bundle was evaluated and failed these checks.
    #[error("{which} evidence refused; failed checks: {}", failed.join(", "))]
    Admission {
        /// `fresh` or `base`.
        which: &'static str,
        /// The names of the failed checks.
        failed: Vec<String>,
    },
    /// The fresh and base claims are not the same enclave's.
    #[error("claims_mismatch: the fresh and base claims differ in {0}")]
    ClaimsMismatch(&'static str),
    /// The offer does not verify, or is for another model.
    #[error("offer refused by `{check}`: {detail}")]
    Offer {
        /// The failed check, e.g. `offer.signature`, `offer.model`.
        check: &'static str,
        /// In words.
        detail: String,
    },
    /// The address is not `host:port`.
    #[error("address `{0}` is not host:port")]
    Address(String),
}

impl Refusal {
    /// The refusal a registrant sees.
    pub fn to_api(&self) -> ApiError {
        let (status, code) = match self {
            Refusal::Bundle { .. } => (StatusCode::BAD_REQUEST, "bad_bundle"),
            Refusal::Admission { .. } => (StatusCode::FORBIDDEN, "admission_refused"),
            Refusal::ClaimsMismatch(_) => (StatusCode::FORBIDDEN, "claims_mismatch"),
            Refusal::Offer { .. } => (StatusCode::BAD_REQUEST, "bad_offer"),
            Refusal::Address(_) => (StatusCode::BAD_REQUEST, "bad_address"),
        };
        ApiError::new(status, code, self.to_string())
    }
}

fn judged(which: &'static str, verdict: &Verdict) -> Result<(), Refusal> {
    if verdict.accepted() {
        return Ok(());
    }
    let mut failed: Vec<String> = verdict.failures().map(|c| c.name.to_owned()).collect();
    if failed.is_empty() {
        failed.push("no check passed".into());
    }
    Err(Refusal::Admission { which, failed })
}

/// Checks a registration whose challenge is `nonce` (already consumed) at `now`: fresh
/// evidence over the challenge, base evidence, both the same enclave, the offer signed by
/// that enclave for this worker and model, and the address's form. Returns the listing.
pub fn check(
    reg: Registration,
    nonce: &[u8],
    policy: &Policy,
    gpu: &GpuInputs,
    now: OffsetDateTime,
) -> Result<Listing, Refusal> {
    let fresh_expect = Expectations {
        challenge: Some(nonce.to_vec()),
        max_age_secs: Some(MAX_FRESH_AGE_SECS),
        collateral: None,
        gpu: gpu.clone(),
        image_events: None,
    };
    let bundle = |which| {
        move |e: silk_protocol::BundleError| Refusal::Bundle {
            which,
            error: e.to_string(),
        }
    };
    let (fresh, verdict) = reg
        .fresh
        .verify(policy, &fresh_expect, now)
        .map_err(bundle("fresh"))?;
    judged("fresh", &verdict)?;
    let base_expect = Expectations {
        gpu: gpu.clone(),
        ..Expectations::default()
    };
    let (base, verdict) = reg
        .base
        .verify(policy, &base_expect, now)
        .map_err(bundle("base"))?;
    judged("base", &verdict)?;
    same_enclave(&fresh, &base)?;
    let id_bytes = base.digest().map_err(|e| Refusal::Bundle {
        which: "base",
        error: e.to_string(),
    })?;
    let now_unix = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    let offer = reg
        .offer
        .verify(&base, &id_bytes, now_unix)
        .map_err(|e| Refusal::Offer {
            check: e.check(),
            detail: e.to_string(),
        })?;
    if offer.model != reg.model {
        return Err(Refusal::Offer {
            check: offer::MODEL.name,
            detail: format!(
                "the offer is for model `{}`, the registration for `{}`",
                offer.model, reg.model
            ),
        });
    }
    check_address(&reg.address)?;
    Ok(Listing {
        id: hex::encode(id_bytes),
        id_bytes,
        model: reg.model,
        bundle: reg.base,
        offer: reg.offer,
        claims: base,
        address: reg.address,
    })
}

/// The fresh claims stand for the base claims only if every key and identity in them is
/// the same (they differ in challenge, time and GPU nonce alone).
fn same_enclave(fresh: &Claims, base: &Claims) -> Result<(), Refusal> {
    let fields: [(&'static str, bool); 6] = [
        (
            "hpke_public_key",
            fresh.hpke_public_key == base.hpke_public_key,
        ),
        (
            "tls_spki_sha256",
            fresh.tls_spki_sha256 == base.tls_spki_sha256,
        ),
        ("image_digest", fresh.image_digest == base.image_digest),
        ("model", fresh.model == base.model),
        (
            "receipt_public_key",
            fresh.receipt_public_key == base.receipt_public_key,
        ),
        (
            "payout_address",
            fresh.payout_address == base.payout_address,
        ),
    ];
    match fields.iter().find(|(_, same)| !same) {
        Some((name, _)) => Err(Refusal::ClaimsMismatch(name)),
        None => Ok(()),
    }
}

/// `host:port` with a non-empty host (IPv6 in brackets) and a non-zero port. The host is
/// resolved when connecting.
pub fn check_address(address: &str) -> Result<(), Refusal> {
    let bad = || Refusal::Address(address.chars().take(80).collect());
    if address.len() > MAX_ADDRESS || address.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad());
    }
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty() && !host.contains(':')
    };
    if port == 0 || !host_ok {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_port() {
        for ok in ["127.0.0.1:8443", "worker.example:443", "[::1]:8443"] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "host",
            ":443",
            "host:0",
            "host:99999",
            "::1:8443",
            "[::1:8443",
            "http://host:443",
            "a b:1",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }
}
