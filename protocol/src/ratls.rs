//! RA-TLS: TLS 1.3 certificates that carry the enclave's evidence, and the rustls verifier
//! that accepts a server only when that evidence verifies and is bound to the TLS key.
//!
//! The certificate is self-signed by a key generated inside the enclave. Its X.509
//! extension `id-pe-cmw` (1.3.6.1.5.5.7.1.35, the RATS Conceptual Message Wrapper
//! extension of draft-ietf-rats-msg-wrap) holds a JSON CMW record
//! `["application/vnd.silk.evidence-bundle+json", base64url(bundle JSON)]` as a DER
//! UTF8String. A registered OID with small arcs was chosen over a private `2.25` UUID arc
//! because the common DER stacks (const-oid, rcgen) cannot write 128-bit arcs, and over an
//! unregistered enterprise number because an evidence-carrying extension is exactly what
//! `id-pe-cmw` is for. The certificate's own validity and issuer carry no trust: the
//! verifier ignores them and trusts the key only through the attested claims, whose
//! `tls_spki_sha256` must be SHA-256 of this certificate's SubjectPublicKeyInfo.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use der::{Decode, Encode};
use rcgen::{
    CertificateParams, CustomExtension, DnType, KeyPair, PublicKeyData, PKCS_ECDSA_P256_SHA256,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use silk_attestation::{checks, Policy, Verdict};
use zeroize::{Zeroize, Zeroizing};

use crate::bundle::{EvidenceBundle, Expectations};
use crate::claims::Claims;

/// `id-pe-cmw`: the X.509 extension that carries a RATS Conceptual Message Wrapper.
pub const CMW_OID: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 35];
/// The CMW media type of silk's evidence bundle.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.silk.evidence-bundle+json";

/// Why an RA-TLS certificate could not be made or read.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RaTlsError {
    /// Key generation or certificate signing failed.
    #[error("RA-TLS certificate: {0}")]
    Build(String),
    /// The certificate is not DER X.509.
    #[error("the server certificate is not X.509 DER: {0}")]
    NotX509(String),
    /// No `id-pe-cmw` extension, or more than one.
    #[error("the server certificate carries {0} evidence extensions (id-pe-cmw); exactly one is required")]
    ExtensionCount(usize),
    /// The extension is not a JSON CMW record of silk's bundle.
    #[error("the evidence extension is malformed: {0}")]
    BadExtension(String),
}

/// The enclave's TLS key (ECDSA P-256), generated inside and never written out. The
/// PKCS#8 copy rustls needs is wiped when this is dropped.
pub struct TlsIdentity {
    key: KeyPair,
}

impl Drop for TlsIdentity {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl TlsIdentity {
    /// A fresh key.
    pub fn generate() -> Result<Self, RaTlsError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| RaTlsError::Build(e.to_string()))?;
        Ok(Self { key })
    }

    /// SHA-256 of the SubjectPublicKeyInfo: what the claims carry.
    pub fn spki_sha256(&self) -> [u8; 32] {
        Sha256::digest(self.key.subject_public_key_info()).into()
    }

    /// A self-signed certificate for this key carrying `bundle`, and the private key in
    /// the form rustls takes.
    pub fn certificate(
        &self,
        bundle: &EvidenceBundle,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), RaTlsError> {
        let build = |e: rcgen::Error| RaTlsError::Build(e.to_string());
        let mut params = CertificateParams::new(vec!["silk-enclave".to_string()]).map_err(build)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "silk enclave (RA-TLS)");
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            CMW_OID,
            cmw_extension_value(bundle)?,
        )];
        let cert = params.self_signed(&self.key).map_err(build)?;
        let pkcs8 = Zeroizing::new(self.key.serialize_der());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()));
        Ok((cert.der().clone(), key))
    }
}

fn cmw_extension_value(bundle: &EvidenceBundle) -> Result<Vec<u8>, RaTlsError> {
    let record = serde_json::to_string(&(BUNDLE_MEDIA_TYPE, B64URL.encode(bundle.to_json())))
        .map_err(|e| RaTlsError::Build(e.to_string()))?;
    der::asn1::Utf8StringRef::new(&record)
        .and_then(|s| s.to_der())
        .map_err(|e| RaTlsError::Build(e.to_string()))
}

/// What an RA-TLS certificate says: its evidence bundle and the digest of its key.
#[derive(Debug, Clone)]
pub struct CertEvidence {
    /// The evidence bundle from the extension.
    pub bundle: EvidenceBundle,
    /// SHA-256 of the certificate's SubjectPublicKeyInfo.
    pub spki_sha256: [u8; 32],
    /// SHA-256 of the extension's value: the cache key of a verification.
    pub evidence_digest: [u8; 32],
}

/// Reads the evidence bundle and key digest out of an RA-TLS certificate.
pub fn read_certificate(der: &[u8]) -> Result<CertEvidence, RaTlsError> {
    let cert =
        x509_cert::Certificate::from_der(der).map_err(|e| RaTlsError::NotX509(e.to_string()))?;
    let oid = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.35");
    let exts: Vec<_> = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == oid)
        .collect();
    let [ext] = exts.as_slice() else {
        return Err(RaTlsError::ExtensionCount(exts.len()));
    };
    let value = ext.extn_value.as_bytes();
    let bad = |m: String| RaTlsError::BadExtension(m);
    let text = der::asn1::Utf8StringRef::from_der(value).map_err(|e| bad(e.to_string()))?;
    let (media, b64): (String, String) =
        serde_json::from_str(text.as_str()).map_err(|e| bad(format!("not a CMW record: {e}")))?;
    if media != BUNDLE_MEDIA_TYPE {
        return Err(bad(format!(
            "media type `{media}`, expected `{BUNDLE_MEDIA_TYPE}`"
        )));
    }
    let json = B64URL
        .decode(b64.as_bytes())
        .map_err(|e| bad(format!("value is not base64url: {e}")))?;
    let bundle = EvidenceBundle::from_json(&json).map_err(|e| bad(e.to_string()))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| RaTlsError::NotX509(e.to_string()))?;
    Ok(CertEvidence {
        bundle,
        spki_sha256: Sha256::digest(spki).into(),
        evidence_digest: Sha256::digest(value).into(),
    })
}

/// A server the verifier accepted: its claims and the verdict that accepted them.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The verified claims.
    pub claims: Claims,
    /// Every check that was made.
    pub verdict: Verdict,
    /// SHA-256 of the evidence extension.
    pub evidence_digest: [u8; 32],
}

/// Why the verifier refused a server.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// The certificate did not carry readable evidence.
    Certificate(RaTlsError),
    /// The evidence was read but does not verify; the verdict names the failed checks.
    Evidence(Box<Verdict>),
    /// The evidence bundle could not be evaluated at all (e.g. malformed claims).
    Bundle(String),
    /// The evidence verifies but its claims carry another TLS key.
    KeyMismatch {
        /// The key digest the claims carry.
        claimed: [u8; 32],
        /// The certificate's key digest.
        presented: [u8; 32],
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Certificate(e) => write!(f, "{e}"),
            Refusal::Evidence(v) => {
                let names: Vec<_> = v.failures().map(|c| c.name.to_string()).collect();
                if names.is_empty() {
                    write!(f, "the evidence was not accepted (no check passed)")
                } else {
                    write!(f, "attestation failed: {}", names.join(", "))
                }
            }
            Refusal::Bundle(e) => write!(f, "evidence bundle: {e}"),
            Refusal::KeyMismatch { claimed, presented } => write!(
                f,
                "{}: the attested claims carry TLS key {} but the server presented {}",
                checks::claims::TLS_KEY.name,
                hex::encode(claimed),
                hex::encode(presented)
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// Verifies a certificate's evidence under `policy` and its binding to the certificate's
/// key. Pure: no cache, no TLS.
pub fn verify_certificate(
    der: &[u8],
    policy: &Policy,
    now: time::OffsetDateTime,
) -> Result<Accepted, Refusal> {
    let ev = read_certificate(der).map_err(Refusal::Certificate)?;
    verify_evidence(ev, policy, now)
}

/// [`verify_certificate`] on a certificate already read.
fn verify_evidence(
    ev: CertEvidence,
    policy: &Policy,
    now: time::OffsetDateTime,
) -> Result<Accepted, Refusal> {
    let (claims, verdict) = ev
        .bundle
        .verify(policy, &Expectations::default(), now)
        .map_err(|e| Refusal::Bundle(e.to_string()))?;
    if !verdict.accepted() {
        return Err(Refusal::Evidence(Box::new(verdict)));
    }
    if claims.tls_spki_sha256 != ev.spki_sha256 {
        return Err(Refusal::KeyMismatch {
            claimed: claims.tls_spki_sha256,
            presented: ev.spki_sha256,
        });
    }
    Ok(Accepted {
        claims,
        verdict,
        evidence_digest: ev.evidence_digest,
    })
}

/// How long a verified certificate is trusted without verifying it again.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(600);

/// Most verified certificates remembered: a long-running router meets a new certificate at
/// every worker restart, so the memory drops expired ones, then the oldest.
pub const MAX_REMEMBERED: usize = 4096;

impl Memory {
    fn remember(&mut self, a: Accepted, ttl: Duration) {
        if self.accepted.len() >= MAX_REMEMBERED {
            self.accepted.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        while self.accepted.len() >= MAX_REMEMBERED {
            let oldest = self
                .accepted
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => self.accepted.remove(&k),
                None => break,
            };
        }
        self.accepted
            .insert(a.evidence_digest, (Instant::now(), a.clone()));
        self.last_accepted = Some(a);
    }
}

#[derive(Default)]
struct Memory {
    accepted: HashMap<[u8; 32], (Instant, Accepted)>,
    last_accepted: Option<Accepted>,
    last_refusal: Option<Refusal>,
}

/// The rustls server-certificate verifier of silk clients: accepts a server only if its
/// RA-TLS evidence verifies under the policy and is bound to the presented key. Verified
/// certificates are remembered (by evidence digest) for [`DEFAULT_CACHE_TTL`], so repeated
/// connections to the same enclave cost one signature check, not one attestation.
pub struct RaTlsVerifier {
    policy: Arc<Policy>,
    provider: Arc<CryptoProvider>,
    ttl: Duration,
    memory: Mutex<Memory>,
}

impl std::fmt::Debug for RaTlsVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaTlsVerifier").finish_non_exhaustive()
    }
}

impl RaTlsVerifier {
    /// A verifier for `policy`.
    pub fn new(policy: Arc<Policy>) -> Self {
        Self {
            policy,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            ttl: DEFAULT_CACHE_TTL,
            memory: Mutex::new(Memory::default()),
        }
    }

    /// The most recent server this verifier accepted.
    pub fn last_accepted(&self) -> Option<Accepted> {
        self.memory.lock().ok()?.last_accepted.clone()
    }

    /// Why the most recent refusal happened (rustls only reports that one did).
    pub fn last_refusal(&self) -> Option<Refusal> {
        self.memory.lock().ok()?.last_refusal.clone()
    }

    /// The accepted server whose certificate is `der`, when it is in the cache.
    pub fn accepted_for(&self, der: &[u8]) -> Option<Accepted> {
        let digest = read_certificate(der).ok()?.evidence_digest;
        let m = self.memory.lock().ok()?;
        m.accepted.get(&digest).map(|(_, a)| a.clone())
    }

    fn check(&self, der: &[u8]) -> Result<Accepted, Refusal> {
        let ev = read_certificate(der).map_err(Refusal::Certificate)?;
        if let Ok(m) = self.memory.lock() {
            if let Some((at, a)) = m.accepted.get(&ev.evidence_digest) {
                // The digest covers the evidence; the key binding is per certificate.
                if at.elapsed() < self.ttl && a.claims.tls_spki_sha256 == ev.spki_sha256 {
                    return Ok(a.clone());
                }
            }
        }
        verify_evidence(ev, &self.policy, time::OffsetDateTime::now_utc())
    }
}

impl ServerCertVerifier for RaTlsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self.check(end_entity.as_ref());
        let mut m = self
            .memory
            .lock()
            .map_err(|_| rustls::Error::General("verifier state poisoned".into()))?;
        match result {
            Ok(a) => {
                m.remember(a, self.ttl);
                Ok(ServerCertVerified::assertion())
            }
            Err(r) => {
                let text = r.to_string();
                m.last_refusal = Some(r);
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Other(rustls::OtherError(Arc::new(RefusalText(
                        text,
                    )))),
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("RA-TLS is TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[derive(Debug)]
struct RefusalText(String);

impl std::fmt::Display for RefusalText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RefusalText {}

/// A TLS 1.3-only client configuration that trusts servers through `verifier`.
pub fn client_config(verifier: Arc<RaTlsVerifier>) -> Result<rustls::ClientConfig, RaTlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| RaTlsError::Build(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// A TLS 1.3-only server configuration presenting the RA-TLS certificate.
pub fn server_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, RaTlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| RaTlsError::Build(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| RaTlsError::Build(e.to_string()))
}

#[cfg(test)]
mod memory_tests {
    use super::*;

    fn accepted(i: u32) -> Accepted {
        let mut digest = [0u8; 32];
        digest[..4].copy_from_slice(&i.to_be_bytes());
        Accepted {
            claims: Claims {
                hpke_public_key: [1; 32],
                tls_spki_sha256: [2; 32],
                image_digest: [3; 32],
                model: "m".into(),
                gpu_nonce: Vec::new(),
                challenge: Vec::new(),
                created_at: 0,
                software_version: "t".into(),
                receipt_public_key: [4; 32],
                payout_address: String::new(),
                evidence_provider: "simulated".into(),
                gpu_policy_sha256: Vec::new(),
            },
            verdict: Verdict::new(silk_attestation::Platform::SevSnp),
            evidence_digest: digest,
        }
    }

    #[test]
    fn the_memory_of_verified_certificates_is_bounded() {
        let mut m = Memory::default();
        for i in 0..(MAX_REMEMBERED as u32 + 10) {
            m.remember(accepted(i), DEFAULT_CACHE_TTL);
        }
        assert_eq!(m.accepted.len(), MAX_REMEMBERED);
        // The oldest went first; the newest are all there.
        assert!(!m.accepted.contains_key(&accepted(0).evidence_digest));
        assert!(m
            .accepted
            .contains_key(&accepted(MAX_REMEMBERED as u32 + 9).evidence_digest));
        // Expired entries go before any live one.
        let mut m = Memory::default();
        for i in 0..MAX_REMEMBERED as u32 {
            m.remember(accepted(i), DEFAULT_CACHE_TTL);
        }
        m.remember(accepted(u32::MAX), Duration::ZERO);
        assert_eq!(m.accepted.len(), 1);
    }
}
