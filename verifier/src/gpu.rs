//! NVIDIA GPU evidence held on its own, as NVIDIA's users hold it: a report with its
//! device certificate chain (nvtrust's `*AttestationReport.txt` and `*CertChain.txt`), or
//! the JSON an NRAS request carries (a list of `{arch, nonce, evidence, certificate}`, or
//! `{nonce, arch, evidence_list: [...]}`), base64 inside.

use base64::Engine as _;
use serde::Deserialize;
use silk_attestation::gpu::{self, GpuArch, GpuEvidence, NonceRule, Revocation, RimStore};
use silk_attestation::{EvidenceKind, Verdict};

use crate::{GpuNonce, InputError, Inputs, Outcome};

/// One GPU's entry in NRAS-style JSON.
#[derive(Deserialize)]
struct NrasItem {
    #[serde(default)]
    arch: Option<String>,
    evidence: String,
    certificate: String,
}

/// NRAS's request body: the evidence list with one arch and nonce for all.
#[derive(Deserialize)]
struct NrasRequest {
    #[serde(default)]
    arch: Option<String>,
    evidence_list: Vec<NrasItem>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NrasJson {
    List(Vec<NrasItem>),
    Request(NrasRequest),
}

/// Whether a JSON document is NRAS-style GPU evidence rather than a silk bundle.
pub(crate) fn is_nras_json(raw: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(raw)
        .ok()
        .is_some_and(|v| v.get("evidence_list").is_some() || v.is_array())
}

/// One GPU's evidence, with a label for the verdict.
struct Item {
    label: String,
    arch: Option<GpuArch>,
    report: Vec<u8>,
    chain_pem: Vec<u8>,
}

/// A RIM store from (name, XML) pairs. A file that is not a RIM is an error naming it,
/// so that a wrong file never reads as "no RIM supplied".
pub(crate) fn rim_store(rims: &[(String, Vec<u8>)]) -> Result<RimStore, InputError> {
    let mut store = RimStore::new();
    for (name, xml) in rims {
        store
            .insert(name, xml)
            .map_err(|e| InputError::Collateral {
                what: "RIM",
                reason: format!("{name}: {e}"),
            })?;
    }
    Ok(store)
}

/// Verifies standalone GPU evidence (a report with `inputs.gpu_chain`, or NRAS JSON).
pub(crate) fn verify(
    raw: &[u8],
    inputs: &Inputs,
    mut notes: Vec<String>,
) -> Result<Outcome, InputError> {
    let rule =
        match &inputs.gpu_nonce {
            GpuNonce::Expect(n) => NonceRule::Expect(n),
            GpuNonce::AcceptReplay => {
                notes.push(
                "the report's nonce is not checked, so an old report replayed would be accepted"
                    .into(),
            );
                NonceRule::AcceptReplay
            }
            GpuNonce::Unset => return Err(InputError::Missing(
                "a GPU report must answer a nonce the verifier chose: give the 32 bytes it was \
                 requested with, or say explicitly that a replay is acceptable"
                    .into(),
            )),
        };
    let first = raw.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let items = if matches!(first, Some(b'[' | b'{')) {
        if inputs.gpu_chain.is_some() {
            notes
                .push("the certificate chain given is ignored: the JSON carries each GPU's".into());
        }
        from_json(raw)?
    } else {
        vec![from_report(raw, inputs)?]
    };
    let rims = if inputs.gpu_rims.is_empty() {
        notes.push("no RIMs given: the driver and VBIOS reference values are not supplied".into());
        RimStore::new()
    } else {
        rim_store(&inputs.gpu_rims)?
    };
    let revocation = if inputs.ocsp.is_empty() {
        Revocation::Unavailable
    } else {
        Revocation::OcspResponses(inputs.ocsp.clone())
    };
    let one = |item: &Item| {
        let chain_arch = gpu::certs::parse_pem_chain(&item.chain_pem)
            .ok()
            .and_then(|c| gpu::certs::chain_arch(&c).ok())
            .map(|(_, arch)| arch);
        // Without either, the chain is checked (and fails) below; the architecture is moot.
        let arch = item.arch.or(chain_arch).unwrap_or(GpuArch::Hopper);
        let evidence = GpuEvidence {
            arch,
            report: item.report.clone(),
            cert_chain_pem: item.chain_pem.clone(),
        };
        gpu::verify_with(
            &evidence,
            &inputs.policy,
            rule,
            &rims,
            &revocation,
            inputs.now,
        )
    };
    let verdict = if let [item] = items.as_slice() {
        one(item)
    } else {
        notes.push(format!("{} GPUs, checked in one verdict", items.len()));
        let mut all = Verdict::new(silk_attestation::Platform::NvidiaGpu);
        for (i, item) in items.iter().enumerate() {
            all.absorb(format!("#{i} {}", item.label), one(item));
        }
        all
    };
    Ok(Outcome {
        verdict,
        kind: EvidenceKind::GpuReport,
        notes,
        claims: None,
    })
}

fn from_report(raw: &[u8], inputs: &Inputs) -> Result<Item, InputError> {
    let Some(chain_pem) = &inputs.gpu_chain else {
        return Err(InputError::Missing(
            "a GPU report needs the GPU's device certificate chain (PEM, leaf first, as \
             nvtrust's *CertChain.txt), which was not given"
                .into(),
        ));
    };
    // A report whose hex is damaged is still the caller's report: the parser rejects what
    // decodes (gpu.report_format), so keep the bytes as they are when hex fails.
    let report = silk_attestation::evidence::decode_text(raw).unwrap_or_else(|_| raw.to_vec());
    Ok(Item {
        label: String::new(),
        arch: None,
        report,
        chain_pem: chain_pem.clone(),
    })
}

fn from_json(raw: &[u8]) -> Result<Vec<Item>, InputError> {
    let bad = |reason: String| InputError::Collateral {
        what: "GPU evidence",
        reason,
    };
    let doc: NrasJson = serde_json::from_slice(raw).map_err(|e| {
        bad(format!(
            "not NRAS-style GPU evidence (a list of {{arch, nonce, evidence, certificate}} \
             or {{nonce, arch, evidence_list}}): {e}"
        ))
    })?;
    let (list, top_arch) = match doc {
        NrasJson::List(list) => (list, None),
        NrasJson::Request(r) => (r.evidence_list, r.arch),
    };
    if list.is_empty() {
        return Err(bad("the evidence list is empty".into()));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let compact = |s: &str| -> String { s.chars().filter(|c| !c.is_ascii_whitespace()).collect() };
    list.into_iter()
        .enumerate()
        .map(|(i, item)| {
            let arch = match item.arch.or_else(|| top_arch.clone()) {
                Some(name) => Some(GpuArch::from_name(&name).ok_or_else(|| {
                    bad(format!(
                        "entry {i}: arch {name:?} is neither HOPPER nor BLACKWELL"
                    ))
                })?),
                None => None,
            };
            // Evidence that does not decode is still evidence: the verifier rejects it at
            // gpu.report_format.
            let report = b64
                .decode(compact(&item.evidence))
                .or_else(|_| hex::decode(compact(&item.evidence)))
                .unwrap_or_else(|_| item.evidence.clone().into_bytes());
            let chain_pem = if item.certificate.trim_start().starts_with("-----BEGIN") {
                item.certificate.into_bytes()
            } else {
                b64.decode(compact(&item.certificate))
                    .unwrap_or_else(|_| item.certificate.into_bytes())
            };
            Ok(Item {
                label: format!("entry {i}"),
                arch,
                report,
                chain_pem,
            })
        })
        .collect()
}
