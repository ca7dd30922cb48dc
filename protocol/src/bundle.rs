//! The evidence bundle an enclave serves, and its verification against a policy.
//!
//! The bundle is JSON (binary fields in standard base64) so that `GET /v1/attestation`
//! can be read by any client and the same bytes can ride in the RA-TLS certificate
//! extension. Verifying it means: the platform evidence verifies under the policy (vendor
//! chain, report fields, measurement), the report's REPORT_DATA equals SHA-512 of the
//! canonical claims the bundle carries, the claims answer the client's challenge, and they
//! are fresh. Every step is a named check in one verdict.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use silk_attestation::checks;
use silk_attestation::snp::certs::SnpCertificates;
use silk_attestation::tdx::replay::{self, Predicted};
use silk_attestation::tdx::{QuoteBody, TdxCollateral};
use silk_attestation::{verify_quote, verify_snp, Check, Policy, Verdict};
use time::OffsetDateTime;

use crate::claims::Claims;

/// Binary data written as standard base64 in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        B64.decode(text.as_bytes())
            .map(Bytes)
            .map_err(|e| serde::de::Error::custom(format!("not base64: {e}")))
    }
}

/// The hardware (or simulated) evidence in a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PlatformEvidence {
    /// An SEV-SNP report with the certificates that sign it. For silk's simulated platform
    /// `ask` and `ark` are the development chain.
    SevSnp {
        /// The attestation report.
        report: Bytes,
        /// The VCEK or VLEK, DER.
        vek: Bytes,
        /// The ASK or ASVK, DER, when known.
        ask: Option<Bytes>,
        /// The ARK, DER, when known.
        ark: Option<Bytes>,
    },
    /// A TDX DCAP quote with its collateral when the enclave has it cached.
    Tdx {
        /// The quote.
        quote: Bytes,
        /// Intel PCS collateral (JSON), when cached.
        collateral: Option<Bytes>,
        /// The TD's event log (the ACPI CCEL log area, padding trimmed), whose replay
        /// must give the quote's RTMR0-3 (`tdx.event_log`). Absent from enclaves that do
        /// not read it, and then not checked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_log: Option<Bytes>,
    },
}

/// What an enclave serves at `GET /v1/attestation`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceBundle {
    /// Bundle format version (1).
    pub version: u32,
    /// The platform evidence.
    pub platform: PlatformEvidence,
    /// The canonical claims whose SHA-512 is the report's REPORT_DATA.
    pub claims: Bytes,
    /// Evidence of the GPUs attached to the CVM, over the claims' GPU nonce.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<crate::gpu::GpuItem>,
}

/// Why a bundle could not even be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not valid JSON of the bundle's shape.
    #[error("evidence bundle is malformed: {0}")]
    Json(#[from] serde_json::Error),
    /// A version this code does not understand.
    #[error("evidence bundle version {0} is not supported")]
    Version(u32),
    /// The claims do not decode.
    #[error("evidence bundle claims: {0}")]
    Claims(#[from] crate::claims::ClaimsError),
    /// The platform evidence is malformed.
    #[error("platform evidence: {0}")]
    Evidence(#[from] silk_attestation::EvidenceError),
    /// A TDX quote came without collateral and none was supplied.
    #[error("the TDX quote has no collateral in the bundle and none was supplied")]
    NoCollateral,
    /// Collateral is malformed.
    #[error("TDX collateral: {0}")]
    Collateral(String),
}

/// What the verifier expects beyond its policy.
#[derive(Clone, Debug, Default)]
pub struct Expectations {
    /// The challenge the client sent; the claims must carry exactly it.
    pub challenge: Option<Vec<u8>>,
    /// The oldest acceptable claims, in seconds before `now`.
    pub max_age_secs: Option<u64>,
    /// Collateral to use when the bundle has none (TDX).
    pub collateral: Option<TdxCollateral>,
    /// RIMs and revocation data for GPU evidence.
    pub gpu: crate::gpu::GpuInputs,
    /// The events an image predicts (`silk verify --image`): a TDX bundle's event log must
    /// hold exactly them in the registers predicted (`tdx.image_events`).
    pub image_events: Option<Predicted>,
}

impl EvidenceBundle {
    /// Parses a bundle from JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleError> {
        let b: EvidenceBundle = serde_json::from_slice(bytes)?;
        if b.version != 1 {
            return Err(BundleError::Version(b.version));
        }
        Ok(b)
    }

    /// The bundle as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Verifies the bundle; returns the decoded claims and the verdict (which accepts only
    /// when every check passed).
    pub fn verify(
        &self,
        policy: &Policy,
        expect: &Expectations,
        now: OffsetDateTime,
    ) -> Result<(Claims, Verdict), BundleError> {
        let claims = Claims::decode(&self.claims.0)?;
        let (report_data, mut verdict) = match &self.platform {
            PlatformEvidence::SevSnp {
                report,
                vek,
                ask,
                ark,
            } => {
                let certs = SnpCertificates {
                    vek: vek.0.clone(),
                    ask: ask.as_ref().map(|b| b.0.clone()),
                    ark: ark.as_ref().map(|b| b.0.clone()),
                };
                let (r, v) = verify_snp(&report.0, &certs, policy, now)?;
                (r.report_data, v)
            }
            PlatformEvidence::Tdx {
                quote,
                collateral,
                event_log,
            } => {
                let parsed;
                let coll = match (collateral, &expect.collateral) {
                    (Some(json), _) => {
                        parsed = TdxCollateral::from_json(&json.0)
                            .map_err(|e| BundleError::Collateral(e.to_string()))?;
                        &parsed
                    }
                    (None, Some(c)) => c,
                    (None, None) => return Err(BundleError::NoCollateral),
                };
                let (q, mut v) = verify_quote(&quote.0, coll, policy, now)?;
                if let (Some(log), QuoteBody::Td(td)) = (event_log, &q.body) {
                    replay::verify(&log.0, &td.rtmr, expect.image_events.as_ref(), &mut v);
                }
                (*q.report_data(), v)
            }
        };
        bind(&claims, &report_data, expect, now, &mut verdict);
        if let Some(runtime) = &policy.runtime {
            runtime.check(&claims.runtime_facts(), &mut verdict);
        }
        crate::gpu::check(&self.gpus, &claims, policy, &expect.gpu, now, &mut verdict);
        Ok((claims, verdict))
    }
}

fn bind(
    claims: &Claims,
    report_data: &[u8; 64],
    expect: &Expectations,
    now: OffsetDateTime,
    verdict: &mut Verdict,
) {
    // The platform verifier warns that it did not bind REPORT_DATA; here it is bound.
    verdict
        .warnings
        .retain(|w| !w.starts_with("REPORT_DATA not checked"));
    let want = claims.report_data();
    verdict.push(match want {
        Ok(want) => Check::from_bool(
            &checks::claims::REPORT_DATA,
            &want == report_data,
            hex::encode(want),
            hex::encode(report_data),
            || {
                "REPORT_DATA is not SHA-512 of these claims: the claims are not the attested ones"
                    .into()
            },
        ),
        Err(e) => Check::fail(
            &checks::claims::REPORT_DATA,
            "encodable claims",
            "unencodable",
            e.to_string(),
        ),
    });
    if let Some(challenge) = &expect.challenge {
        verdict.push(Check::from_bool(
            &checks::claims::CHALLENGE,
            &claims.challenge == challenge,
            hex::encode(challenge),
            hex::encode(&claims.challenge),
            || {
                "the claims do not answer this client's challenge (stale or replayed evidence)"
                    .into()
            },
        ));
    }
    if let Some(max) = expect.max_age_secs {
        let now_s = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let age = now_s.saturating_sub(claims.created_at);
        // Claims from the future beyond a small clock skew are as suspect as old ones.
        let skew_ok = claims.created_at <= now_s + 300;
        verdict.push(Check::from_bool(
            &checks::claims::FRESH,
            age <= max && skew_ok,
            format!("made within {max} s"),
            format!("made {age} s ago (created_at {})", claims.created_at),
            || "the claims are too old, or dated in the future".into(),
        ));
    }
    verdict.fact("claims.model", claims.model.clone());
    verdict.fact(
        "claims.hpke_public_key",
        hex::encode(claims.hpke_public_key),
    );
    verdict.fact(
        "claims.tls_spki_sha256",
        hex::encode(claims.tls_spki_sha256),
    );
    verdict.fact("claims.image_digest", hex::encode(claims.image_digest));
    verdict.fact("claims.software_version", claims.software_version.clone());
    verdict.fact("claims.evidence_provider", claims.evidence_provider.clone());
    verdict.fact(
        "claims.gpu_policy_sha256",
        if claims.gpu_policy_sha256.is_empty() {
            "none".to_owned()
        } else {
            hex::encode(&claims.gpu_policy_sha256)
        },
    );
    verdict.fact("claims.payout_address", claims.payout_address.clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use silk_attestation::snp::simulated::SimulatedPlatform;

    fn claims(challenge: &[u8]) -> Claims {
        Claims {
            hpke_public_key: [1; 32],
            tls_spki_sha256: [2; 32],
            image_digest: [3; 32],
            model: "sha256:00".into(),
            gpu_nonce: vec![],
            challenge: challenge.to_vec(),
            created_at: 1_767_225_600, // 2026-01-01
            software_version: "silk test".into(),
            receipt_public_key: [9; 32],
            payout_address: String::new(),
            evidence_provider: "simulated".into(),
            gpu_policy_sha256: Vec::new(),
        }
    }

    fn bundle(p: &SimulatedPlatform, c: &Claims) -> EvidenceBundle {
        let report = p.report(&[7; 48], &c.report_data().unwrap());
        EvidenceBundle {
            version: 1,
            platform: PlatformEvidence::SevSnp {
                report: Bytes(report),
                vek: Bytes(p.chain().vcek.clone()),
                ask: Some(Bytes(p.chain().ask.clone())),
                ark: Some(Bytes(p.chain().ark.clone())),
            },
            claims: Bytes(c.encode().unwrap()),
            gpus: vec![],
        }
    }

    fn policy(p: &SimulatedPlatform) -> Policy {
        Policy::from_toml(&format!(
            "allow_simulated = true\nsimulated_roots = [\"{}\"]\n[snp]\nmeasurements = [\"{}\"]\nmin_tcb = {{}}\n",
            hex::encode(p.chain().root_digest()),
            "07".repeat(48)
        ))
        .unwrap()
    }

    const NOW: OffsetDateTime = time::macros::datetime!(2026-01-01 0:01 UTC);

    #[test]
    fn bound_fresh_bundle_verifies_and_round_trips_json() {
        let p = SimulatedPlatform::generate().unwrap();
        let b = bundle(&p, &claims(b"nonce-1"));
        let b = EvidenceBundle::from_json(&b.to_json()).unwrap();
        let expect = Expectations {
            challenge: Some(b"nonce-1".to_vec()),
            max_age_secs: Some(300),
            ..Expectations::default()
        };
        let (c, v) = b.verify(&policy(&p), &expect, NOW).unwrap();
        assert!(v.accepted(), "{:?}", v.failures().collect::<Vec<_>>());
        assert_eq!(c.challenge, b"nonce-1");
    }

    #[test]
    fn swapped_claims_stale_challenge_and_old_claims_are_refused() {
        let p = SimulatedPlatform::generate().unwrap();
        let mut b = bundle(&p, &claims(b"nonce-1"));
        let pol = policy(&p);
        // Claims from another enclave under this report.
        let mut other = claims(b"nonce-1");
        other.hpke_public_key = [9; 32];
        b.claims = Bytes(other.encode().unwrap());
        let (_, v) = b.verify(&pol, &Expectations::default(), NOW).unwrap();
        assert!(!v.check(&checks::claims::REPORT_DATA).unwrap().passed());

        let b = bundle(&p, &claims(b"nonce-1"));
        let stale = Expectations {
            challenge: Some(b"nonce-2".to_vec()),
            ..Expectations::default()
        };
        let (_, v) = b.verify(&pol, &stale, NOW).unwrap();
        assert!(!v.check(&checks::claims::CHALLENGE).unwrap().passed());

        let old = Expectations {
            max_age_secs: Some(10),
            ..Expectations::default()
        };
        let (_, v) = b.verify(&pol, &old, NOW).unwrap();
        assert!(!v.check(&checks::claims::FRESH).unwrap().passed());
    }

    #[test]
    fn malformed_bundles_are_errors() {
        assert!(EvidenceBundle::from_json(b"{}").is_err());
        assert!(EvidenceBundle::from_json(b"not json").is_err());
        let p = SimulatedPlatform::generate().unwrap();
        let mut b = bundle(&p, &claims(b""));
        b.version = 2;
        assert!(matches!(
            EvidenceBundle::from_json(&b.to_json()),
            Err(BundleError::Version(2))
        ));
    }
}
