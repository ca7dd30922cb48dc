//! GPU evidence in the sealed session: how it is bound to the CVM's claims and checked
//! together with the CPU evidence.
//!
//! The enclave asks each GPU for a report over a nonce derived from its freshly generated
//! keys, [`gpu_nonce`], and puts that nonce in its claims, which the CPU report signs. A
//! verifier recomputes the nonce from the claimed keys (`claims.gpu_nonce`) and requires
//! every GPU report to be over it (`gpu.nonce`): a report from another machine, or from
//! an earlier boot of this one, carries another nonce.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use silk_attestation::checks;
use silk_attestation::gpu::{self, GpuArch, GpuEvidence, Revocation, RimStore};
use silk_attestation::{Check, Policy, Verdict};
use time::OffsetDateTime;

use crate::bundle::Bytes;
use crate::claims::Claims;

const NONCE_LABEL: &[u8] = b"silk/v1 gpu nonce";

/// The nonce the enclave's GPUs attest over: SHA-256("silk/v1 gpu nonce" || HPKE public
/// key || TLS SPKI digest). It is new with every boot's keys and known to every verifier.
pub fn gpu_nonce(hpke_public_key: &[u8; 32], tls_spki_sha256: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(NONCE_LABEL);
    h.update(hpke_public_key);
    h.update(tls_spki_sha256);
    h.finalize().into()
}

/// One GPU's evidence as a bundle carries it (binary fields in base64).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuItem {
    /// The architecture NVML reported.
    pub arch: GpuArch,
    /// The SPDM GET_MEASUREMENTS request and signed response.
    pub report: Bytes,
    /// The device certificate chain, PEM, leaf first.
    pub cert_chain: Bytes,
}

impl From<&GpuEvidence> for GpuItem {
    fn from(e: &GpuEvidence) -> Self {
        Self {
            arch: e.arch,
            report: Bytes(e.report.clone()),
            cert_chain: Bytes(e.cert_chain_pem.clone()),
        }
    }
}

impl GpuItem {
    /// As the attestation crate takes it.
    pub fn evidence(&self) -> GpuEvidence {
        GpuEvidence {
            arch: self.arch,
            report: self.report.0.clone(),
            cert_chain_pem: self.cert_chain.0.clone(),
        }
    }
}

/// What a verifier brings to check GPU evidence: NVIDIA's signed reference values (RIMs)
/// and revocation data.
#[derive(Clone, Debug, Default)]
pub struct GpuInputs {
    /// Driver and VBIOS RIMs; each report is matched with those that describe it.
    pub rims: RimStore,
    /// OCSP responses, when the verifier has them.
    pub revocation: Revocation,
}

/// Pushes the composite GPU checks into the CVM's verdict: whether GPUs were required and
/// how many, the nonce's binding to the claimed keys, and each GPU's own checks.
pub fn check(
    items: &[GpuItem],
    claims: &Claims,
    policy: &Policy,
    inputs: &GpuInputs,
    now: OffsetDateTime,
    verdict: &mut Verdict,
) {
    gpu::check_count(items.len(), policy, verdict);
    if items.is_empty() {
        return;
    }
    let expected = gpu_nonce(&claims.hpke_public_key, &claims.tls_spki_sha256);
    verdict.push(Check::from_bool(
        &checks::claims::GPU_NONCE,
        claims.gpu_nonce == expected,
        hex::encode(expected),
        hex::encode(&claims.gpu_nonce),
        || "the claims' GPU nonce is not derived from the claimed keys".into(),
    ));
    // Each report must be over the claims' nonce (signed by the CPU report); the check
    // above ties that nonce to this boot's keys.
    let claimed: [u8; 32] = claims.gpu_nonce.as_slice().try_into().unwrap_or(expected);
    for (i, item) in items.iter().enumerate() {
        let v = gpu::verify(
            &item.evidence(),
            policy,
            &claimed,
            &inputs.rims,
            &inputs.revocation,
            now,
        );
        verdict.absorb(format!("#{i} {}", item.arch), v);
    }
}

/// A RIM store from a directory of RIM files (`*.xml`, `*.swidtag`), each named in
/// verdicts by its file name. Which RIM serves which report is decided by what each RIM
/// describes (see [`RimStore`]), not by the file's name. A file that is not a RIM is an
/// error naming it, so a typo never reads as "no RIM supplied".
pub fn rims_from_dir(dir: &std::path::Path) -> Result<RimStore, String> {
    let mut store = RimStore::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext.to_ascii_lowercase().as_str(), "xml" | "swidtag") {
            continue;
        }
        let xml = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        store
            .insert(&name, &xml)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if store.is_empty() {
        return Err(format!(
            "{}: no RIM files (*.xml, *.swidtag) in this directory",
            dir.display()
        ));
    }
    Ok(store)
}
