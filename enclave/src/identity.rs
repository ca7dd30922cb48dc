//! The enclave's identity for one boot: keys made inside, the claims that bind them, the
//! evidence over those claims and the RA-TLS certificate that carries it.
//!
//! Keys (HPKE, TLS, and the Ed25519 receipt key that signs offers and usage receipts) are
//! generated here at start and live only in memory (wiped on drop); nothing in
//! this module writes them anywhere. The *base* claims (no challenge) are attested once
//! and ride in the TLS certificate; sealed requests are bound to their digest. A client's
//! challenge gets *fresh* claims — the same keys and identity, its nonce, the current
//! time — and fresh evidence over them.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use silk_protocol::attestation::gpu::GpuEvidence;
use silk_protocol::attestation::snp::simulated::SimulatedChain;
use silk_protocol::bundle::Bytes;
use silk_protocol::gpu::{gpu_nonce, GpuItem};
use silk_protocol::ratls::{self, TlsIdentity};
use silk_protocol::receipt::{Offer, Receipt, ReceiptError, SignedOffer, SigningKeyPair};
use silk_protocol::{
    open_request, Claims, EnclaveKeys, EvidenceBundle, PlatformEvidence, SealError, StreamSealer,
};
use zeroize::Zeroizing;

use crate::evidence::sev_guest::{parse_cert_table, CertKind};
use crate::evidence::{EvidenceError, EvidenceProvider, Platform, RawEvidence};

/// What the enclave states about itself besides its keys.
#[derive(Clone, Debug)]
pub struct Statement {
    /// SHA-256 of the image manifest it booted from.
    pub image_digest: [u8; 32],
    /// The model identity (`sha256:…` or `verity:…`).
    pub model: String,
    /// The GPU evidence nonce (empty without a GPU).
    pub gpu_nonce: Vec<u8>,
    /// The software version.
    pub software_version: String,
    /// Where the owner is paid (bound in the claims; empty when unpaid).
    pub payout_address: String,
    /// The evidence provider's name, stated in the claims so that a policy can pin it.
    pub evidence_provider: String,
    /// SHA-256 of the GPU policy the enclave checks its GPUs against (empty: none).
    pub gpu_policy_sha256: Vec<u8>,
    /// The TDX event log (CCEL), served with every TDX quote so that a verifier can
    /// replay it to the quote's RTMRs; `None` where the guest exports none.
    pub tdx_event_log: Option<Vec<u8>>,
    /// What was fetched for verifiers (VCEK, TDX collateral), put into every bundle.
    pub collateral: Arc<crate::collateral::Served>,
}

impl Statement {
    /// Extends RTMR3 (under `root`, `/` in production) with the SHA-384 of the runtime
    /// document ([`silk_protocol::claims::runtime_document`]) and logs it as an
    /// EV_EVENT_TAG event for RTMR3 in the served event log, so that the log still
    /// replays to the quote. Where the kernel cannot extend RTMR3 nothing changes: the
    /// claims carry the same facts either way. Returns whether RTMR3 was extended.
    pub fn measure_runtime(&mut self, root: &std::path::Path) -> Result<bool, IdentityError> {
        use sha2::Digest as _;
        let document = silk_protocol::claims::runtime_document(
            &self.model,
            &self.evidence_provider,
            &self.gpu_policy_sha256,
            &self.payout_address,
        )?;
        let digest: [u8; 48] = sha2::Sha384::digest(&document).into();
        if !crate::evidence::rtmr::extend_rtmr3(root, &digest)? {
            return Ok(false);
        }
        if let Some(log) = self.tdx_event_log.take() {
            let mut w = silk_protocol::attestation::tdx::event_log::LogWriter::continuing(log);
            // CC index 4 is RTMR3 (UEFI 2.10 §38.4.1); 6 is EV_EVENT_TAG.
            w.event(4, 6, &digest, &document);
            self.tdx_event_log = Some(w.finish());
        }
        Ok(true)
    }
}

/// Why the identity could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The hardware (or simulator) gave no evidence.
    #[error("evidence: {0}")]
    Evidence(#[from] EvidenceError),
    /// The evidence cannot be served as a bundle.
    #[error("evidence bundle: {0}")]
    Bundle(String),
    /// A claims field is out of bounds.
    #[error("claims: {0}")]
    Claims(#[from] silk_protocol::ClaimsError),
    /// The TLS certificate could not be made.
    #[error(transparent)]
    Tls(#[from] ratls::RaTlsError),
    /// GPU evidence could not be collected.
    #[error("GPU evidence: {0}")]
    Gpu(String),
}

/// Collects GPU evidence over a nonce (NVML in production; a stand-in in tests).
pub type GpuCollector<'a> = &'a dyn Fn(&[u8; 32]) -> Result<Vec<GpuEvidence>, String>;

/// Keys, claims, evidence and certificate of one boot.
pub struct Identity {
    hpke: EnclaveKeys,
    receipt_key: SigningKeyPair,
    tls: TlsIdentity,
    provider: Arc<dyn EvidenceProvider>,
    statement: Statement,
    base_claims: Claims,
    claims_digest: [u8; 32],
    base_bundle: EvidenceBundle,
    gpus: Vec<GpuItem>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Identity {
    /// Generates the keys, collects GPU evidence over the nonce derived from them (when
    /// `gpu` is given) and obtains evidence over the base claims.
    pub fn create(
        provider: Arc<dyn EvidenceProvider>,
        mut statement: Statement,
        gpu: Option<GpuCollector<'_>>,
    ) -> Result<Self, IdentityError> {
        let hpke = EnclaveKeys::generate(&mut silk_protocol::seal::os_rng());
        let receipt_key = SigningKeyPair::generate();
        let tls = TlsIdentity::generate()?;
        let mut gpus = Vec::new();
        if let Some(collect) = gpu {
            let nonce = gpu_nonce(&hpke.public_key(), &tls.spki_sha256());
            gpus = collect(&nonce)
                .map_err(IdentityError::Gpu)?
                .iter()
                .map(GpuItem::from)
                .collect();
            statement.gpu_nonce = nonce.to_vec();
        }
        let base_claims = claims(&hpke, &tls, &receipt_key, &statement, Vec::new());
        let claims_digest = base_claims.digest()?;
        let base_bundle = attest(provider.as_ref(), &base_claims, &gpus, &statement)?;
        Ok(Self {
            hpke,
            receipt_key,
            tls,
            provider,
            statement,
            base_claims,
            claims_digest,
            base_bundle,
            gpus,
        })
    }

    /// The claims sealed requests are bound to.
    pub fn claims(&self) -> &Claims {
        &self.base_claims
    }

    /// The evidence bundle over the base claims, with the current TDX collateral.
    pub fn bundle(&self) -> EvidenceBundle {
        let mut bundle = self.base_bundle.clone();
        self.statement.collateral.apply(&mut bundle.platform);
        bundle
    }

    /// Fresh evidence whose claims carry the client's `nonce`.
    pub fn fresh_bundle(&self, nonce: &[u8]) -> Result<EvidenceBundle, IdentityError> {
        // The GPUs' reports are over the boot's GPU nonce, which the fresh claims repeat.
        let c = claims(
            &self.hpke,
            &self.tls,
            &self.receipt_key,
            &self.statement,
            nonce.to_vec(),
        );
        attest(self.provider.as_ref(), &c, &self.gpus, &self.statement)
    }

    /// The worker id: SHA-256 of the base claims.
    pub fn worker_id(&self) -> [u8; 32] {
        self.claims_digest
    }

    /// Signs an offer with this boot's receipt key.
    pub fn sign_offer(&self, offer: &Offer) -> Result<SignedOffer, ReceiptError> {
        offer.sign(&self.receipt_key)
    }

    /// Signs a usage receipt with this boot's receipt key.
    pub fn sign_receipt(&self, receipt: &Receipt) -> Result<Vec<u8>, ReceiptError> {
        receipt.sign(&self.receipt_key)
    }

    /// Opens a sealed request bound to this boot's claims.
    pub fn open(&self, wire: &[u8]) -> Result<(Zeroizing<Vec<u8>>, StreamSealer), SealError> {
        open_request(&self.hpke, &self.claims_digest, wire)
    }

    /// The RA-TLS certificate and key for the server.
    pub fn certificate(
        &self,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), IdentityError> {
        Ok(self.tls.certificate(&self.base_bundle)?)
    }

    /// The GPU evidence (empty without GPUs).
    pub fn gpus(&self) -> &[GpuItem] {
        &self.gpus
    }

    /// The name of the evidence provider.
    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }
}

fn claims(
    hpke: &EnclaveKeys,
    tls: &TlsIdentity,
    receipt_key: &SigningKeyPair,
    s: &Statement,
    challenge: Vec<u8>,
) -> Claims {
    Claims {
        hpke_public_key: hpke.public_key(),
        tls_spki_sha256: tls.spki_sha256(),
        image_digest: s.image_digest,
        model: s.model.clone(),
        gpu_nonce: s.gpu_nonce.clone(),
        challenge,
        created_at: unix_now(),
        software_version: s.software_version.clone(),
        receipt_public_key: receipt_key.public_key(),
        payout_address: s.payout_address.clone(),
        evidence_provider: s.evidence_provider.clone(),
        gpu_policy_sha256: s.gpu_policy_sha256.clone(),
    }
}

fn attest(
    provider: &dyn EvidenceProvider,
    claims: &Claims,
    gpus: &[GpuItem],
    statement: &Statement,
) -> Result<EvidenceBundle, IdentityError> {
    let raw = provider.report(&claims.report_data()?)?;
    let mut platform =
        platform_evidence(raw, provider.simulated_chain(), statement.collateral.vcek())?;
    if let PlatformEvidence::Tdx { event_log, .. } = &mut platform {
        *event_log = statement
            .tdx_event_log
            .as_deref()
            .map(|log| Bytes(log.to_vec()));
    }
    statement.collateral.apply(&mut platform);
    Ok(EvidenceBundle {
        version: 1,
        platform,
        claims: Bytes(claims.encode()?),
        gpus: gpus.to_vec(),
    })
}

/// Turns what a provider returned into the bundle's platform evidence. `fetched_vcek` is
/// the VCEK fetched from KDS, served when the host's certificate table has no VEK.
pub fn platform_evidence(
    raw: RawEvidence,
    sim_chain: Option<&SimulatedChain>,
    fetched_vcek: Option<&[u8]>,
) -> Result<PlatformEvidence, IdentityError> {
    match raw.platform {
        Platform::Simulated => {
            let chain = sim_chain.ok_or_else(|| {
                IdentityError::Bundle("a simulated report without its development chain".into())
            })?;
            Ok(PlatformEvidence::SevSnp {
                report: Bytes(raw.evidence),
                vek: Bytes(chain.vcek.clone()),
                ask: Some(Bytes(chain.ask.clone())),
                ark: Some(Bytes(chain.ark.clone())),
            })
        }
        Platform::SevSnp => {
            let certs = match &raw.certificates {
                Some(table) => parse_cert_table(table)?,
                None => Vec::new(),
            };
            let find = |k: CertKind| {
                certs
                    .iter()
                    .find(|(kind, _)| *kind == k)
                    .map(|(_, d)| Bytes(d.clone()))
            };
            let vek = find(CertKind::Vcek)
                .or_else(|| find(CertKind::Vlek))
                .or_else(|| fetched_vcek.map(|d| Bytes(d.to_vec())))
                .ok_or_else(|| {
                    IdentityError::Bundle(
                        "no VCEK or VLEK for the SNP report: the host's certificate table \
                         (extended report / configfs-tsm auxblob) has none and none was \
                         fetched from KDS (see the log, --kds-url)"
                            .into(),
                    )
                })?;
            Ok(PlatformEvidence::SevSnp {
                report: Bytes(raw.evidence),
                vek,
                ask: find(CertKind::Ask),
                ark: find(CertKind::Ark),
            })
        }
        Platform::Tdx => Ok(PlatformEvidence::Tdx {
            quote: Bytes(raw.evidence),
            collateral: None,
            event_log: None,
        }),
        Platform::TdxReport => Err(IdentityError::Bundle(
            "a TDREPORT is only verifiable on the same machine; use configfs-tsm for a quote"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;
    use silk_protocol::attestation::tdx::event_log::{EventLog, LogWriter};
    use silk_protocol::attestation::tdx::replay::extend_all;

    fn statement(log: Option<Vec<u8>>) -> Statement {
        Statement {
            image_digest: [1; 32],
            model: "verity:ab".into(),
            gpu_nonce: Vec::new(),
            software_version: "test".into(),
            payout_address: "EQpay".into(),
            evidence_provider: "configfs-tsm".into(),
            gpu_policy_sha256: vec![5; 32],
            tdx_event_log: log,
            collateral: Default::default(),
        }
    }

    #[test]
    fn the_runtime_configuration_is_extended_into_rtmr3_and_logged() {
        let root = std::env::temp_dir().join(format!("silk-runtime-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // No interface (Linux before 6.16): nothing changes.
        let mut s = statement(Some(LogWriter::new().finish()));
        assert!(!s.measure_runtime(&root).expect("no interface"));
        assert_eq!(s.tdx_event_log, Some(LogWriter::new().finish()));

        let rtmr3 = crate::evidence::rtmr::rtmr3_path(&root);
        std::fs::create_dir_all(rtmr3.parent().expect("parent")).expect("mkdir");
        std::fs::write(&rtmr3, b"").expect("file");
        let mut w = LogWriter::new();
        w.event(2, 0x8000_0003, &[3; 48], b"kernel");
        let mut s = statement(Some(w.finish()));
        assert!(s.measure_runtime(&root).expect("extended"));
        let document =
            silk_protocol::claims::runtime_document("verity:ab", "configfs-tsm", &[5; 32], "EQpay")
                .expect("document");
        let digest: [u8; 48] = sha2::Sha384::digest(&document).into();
        assert_eq!(std::fs::read(&rtmr3).expect("written"), digest.to_vec());
        let log = EventLog::parse(s.tdx_event_log.as_deref().expect("log")).expect("parses");
        let last = log.extending(3).last().expect("an RTMR3 event");
        assert_eq!((last.sha384, &last.data), (digest, &document));
        assert_eq!(log.replay()[3], extend_all(&[digest]));
        assert_eq!(log.replay()[1], extend_all(&[[3; 48]]));
        let _ = std::fs::remove_dir_all(&root);
    }
}
