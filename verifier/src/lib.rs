//! The verification core: evidence, collateral and policy as bytes in, one verdict out.
//!
//! `silk verify` (which reads files), the WebAssembly build (which runs in a browser) and
//! the Python wheel all call [`verify`] and [`verdict_json`], so the same inputs give the
//! same JSON, byte for byte, wherever they are checked. Nothing here reads a file, starts
//! a thread or reads the clock: the caller passes the time in [`Inputs::now`].

mod gpu;
mod inputs;

use serde::Serialize;
use silk_attestation::tdx::replay;
use silk_attestation::tdx::{QuoteBody, TdxCollateral, TeeType};
use silk_attestation::{
    format_time, verify_quote, verify_snp, Evidence, EvidenceError, EvidenceKind, Policy, Verdict,
};
use silk_protocol::{Claims, EvidenceBundle, Expectations, PlatformEvidence};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub use inputs::{GpuNonce, Inputs, SnpCerts};

/// What the caller says the evidence is, when it says (`silk verify gpu REPORT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An AMD SEV-SNP attestation report.
    Snp,
    /// An Intel DCAP quote (TDX or SGX).
    Tdx,
    /// NVIDIA GPU evidence: a report with its device chain, or NRAS-style JSON.
    Gpu,
    /// A silk evidence bundle (`GET /v1/attestation`).
    Bundle,
}

impl Format {
    /// Reads `snp`, `tdx` (or `sgx`), `gpu`, `bundle`, in any case.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "snp" => Some(Format::Snp),
            "tdx" | "sgx" => Some(Format::Tdx),
            "gpu" => Some(Format::Gpu),
            "bundle" => Some(Format::Bundle),
            _ => None,
        }
    }
}

/// Why the inputs could not be used at all. A refused verdict is not an error: evidence
/// that does not parse is refused at its format's check, in a verdict.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The policy is not valid TOML for a silk policy.
    #[error("policy: {0}")]
    Policy(#[from] silk_attestation::policy::PolicyError),
    /// The verification time is not RFC 3339.
    #[error("{0:?} is not an RFC 3339 time (e.g. 2025-06-19T10:16:03Z)")]
    Time(String),
    /// The evidence is empty or of no format silk knows.
    #[error(transparent)]
    Evidence(EvidenceError),
    /// A certificate could not be read.
    #[error("{what}: {reason}")]
    Certificate {
        /// Which certificate.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Collateral (Intel PCS JSON, NVIDIA RIMs, OCSP) could not be read.
    #[error("{what}: {reason}")]
    Collateral {
        /// Which collateral.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An input the evidence needs was not given.
    #[error("{0}")]
    Missing(String),
    /// The evidence bundle is not one silk can read.
    #[error("evidence bundle: {0}")]
    Bundle(String),
}

/// A verdict and what it was about.
#[derive(Debug)]
pub struct Outcome {
    /// Every check, passed or failed.
    pub verdict: Verdict,
    /// The kind of evidence the verdict is about.
    pub kind: EvidenceKind,
    /// Remarks for a person reading the verdict (what was assumed, what was not given).
    pub notes: Vec<String>,
    /// For a bundle: the claims its evidence binds (keys, model, image), even when refused.
    pub claims: Option<Claims>,
}

/// Parses a policy (TOML, see docs/policy.md).
pub fn parse_policy(toml: &str) -> Result<Policy, InputError> {
    Ok(Policy::from_toml(toml)?)
}

/// Parses an RFC 3339 time.
pub fn parse_time(text: &str) -> Result<OffsetDateTime, InputError> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| InputError::Time(text.to_owned()))
}

/// What `raw` is, as [`verify`] will treat it. Callers that load inputs or adjust the
/// policy by platform (`silk verify --image`) ask first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A silk evidence bundle (JSON).
    Bundle,
    /// Standalone NVIDIA GPU evidence: a report, or NRAS-style JSON.
    Gpu,
    /// An SNP report or a DCAP quote; `None` when it is neither (then [`verify`] says why).
    Platform(Option<EvidenceKind>),
}

impl Shape {
    /// The kind of evidence the verdict will be about, when known before verifying.
    pub fn kind(&self, raw: &[u8]) -> Option<EvidenceKind> {
        match self {
            Shape::Gpu => Some(EvidenceKind::GpuReport),
            Shape::Bundle => EvidenceBundle::from_json(raw).ok().map(|b| bundle_kind(&b)),
            Shape::Platform(kind) => *kind,
        }
    }
}

/// Tells what `raw` is (binary or hex text; detected unless `format` says).
pub fn shape(raw: &[u8], format: Option<Format>) -> Shape {
    match classify(raw, format) {
        Class::Gpu => Shape::Gpu,
        Class::Bundle => Shape::Bundle,
        Class::Platform(named) => match platform_evidence(raw, named) {
            Ok(e) if e.kind == EvidenceKind::GpuReport => Shape::Gpu,
            Ok(e) => Shape::Platform(Some(e.kind)),
            Err(_) => Shape::Platform(None),
        },
    }
}

enum Class {
    Gpu,
    Bundle,
    Platform(Option<Format>),
}

fn classify(raw: &[u8], format: Option<Format>) -> Class {
    let first = raw.iter().find(|b| !b.is_ascii_whitespace()).copied();
    match format {
        Some(Format::Bundle) => Class::Bundle,
        Some(Format::Gpu) => Class::Gpu,
        None if first == Some(b'[') => Class::Gpu,
        None if first == Some(b'{') => {
            if gpu::is_nras_json(raw) {
                Class::Gpu
            } else {
                Class::Bundle
            }
        }
        named => Class::Platform(named),
    }
}

fn bundle_kind(bundle: &EvidenceBundle) -> EvidenceKind {
    match bundle.platform {
        PlatformEvidence::SevSnp { .. } => EvidenceKind::SnpReport,
        PlatformEvidence::Tdx { .. } => EvidenceKind::DcapQuote(TeeType::Tdx),
    }
}

/// Verifies `raw` (an SNP report, a DCAP quote, NVIDIA GPU evidence or a silk bundle;
/// binary or hex text; detected unless `format` says) under `inputs`.
pub fn verify(raw: &[u8], format: Option<Format>, inputs: &Inputs) -> Result<Outcome, InputError> {
    let mut notes = Vec::new();
    let kind_known = match classify(raw, format) {
        Class::Gpu => return gpu::verify(raw, inputs, notes),
        Class::Bundle => return verify_bundle(raw, inputs, notes),
        Class::Platform(named) => named,
    };
    let evidence = match platform_evidence(raw, kind_known) {
        Ok(e) if e.kind == EvidenceKind::GpuReport => return gpu::verify(raw, inputs, notes),
        Ok(e) => e,
        Err(e) => return rejected(e, None, notes),
    };
    let result = match evidence.kind {
        EvidenceKind::SnpReport => {
            let certs = inputs.snp.certificates(&mut notes)?;
            verify_snp(&evidence.bytes, &certs, &inputs.policy, inputs.now).map(|(_, v)| v)
        }
        EvidenceKind::DcapQuote(_) => {
            let json = inputs.tdx_collateral.as_deref().ok_or_else(|| {
                InputError::Missing(
                    "a DCAP quote needs its collateral (Intel PCS JSON), which was not given"
                        .into(),
                )
            })?;
            let collateral = tdx_collateral(json)?;
            verify_quote(&evidence.bytes, &collateral, &inputs.policy, inputs.now)
                .map(|(q, v)| with_event_log(&q, v, inputs, &mut notes))
        }
        EvidenceKind::GpuReport => unreachable!("GPU reports are verified above"),
    };
    match result {
        Ok(verdict) => Ok(Outcome {
            verdict,
            kind: evidence.kind,
            notes,
            claims: None,
        }),
        Err(e) => rejected(e, Some(evidence.kind), notes),
    }
}

/// A standalone quote's verdict with its event log's checks, when a log was given.
fn with_event_log(
    quote: &silk_attestation::tdx::Quote,
    mut verdict: Verdict,
    inputs: &Inputs,
    notes: &mut Vec<String>,
) -> Verdict {
    match (&inputs.tdx_event_log, &quote.body) {
        (Some(log), QuoteBody::Td(td)) => {
            replay::verify(
                log,
                &td.rtmr,
                inputs.tdx_image_events.as_ref(),
                &mut verdict,
            );
        }
        (None, QuoteBody::Td(_)) if inputs.tdx_image_events.is_some() => {
            notes.push(NO_LOG_NOTE.into());
        }
        _ => {}
    }
    verdict
}

/// Said when `--image` could name the event that drifted but there is no log to read.
const NO_LOG_NOTE: &str = "no TDX event log was given (a bundle from an enclave that serves \
    none, or a quote without --event-log): the registers are compared as totals, and a \
    difference cannot be traced to an event";

/// The evidence's bytes and kind. When the caller named the format it is trusted, so that
/// damaged evidence is refused at that format's check instead of being called unknown.
fn platform_evidence(raw: &[u8], named: Option<Format>) -> Result<Evidence, EvidenceError> {
    let Some(named) = named else {
        return Evidence::detect(raw);
    };
    // SNP, or a quote: TDX unless its header says SGX.
    let default = match named {
        Format::Tdx => EvidenceKind::DcapQuote(TeeType::Tdx),
        _ => EvidenceKind::SnpReport,
    };
    match silk_attestation::evidence::decode_text(raw) {
        Ok(bytes) => {
            let kind = match Evidence::detect(&bytes) {
                Ok(Evidence {
                    kind: k @ EvidenceKind::DcapQuote(_),
                    ..
                }) if named == Format::Tdx => k,
                _ => default,
            };
            Ok(Evidence { kind, bytes })
        }
        Err(EvidenceError::BadHex { reason, kind }) => Err(EvidenceError::BadHex {
            reason,
            kind: kind.or(Some(default)),
        }),
        Err(e) => Err(e),
    }
}

/// Evidence that does not parse is refused evidence (a verdict naming its format's
/// check), unless the error is the caller's to fix (no evidence, an unknown format).
fn rejected(
    error: EvidenceError,
    kind: Option<EvidenceKind>,
    notes: Vec<String>,
) -> Result<Outcome, InputError> {
    match error.as_rejection(kind) {
        Some((kind, verdict)) => Ok(Outcome {
            verdict,
            kind,
            notes,
            claims: None,
        }),
        None => Err(InputError::Evidence(error)),
    }
}

fn tdx_collateral(json: &[u8]) -> Result<TdxCollateral, InputError> {
    TdxCollateral::from_json(json).map_err(|e| InputError::Collateral {
        what: "TDX collateral",
        reason: e.to_string(),
    })
}

/// An evidence bundle as an enclave serves it: the platform evidence with its
/// certificates, the claims its REPORT_DATA must bind, and any GPU reports.
fn verify_bundle(
    raw: &[u8],
    inputs: &Inputs,
    mut notes: Vec<String>,
) -> Result<Outcome, InputError> {
    let bundle = EvidenceBundle::from_json(raw).map_err(|e| InputError::Bundle(e.to_string()))?;
    let mut expect = Expectations {
        challenge: inputs.challenge.clone(),
        max_age_secs: inputs.max_age_secs,
        collateral: None,
        gpu: Default::default(),
        image_events: inputs.tdx_image_events.clone(),
    };
    if !inputs.gpu_rims.is_empty() {
        expect.gpu.rims = gpu::rim_store(&inputs.gpu_rims)?;
    }
    if !inputs.ocsp.is_empty() {
        expect.gpu.revocation =
            silk_attestation::gpu::Revocation::OcspResponses(inputs.ocsp.clone());
    }
    if let Some(json) = &inputs.tdx_collateral {
        expect.collateral = Some(tdx_collateral(json)?);
    }
    let kind = bundle_kind(&bundle);
    if let PlatformEvidence::Tdx { event_log, .. } = &bundle.platform {
        if event_log.is_none() && inputs.tdx_image_events.is_some() {
            notes.push(NO_LOG_NOTE.into());
        }
        if inputs.tdx_event_log.is_some() {
            notes.push(
                "the bundle's own event log is checked; an event log given beside it is not used"
                    .into(),
            );
        }
    }
    let (claims, verdict) = bundle
        .verify(&inputs.policy, &expect, inputs.now)
        .map_err(|e| InputError::Bundle(e.to_string()))?;
    notes.push("an evidence bundle: REPORT_DATA must be SHA-512 of its claims".into());
    if !bundle.gpus.is_empty() {
        notes.push(format!(
            "{} GPU report(s), checked with the CVM's evidence in one verdict",
            bundle.gpus.len()
        ));
    }
    Ok(Outcome {
        verdict,
        kind,
        notes,
        claims: Some(claims),
    })
}

#[derive(Serialize)]
struct JsonVerdict<'a> {
    evidence: String,
    source: &'a str,
    verified_at: String,
    accepted: bool,
    #[serde(flatten)]
    verdict: &'a Verdict,
}

/// The verdict as `silk verify --json` prints it: one pretty-printed JSON object and a
/// newline. `source` names the evidence (the CLI prints the path it was given).
pub fn verdict_json(
    verdict: &Verdict,
    kind: EvidenceKind,
    source: &str,
    now: OffsetDateTime,
) -> String {
    let doc = JsonVerdict {
        evidence: kind.to_string(),
        source,
        verified_at: format_time(now),
        accepted: verdict.accepted(),
        verdict,
    };
    // Plain data with string keys always serialises.
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use silk_attestation::checks::snp;
    use silk_attestation::{Check, Platform};

    #[test]
    fn json_carries_acceptance_and_checks() {
        let mut v = Verdict::new(Platform::Tdx);
        v.push(Check::pass(&snp::REPORT_SIGNATURE, "x", "x"));
        let text = verdict_json(&v, EvidenceKind::SnpReport, "q", OffsetDateTime::UNIX_EPOCH);
        assert!(text.ends_with("}\n"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["accepted"], true);
        assert_eq!(value["source"], "q");
        assert_eq!(value["verified_at"], "1970-01-01T00:00:00Z");
        assert_eq!(value["checks"][0]["name"], snp::REPORT_SIGNATURE.name);
        assert_eq!(value["checks"][0]["outcome"]["status"], "pass");
    }

    #[test]
    fn inputs_the_evidence_needs_are_named_when_missing() {
        let inputs = Inputs::new(Policy::default(), OffsetDateTime::UNIX_EPOCH);
        // A GPU report: no chain, then no nonce decision.
        let err = verify(b"00", Some(Format::Gpu), &inputs).unwrap_err();
        assert!(err.to_string().contains("nonce"), "{err}");
        let mut with_nonce = inputs.clone();
        with_nonce.gpu_nonce = GpuNonce::AcceptReplay;
        let err = verify(b"00", Some(Format::Gpu), &with_nonce).unwrap_err();
        assert!(err.to_string().contains("certificate chain"), "{err}");
        // An SNP report (any 1184 bytes with version 2 parse far enough to need its VCEK).
        let mut report = vec![0u8; 1184];
        report[0] = 2;
        let err = verify(&report, Some(Format::Snp), &inputs).unwrap_err();
        assert!(err.to_string().contains("VCEK"), "{err}");
        // Nothing at all is the caller's to fix, not a verdict.
        assert!(matches!(
            verify(b"", None, &inputs),
            Err(InputError::Evidence(_))
        ));
    }

    #[test]
    fn shapes_follow_the_first_byte_unless_named() {
        assert_eq!(shape(b"[]", None), Shape::Gpu);
        assert_eq!(shape(br#"{"evidence_list": []}"#, None), Shape::Gpu);
        assert_eq!(shape(br#"{"version": 1}"#, None), Shape::Bundle);
        assert_eq!(shape(b"zz", None), Shape::Platform(None));
        assert_eq!(shape(b"zz", Some(Format::Bundle)), Shape::Bundle);
        assert_eq!(Format::from_name("SGX"), Some(Format::Tdx));
        assert_eq!(Format::from_name("pdf"), None);
    }
}
