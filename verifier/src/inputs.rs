//! What a verification is given besides the evidence, as bytes.

use silk_attestation::snp::certs::{self, SnpCertificates};
use silk_attestation::tdx::replay::Predicted;
use silk_attestation::Policy;
use time::OffsetDateTime;

use crate::InputError;

/// The AMD certificates for an SNP report, each PEM or DER.
#[derive(Clone, Debug, Default)]
pub struct SnpCerts {
    /// The VCEK or VLEK that signed the report. From a PEM holding several certificates,
    /// the one whose CN is SEV-VCEK or SEV-VLEK.
    pub vek: Option<Vec<u8>>,
    /// The ASK (or ASVK); the pinned AMD one for the report's product when absent.
    pub ask: Option<Vec<u8>>,
    /// The ARK; the pinned AMD one when absent.
    pub ark: Option<Vec<u8>>,
    /// AMD's `cert_chain` PEM (ASK then ARK), as KDS serves it. `ask` and `ark`, when
    /// given, take precedence over it.
    pub chain: Option<Vec<u8>>,
}

impl SnpCerts {
    /// The certificates as the SNP verifier takes them (DER), noting what was assumed.
    pub(crate) fn certificates(
        &self,
        notes: &mut Vec<String>,
    ) -> Result<SnpCertificates, InputError> {
        let cert = |what: &'static str| {
            move |e: certs::CertError| InputError::Certificate {
                what,
                reason: e.to_string(),
            }
        };
        let Some(vek) = &self.vek else {
            return Err(InputError::Missing(
                "an SNP report needs the certificate that signed it (its VCEK or VLEK), which \
                 was not given"
                    .into(),
            ));
        };
        let (vek, count) = certs::vek_der(vek, "VCEK/VLEK").map_err(cert("VCEK/VLEK"))?;
        if count > 1 {
            notes.push(format!(
                "took the VCEK/VLEK of the {count} certificates given for it"
            ));
        }
        let (mut ask, mut ark) = (None, None);
        if let Some(pem) = &self.chain {
            let chain =
                certs::pem_bundle(pem, "certificate chain").map_err(cert("certificate chain"))?;
            let mut it = chain.into_iter();
            ask = it.next();
            ark = it.next();
        }
        if let Some(bytes) = &self.ask {
            ask = Some(certs::cert_der(bytes, "ASK/ASVK").map_err(cert("ASK/ASVK"))?);
        }
        if let Some(bytes) = &self.ark {
            ark = Some(certs::cert_der(bytes, "ARK").map_err(cert("ARK"))?);
        }
        Ok(SnpCertificates { vek, ask, ark })
    }
}

/// Which nonce a standalone GPU report must answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GpuNonce {
    /// None was said: a standalone GPU report is then not verified (the caller must
    /// choose), so that a replayed report is never accepted by omission.
    #[default]
    Unset,
    /// The 32 bytes the report was requested with.
    Expect([u8; 32]),
    /// Any nonce: the report may be a replay (a note says so).
    AcceptReplay,
}

/// Everything a verification is given besides the evidence.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// The policy the evidence must meet.
    pub policy: Policy,
    /// The time to verify at (certificate and collateral validity, evidence age).
    pub now: OffsetDateTime,
    /// AMD certificates, for an SNP report.
    pub snp: SnpCerts,
    /// Intel PCS collateral (JSON) for a DCAP quote, or for a bundle's quote that carries
    /// none.
    pub tdx_collateral: Option<Vec<u8>>,
    /// The device certificate chain (PEM, leaf first) of a standalone GPU report.
    pub gpu_chain: Option<Vec<u8>>,
    /// NVIDIA's driver and VBIOS RIMs: (name shown in verdicts, XML).
    pub gpu_rims: Vec<(String, Vec<u8>)>,
    /// DER OCSP responses for GPU device chains.
    pub ocsp: Vec<Vec<u8>>,
    /// The nonce a standalone GPU report must answer.
    pub gpu_nonce: GpuNonce,
    /// For a bundle: the challenge sent, which its claims must carry.
    pub challenge: Option<Vec<u8>>,
    /// For a bundle: the oldest acceptable claims, in seconds before `now`.
    pub max_age_secs: Option<u64>,
    /// The TD's event log (CCEL) for a standalone TDX quote; a bundle carries its own.
    pub tdx_event_log: Option<Vec<u8>>,
    /// The events an image predicts (`silk verify --image`), which a TDX event log must
    /// hold (`tdx.image_events`).
    pub tdx_image_events: Option<Predicted>,
}

impl Inputs {
    /// A policy and a time, and nothing else yet.
    pub fn new(policy: Policy, now: OffsetDateTime) -> Self {
        Self {
            policy,
            now,
            snp: SnpCerts::default(),
            tdx_collateral: None,
            gpu_chain: None,
            gpu_rims: Vec::new(),
            ocsp: Vec::new(),
            gpu_nonce: GpuNonce::Unset,
            challenge: None,
            max_age_secs: None,
            tdx_event_log: None,
            tdx_image_events: None,
        }
    }
}
