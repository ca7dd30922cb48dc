//! `silk verify` for NVIDIA GPU evidence held on its own, as NVIDIA's users hold it: a
//! report with its device certificate chain (nvtrust's `*AttestationReport.txt` and
//! `*CertChain.txt`), or the JSON an NRAS request carries (a list of
//! `{arch, nonce, evidence, certificate}`, or `{nonce, arch, evidence_list: [...]}`),
//! base64 inside.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;
use silk_attestation::gpu::{self, GpuArch, GpuEvidence, NonceRule, Revocation, RimStore};
use silk_attestation::{EvidenceKind, Policy, Verdict};
use time::OffsetDateTime;

use crate::verify::{read, VerifyArgs, VerifyCmdError};
use silk_client::render;

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

/// One GPU's evidence as read from the files, with where it came from.
struct Item {
    label: String,
    arch: Option<GpuArch>,
    report: Vec<u8>,
    chain_pem: Vec<u8>,
}

/// Verifies standalone GPU evidence and writes the verdict. Returns whether it was
/// accepted.
pub(crate) fn run(
    args: &VerifyArgs,
    raw: &[u8],
    policy: &Policy,
    now: OffsetDateTime,
    mut notes: Vec<String>,
    out: &mut dyn Write,
) -> Result<bool, VerifyCmdError> {
    if args.image.is_some() {
        return Err(VerifyCmdError::Missing(
            "--image: a GPU report measures GPU firmware, not a guest image".into(),
        ));
    }
    let nonce = expected_nonce(args, &mut notes)?;
    let first = raw.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let items = if matches!(first, Some(b'[' | b'{')) {
        if args.certs.is_some() {
            notes.push("--certs ignored: the JSON carries each GPU's certificate chain".into());
        }
        from_json(&args.evidence, raw)?
    } else {
        vec![from_report(args, raw)?]
    };
    let rims = match &args.gpu_rims {
        Some(dir) => {
            silk_protocol::gpu::rims_from_dir(dir).map_err(|reason| VerifyCmdError::Collateral {
                path: dir.clone(),
                reason,
            })?
        }
        None => {
            notes.push("no --gpu-rims: the driver and VBIOS RIMs are not supplied".into());
            RimStore::new()
        }
    };
    let revocation = if args.ocsp.is_empty() {
        Revocation::Unavailable
    } else {
        Revocation::OcspResponses(
            args.ocsp
                .iter()
                .map(|p| read("OCSP response", p))
                .collect::<Result<_, _>>()?,
        )
    };
    let verdict = verify_items(
        &items,
        policy,
        nonce.as_ref(),
        &rims,
        &revocation,
        now,
        &mut notes,
    );
    let source = args.evidence.display().to_string();
    if args.json {
        render::json(&verdict, EvidenceKind::GpuReport, &source, now, out)?;
    } else {
        render::table(
            &verdict,
            EvidenceKind::GpuReport,
            &source,
            now,
            &notes,
            args.style,
            out,
        )?;
    }
    Ok(verdict.accepted())
}

/// The nonce the report must answer; `None` when the user accepts any (`--no-nonce`).
fn expected_nonce(
    args: &VerifyArgs,
    notes: &mut Vec<String>,
) -> Result<Option<[u8; 32]>, VerifyCmdError> {
    match (&args.nonce, args.no_nonce) {
        (Some(_), true) => Err(VerifyCmdError::Missing(
            "--nonce and --no-nonce contradict each other: pass one".into(),
        )),
        (Some(text), false) => {
            let text = text.trim();
            let text = text
                .strip_prefix("0x")
                .or_else(|| text.strip_prefix("0X"))
                .unwrap_or(text);
            let bytes = hex::decode(text).map_err(|e| {
                VerifyCmdError::Missing(format!("--nonce {text:?} is not hex: {e}"))
            })?;
            let nonce: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                VerifyCmdError::Missing(format!(
                    "--nonce is {} bytes; a GPU report's nonce is 32 bytes (64 hex digits)",
                    bytes.len()
                ))
            })?;
            Ok(Some(nonce))
        }
        (None, true) => {
            notes.push(
                "--no-nonce: the report's nonce is not checked, so an old report replayed \
                 would be accepted"
                    .into(),
            );
            Ok(None)
        }
        (None, false) => Err(VerifyCmdError::Missing(
            "a GPU report must answer a nonce you chose: pass --nonce HEX (the 32 bytes the \
             report was requested with), or --no-nonce to accept a report that may be a replay"
                .into(),
        )),
    }
}

fn verify_items(
    items: &[Item],
    policy: &Policy,
    nonce: Option<&[u8; 32]>,
    rims: &RimStore,
    revocation: &Revocation,
    now: OffsetDateTime,
    notes: &mut Vec<String>,
) -> Verdict {
    let rule = nonce.map_or(NonceRule::AcceptReplay, NonceRule::Expect);
    let one = |item: &Item| {
        let chain_arch = gpu::certs::parse_pem_chain(&item.chain_pem)
            .ok()
            .and_then(|c| gpu::certs::chain_arch(&c).ok())
            .map(|(_, arch)| arch);
        let arch = match (item.arch, chain_arch) {
            (Some(a), _) => a,
            (None, Some(a)) => a,
            // The chain is checked (and fails) below; the architecture is moot then.
            (None, None) => GpuArch::Hopper,
        };
        let evidence = GpuEvidence {
            arch,
            report: item.report.clone(),
            cert_chain_pem: item.chain_pem.clone(),
        };
        gpu::verify_with(&evidence, policy, rule, rims, revocation, now)
    };
    if let [item] = items {
        return one(item);
    }
    notes.push(format!("{} GPUs, checked in one verdict", items.len()));
    let mut all = Verdict::new(silk_attestation::Platform::NvidiaGpu);
    for (i, item) in items.iter().enumerate() {
        all.absorb(format!("#{i} {}", item.label), one(item));
    }
    all
}

fn from_report(args: &VerifyArgs, raw: &[u8]) -> Result<Item, VerifyCmdError> {
    let Some(chain_path) = &args.certs else {
        return Err(VerifyCmdError::Missing(
            "a GPU report needs the GPU's device certificate chain: pass --certs FILE \
             (PEM, leaf first, as nvtrust's *CertChain.txt)"
                .into(),
        ));
    };
    if chain_path.is_dir() {
        return Err(VerifyCmdError::Missing(format!(
            "--certs {} is a folder; for a GPU report it is the certificate chain file (PEM)",
            chain_path.display()
        )));
    }
    let chain_pem = read("GPU certificate chain", chain_path)?;
    // A report whose hex is damaged is still the user's report: the parser rejects what
    // decodes (gpu.report_format), so keep the bytes as they are when hex fails.
    let report = silk_attestation::evidence::decode_text(raw).unwrap_or_else(|_| raw.to_vec());
    Ok(Item {
        label: args.evidence.display().to_string(),
        arch: None,
        report,
        chain_pem,
    })
}

fn from_json(path: &Path, raw: &[u8]) -> Result<Vec<Item>, VerifyCmdError> {
    let bad = |reason: String| VerifyCmdError::Collateral {
        path: path.to_owned(),
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
    list.into_iter()
        .enumerate()
        .map(|(i, item)| {
            let arch_name = item.arch.or_else(|| top_arch.clone());
            let arch = match arch_name {
                Some(name) => Some(GpuArch::from_name(&name).ok_or_else(|| {
                    bad(format!(
                        "entry {i}: arch {name:?} is neither HOPPER nor BLACKWELL"
                    ))
                })?),
                None => None,
            };
            let compact =
                |s: &str| -> String { s.chars().filter(|c| !c.is_ascii_whitespace()).collect() };
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
