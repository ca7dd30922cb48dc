//! A verification request as plain Rust values: what the JS options say, before and
//! independent of JS (so that it is testable natively), turned into the core's
//! [`Inputs`].

use silk_verifier::{Format, GpuNonce, Inputs, SnpCerts};
use time::OffsetDateTime;

/// The name printed in the verdict JSON when the caller gives none.
pub const DEFAULT_SOURCE: &str = "evidence";

/// How long a bundle's claims may be old when a challenge is checked and the caller says
/// nothing (the client library's default: `silk_client::Options::max_evidence_age`).
pub const DEFAULT_MAX_AGE_SECS: u64 = 300;

/// One NVIDIA RIM: the name shown in verdicts (a file name) and its XML.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rim {
    /// The name shown in verdicts.
    pub name: String,
    /// The signed RIM (SWID tag XML).
    pub xml: Vec<u8>,
}

/// What a verification is given besides the evidence and the policy: the JS
/// `collateral` object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collateral {
    /// `vcek`: the VCEK or VLEK that signed an SNP report (PEM or DER).
    pub vcek: Option<Vec<u8>>,
    /// `ask`: the ASK or ASVK (PEM or DER); AMD's pinned one when absent.
    pub ask: Option<Vec<u8>>,
    /// `ark`: the ARK (PEM or DER); AMD's pinned one when absent.
    pub ark: Option<Vec<u8>>,
    /// `certChain`: AMD's `cert_chain` PEM (ASK then ARK).
    pub cert_chain: Option<Vec<u8>>,
    /// `tdx`: Intel PCS collateral JSON for a DCAP quote.
    pub tdx: Option<Vec<u8>>,
    /// `gpuChain`: a GPU report's device certificate chain (PEM, leaf first).
    pub gpu_chain: Option<Vec<u8>>,
    /// `gpuRims`: NVIDIA's driver and VBIOS RIMs.
    pub gpu_rims: Vec<Rim>,
    /// `ocsp`: DER OCSP responses for GPU device chains.
    pub ocsp: Vec<Vec<u8>>,
    /// `gpuNonce`: the nonce (hex, 32 bytes) a standalone GPU report must answer.
    pub gpu_nonce: Option<String>,
    /// `noNonce`: accept a standalone GPU report whatever its nonce (a possible replay).
    pub no_nonce: bool,
}

/// One call of `verifyEvidence` or `verifyBundle`, read from its JS arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The policy (TOML).
    pub policy: String,
    /// The time to verify at (RFC 3339); the host's clock when absent.
    pub now: Option<String>,
    /// `snp`, `tdx`, `gpu` or `bundle`; detected when absent.
    pub format: Option<String>,
    /// The evidence's name in the verdict JSON.
    pub source: Option<String>,
    /// Certificates and collateral.
    pub collateral: Collateral,
    /// For a bundle: the challenge (hex) its claims must carry.
    pub challenge: Option<String>,
    /// For a bundle: the oldest acceptable claims, in seconds.
    pub max_age_secs: Option<u64>,
}

impl Request {
    /// The format the request names, if any.
    pub fn format(&self) -> Result<Option<Format>, String> {
        match &self.format {
            None => Ok(None),
            Some(name) => Format::from_name(name).map(Some).ok_or_else(|| {
                format!("format {name:?} is none of \"snp\", \"tdx\", \"gpu\", \"bundle\"")
            }),
        }
    }

    /// The time to verify at: `now`, or `clock()` when it is absent.
    pub fn time(&self, clock: impl FnOnce() -> OffsetDateTime) -> Result<OffsetDateTime, String> {
        match &self.now {
            Some(text) => silk_verifier::parse_time(text).map_err(|e| format!("now: {e}")),
            None => Ok(clock()),
        }
    }

    /// The core's inputs for this request, at time `now`.
    pub fn inputs(&self, now: OffsetDateTime) -> Result<Inputs, String> {
        let policy = silk_verifier::parse_policy(&self.policy).map_err(|e| e.to_string())?;
        let c = &self.collateral;
        let mut inputs = Inputs::new(policy, now);
        inputs.snp = SnpCerts {
            vek: c.vcek.clone(),
            ask: c.ask.clone(),
            ark: c.ark.clone(),
            chain: c.cert_chain.clone(),
        };
        inputs.tdx_collateral = c.tdx.clone();
        inputs.gpu_chain = c.gpu_chain.clone();
        inputs.gpu_rims = c
            .gpu_rims
            .iter()
            .map(|r| (r.name.clone(), r.xml.clone()))
            .collect();
        inputs.ocsp = c.ocsp.clone();
        inputs.gpu_nonce = gpu_nonce(c.gpu_nonce.as_deref(), c.no_nonce)?;
        if let Some(text) = &self.challenge {
            inputs.challenge =
                Some(hex::decode(strip_0x(text)).map_err(|e| format!("nonce {text:?}: {e}"))?);
        }
        inputs.max_age_secs = self.max_age_secs;
        Ok(inputs)
    }

    /// Verifies `evidence` and returns the verdict JSON, exactly as `silk verify --json`
    /// prints it; `clock` gives the time when the request names none.
    pub fn verdict_json(
        &self,
        evidence: &[u8],
        clock: impl FnOnce() -> OffsetDateTime,
    ) -> Result<String, String> {
        let format = self.format()?;
        let now = self.time(clock)?;
        let inputs = self.inputs(now)?;
        let outcome =
            silk_verifier::verify(evidence, format, &inputs).map_err(|e| e.to_string())?;
        let source = self.source.as_deref().unwrap_or(DEFAULT_SOURCE);
        Ok(silk_verifier::verdict_json(
            &outcome.verdict,
            outcome.kind,
            source,
            now,
        ))
    }
}

fn strip_0x(text: &str) -> &str {
    let text = text.trim();
    text.strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text)
}

/// The nonce rule for a standalone GPU report, as `silk verify --nonce/--no-nonce` reads it.
fn gpu_nonce(hex_text: Option<&str>, no_nonce: bool) -> Result<GpuNonce, String> {
    match (hex_text, no_nonce) {
        (Some(_), true) => {
            Err("collateral.gpuNonce and collateral.noNonce contradict each other: give one".into())
        }
        (Some(text), false) => {
            let bytes = hex::decode(strip_0x(text))
                .map_err(|e| format!("collateral.gpuNonce {text:?} is not hex: {e}"))?;
            let nonce: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                format!(
                    "collateral.gpuNonce is {} bytes; a GPU report's nonce is 32 bytes (64 hex \
                     digits)",
                    bytes.len()
                )
            })?;
            Ok(GpuNonce::Expect(nonce))
        }
        (None, true) => Ok(GpuNonce::AcceptReplay),
        (None, false) => Ok(GpuNonce::Unset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH
    }

    #[test]
    fn nonce_rules() {
        assert_eq!(gpu_nonce(None, false), Ok(GpuNonce::Unset));
        assert_eq!(gpu_nonce(None, true), Ok(GpuNonce::AcceptReplay));
        let hex64 = "0x".to_owned() + &"ab".repeat(32);
        assert_eq!(
            gpu_nonce(Some(&hex64), false),
            Ok(GpuNonce::Expect([0xab; 32]))
        );
        assert!(gpu_nonce(Some(&hex64), true)
            .unwrap_err()
            .contains("contradict"));
        assert!(gpu_nonce(Some("abcd"), false)
            .unwrap_err()
            .contains("2 bytes"));
        assert!(gpu_nonce(Some("xyz"), false)
            .unwrap_err()
            .contains("not hex"));
    }

    #[test]
    fn time_is_the_callers_or_the_clocks() {
        let mut r = Request::default();
        assert_eq!(r.time(epoch), Ok(epoch()));
        r.now = Some("2025-06-20T00:00:00Z".into());
        assert_eq!(r.time(epoch).map(|t| t.unix_timestamp()), Ok(1_750_377_600));
        r.now = Some("yesterday".into());
        assert!(r.time(epoch).unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn unusable_inputs_are_errors_not_verdicts() {
        let mut r = Request {
            policy: "this is not toml = = =".into(),
            ..Request::default()
        };
        assert!(r.verdict_json(b"", epoch).unwrap_err().contains("policy"));
        r.policy = String::new();
        r.format = Some("pdf".into());
        assert!(r.verdict_json(b"x", epoch).unwrap_err().contains("\"pdf\""));
        r.format = None;
        // Nothing silk knows: the caller's to fix.
        assert!(r.verdict_json(b"hello", epoch).is_err());
    }

    #[test]
    fn source_defaults_to_evidence() {
        // A GPU report that is not one is refused in a verdict that names its source.
        let r = Request {
            format: Some("gpu".into()),
            collateral: Collateral {
                gpu_chain: Some(b"not a chain".to_vec()),
                no_nonce: true,
                ..Collateral::default()
            },
            ..Request::default()
        };
        let json = r.verdict_json(b"00ff", epoch).expect("a verdict");
        assert!(json.contains("\"source\": \"evidence\""), "{json}");
        assert!(json.contains("\"accepted\": false"), "{json}");
        assert!(json.ends_with("}\n"));
    }
}
