//! Verifying one GPU's evidence, check by check, as NVIDIA's reference verifiers do and
//! stricter where they are lax (noted at each place).

use time::OffsetDateTime;
use x509_cert::Certificate;

use super::certs::{self, PathError};
use super::measurements::{check_measurements, check_rim, RimRole};
use super::revocation::check_revocation;
use super::spdm::{field, SpdmReport};
use super::{GpuArch, GpuEvidence, Revocation, RimStore};
use crate::checks::gpu;
use crate::policy::{GpuPolicy, Policy, Section, Version};
use crate::signature::{Algorithm, PublicKey, SignatureBytes, SignatureError};
use crate::verdict::{Check, Platform, Verdict};

/// NVIDIA's device chains have exactly five certificates, root included
/// (`MAX_CERT_CHAIN_LENGTH` in the reference verifier).
const DEVICE_CHAIN_LEN: usize = 5;
/// The opaque-data value of an enabled NVDEC0 or protected-PCIe mode.
pub(super) const NVDEC_ENABLED: u8 = 0xAA;
/// The opaque-data value of a disabled NVDEC0 or protected-PCIe mode.
pub(super) const NVDEC_DISABLED: u8 = 0x55;

/// What the report's nonce must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceRule<'a> {
    /// Exactly this nonce: the verifier chose it, so the report is fresh.
    Expect(&'a [u8; 32]),
    /// Any nonce: the caller accepts a report that may be a replay (`gpu.nonce` passes
    /// with a warning that says so).
    AcceptReplay,
}

/// Verifies one GPU's evidence against the policy's `[gpu]` section: the device chain to
/// NVIDIA's pinned root, the report's signature and FWID, the nonce (which binds the
/// report to the CVM's claims), the confidential mode, minimum versions, the signed
/// driver and VBIOS RIMs from `rims`, every active measurement, and revocation.
///
/// Every check is pushed, named (see [`crate::checks::gpu`]), even after one failed, so a
/// reader sees all problems; the evidence is accepted only if [`Verdict::accepted`].
pub fn verify(
    evidence: &GpuEvidence,
    policy: &Policy,
    expected_nonce: &[u8; 32],
    rims: &RimStore,
    revocation: &Revocation,
    now: OffsetDateTime,
) -> Verdict {
    verify_with(
        evidence,
        policy,
        NonceRule::Expect(expected_nonce),
        rims,
        revocation,
        now,
    )
}

/// [`verify`], with the nonce rule spelled out: for a report held on its own (NVIDIA's
/// report and chain files, an NRAS request) whose nonce the caller may not know.
pub fn verify_with(
    evidence: &GpuEvidence,
    policy: &Policy,
    nonce: NonceRule<'_>,
    rims: &RimStore,
    revocation: &Revocation,
    now: OffsetDateTime,
) -> Verdict {
    let mut v = Verdict::new(Platform::NvidiaGpu);
    let rules = policy.gpu.as_ref();
    if rules.is_none() {
        v.push(Section::Gpu.missing());
    }
    let chain = check_chain(evidence, now, &mut v);
    let report = match SpdmReport::parse(&evidence.report) {
        Ok(r) => {
            v.push(Check::pass(
                &gpu::REPORT_FORMAT,
                "SPDM 1.1 GET_MEASUREMENTS request and signed response",
                format!(
                    "{} blocks, {} opaque fields",
                    r.blocks.len(),
                    r.opaque.len()
                ),
            ));
            r
        }
        Err(e) => {
            v.push(Check::fail(
                &gpu::REPORT_FORMAT,
                "SPDM 1.1 GET_MEASUREMENTS request and signed response",
                format!("{} bytes", evidence.report.len()),
                e.to_string(),
            ));
            return v;
        }
    };
    facts(&report, &mut v);
    let chip = check_arch(evidence, chain.as_deref(), rules, &mut v);
    check_signature(evidence, &report, chain.as_deref(), &mut v);
    check_fwid(evidence.arch, &report, chain.as_deref(), &mut v);
    check_nonce(&report, nonce, &mut v);
    check_mode(&report, rules, &mut v);
    check_versions(&report, rules, &mut v);
    let chip = chip.unwrap_or_default();
    let driver_rim = check_rim(
        &RimRole::driver(&report, evidence.arch, &chip),
        &report,
        rims,
        rules,
        now,
        &mut v,
    );
    let vbios_rim = check_rim(
        &RimRole::vbios(&report, &chip),
        &report,
        rims,
        rules,
        now,
        &mut v,
    );
    check_measurements(
        &report,
        driver_rim.as_ref(),
        vbios_rim.as_ref(),
        rules,
        &mut v,
    );
    check_revocation(revocation, chain.as_deref(), rules, now, &mut v);
    v
}

fn check_nonce(report: &SpdmReport, rule: NonceRule<'_>, v: &mut Verdict) {
    let found = hex::encode(report.request.nonce);
    match rule {
        NonceRule::Expect(expected) => v.push(Check::from_bool(
            &gpu::NONCE,
            report.request.nonce == *expected,
            hex::encode(expected),
            found,
            || "the report answers another nonce: it was made for another session or boot".into(),
        )),
        NonceRule::AcceptReplay => {
            v.warn("the report's nonce was not checked: it may be a replay of an old report");
            v.push(Check::pass(
                &gpu::NONCE,
                "any nonce (replay accepted by the caller)",
                found,
            ));
        }
    }
}

fn facts(r: &SpdmReport, v: &mut Verdict) {
    v.fact("nonce", hex::encode(r.request.nonce));
    v.fact("driver_version", r.driver_version().unwrap_or_default());
    v.fact("vbios_version", r.vbios_version().unwrap_or_default());
    v.fact("measurement_blocks", r.blocks.len().to_string());
    if let Some(fwid) = r.fwid() {
        v.fact("fwid", hex::encode(fwid));
    }
    if let Some(id) = r.vbios_rim_id() {
        v.fact("vbios_rim_id", id);
    }
}

fn check_chain(ev: &GpuEvidence, now: OffsetDateTime, v: &mut Verdict) -> Option<Vec<Certificate>> {
    let expected = "5 certificates to the pinned NVIDIA Device Identity CA, valid now";
    let result = certs::parse_pem_chain(&ev.cert_chain_pem).and_then(|chain| {
        if chain.len() != DEVICE_CHAIN_LEN {
            return Err(PathError::Length {
                found: chain.len(),
                expected: DEVICE_CHAIN_LEN,
            });
        }
        let root = certs::device_root()?;
        certs::verify_path(&chain, &root, now).map(|summary| (chain, summary))
    });
    match result {
        Ok((chain, summary)) => {
            v.push(Check::pass(&gpu::CERT_CHAIN, expected, summary));
            Some(chain)
        }
        Err(e) => {
            v.push(Check::fail(&gpu::CERT_CHAIN, expected, "", e.to_string()));
            None
        }
    }
}

/// The chip named by the chain must be of the architecture the evidence claims, and the
/// policy must allow it. Returns the chip (`GH100`).
fn check_arch(
    ev: &GpuEvidence,
    chain: Option<&[Certificate]>,
    rules: Option<&GpuPolicy>,
    v: &mut Verdict,
) -> Option<String> {
    let allowed = rules.map(|r| r.architectures.clone()).unwrap_or_default();
    let expected = format!(
        "one of [{}], as the chain's chip says",
        allowed
            .iter()
            .map(GpuArch::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let Some(chain) = chain else {
        v.push(Check::fail(
            &gpu::ARCHITECTURE,
            expected,
            ev.arch.to_string(),
            "the chain is not trusted",
        ));
        return None;
    };
    match certs::chain_arch(chain) {
        Err(e) => {
            v.push(Check::fail(
                &gpu::ARCHITECTURE,
                expected,
                ev.arch.to_string(),
                e.to_string(),
            ));
            None
        }
        Ok((chip, arch)) => {
            v.fact("chip", chip.clone());
            let found = format!("{arch} ({chip}), evidence says {}", ev.arch);
            let check = if arch != ev.arch {
                Check::fail(
                    &gpu::ARCHITECTURE,
                    expected,
                    found,
                    "the evidence's architecture differs from its certificate's chip",
                )
            } else if !allowed.contains(&arch) {
                Check::fail(
                    &gpu::ARCHITECTURE,
                    expected,
                    found,
                    format!("the policy does not accept {arch} GPUs"),
                )
            } else {
                Check::pass(&gpu::ARCHITECTURE, expected, found)
            };
            v.push(check);
            Some(chip)
        }
    }
}

fn check_signature(
    ev: &GpuEvidence,
    r: &SpdmReport,
    chain: Option<&[Certificate]>,
    v: &mut Verdict,
) {
    let expected = "ECDSA P-384/SHA-384 over request and response, by the chain's leaf";
    let result = match chain.and_then(<[Certificate]>::first) {
        None => Err(ReportSignatureError::NoLeaf),
        Some(leaf) => report_signature(&ev.report, r, leaf),
    };
    v.push(match result {
        Ok(()) => Check::pass(&gpu::REPORT_SIGNATURE, expected, "valid"),
        Err(e) => Check::fail(&gpu::REPORT_SIGNATURE, expected, "invalid", e.to_string()),
    });
}

/// Why a GPU report's signature was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportSignatureError {
    /// The device chain did not verify, so there is no key to trust.
    #[error("no trusted device certificate")]
    NoLeaf,
    /// The raw bytes are shorter than the parsed report's signed part.
    #[error("the report is shorter than its signed part")]
    Short,
    /// The leaf's key is not P-384, or the signature is malformed.
    #[error("{0}")]
    Unusable(SignatureError),
    /// The signature does not verify.
    #[error("the signature does not verify: the report was altered or not made by this GPU")]
    Invalid,
}

/// Checks the signature of `raw` (parsed as `report`) with `leaf`'s key: ECDSA P-384 with
/// SHA-384 over every byte before the signature, request included.
pub fn report_signature(
    raw: &[u8],
    report: &SpdmReport,
    leaf: &Certificate,
) -> Result<(), ReportSignatureError> {
    let key = PublicKey::p384_of(leaf).map_err(ReportSignatureError::Unusable)?;
    let signed = raw
        .get(..report.signed_len)
        .ok_or(ReportSignatureError::Short)?;
    PublicKey::EcdsaP384(key)
        .verify(
            Algorithm::EcdsaP384Sha384,
            signed,
            SignatureBytes::Fixed(&report.signature),
        )
        .map_err(|e| match e {
            SignatureError::Invalid => ReportSignatureError::Invalid,
            other => ReportSignatureError::Unusable(other),
        })
}

/// NVIDIA's verifiers skip this check when the report carries no FWID (firmware before
/// the field existed); so does silk, with a warning.
fn check_fwid(arch: GpuArch, r: &SpdmReport, chain: Option<&[Certificate]>, v: &mut Verdict) {
    let Some(fwid) = r.fwid() else {
        v.warn("the GPU report carries no FWID, so its key is not tied to the measured firmware");
        v.push(Check::pass(
            &gpu::FWID,
            "the leaf's DICE FWID",
            "no FWID in the report (older firmware)",
        ));
        return;
    };
    let leaf = chain.and_then(<[Certificate]>::first);
    let check = match leaf.map(|l| certs::leaf_fwid(l, arch)) {
        None => Check::fail(
            &gpu::FWID,
            "the leaf's DICE FWID",
            hex::encode(fwid),
            "no trusted device certificate",
        ),
        Some(Err(e)) => Check::fail(
            &gpu::FWID,
            "the leaf's DICE FWID",
            hex::encode(fwid),
            e.to_string(),
        ),
        Some(Ok(cert_fwid)) => Check::from_bool(
            &gpu::FWID,
            cert_fwid == fwid,
            hex::encode(&cert_fwid),
            hex::encode(fwid),
            || "the report's FWID differs from its signing certificate's".into(),
        ),
    };
    v.push(check);
}

/// The report can only say which confidential mode the GPU runs: single-GPU, multi-GPU
/// passthrough, or protected PCIe (NVSwitch fabric, whose trust also rests on the
/// switches). Whether CC is on at all, and devtools mode, are NVML settings the enclave
/// checks when it collects; a GPU outside production CC shows as measurement mismatches.
fn check_mode(r: &SpdmReport, rules: Option<&GpuPolicy>, v: &mut Verdict) {
    let allow_ppcie = rules.is_some_and(|p| p.allow_protected_pcie);
    let ppcie = r
        .opaque_field(field::PROTECTED_PCIE_STATUS)
        .and_then(|b| b.first().copied());
    let flag = r
        .opaque_field(field::FEATURE_FLAG)
        .and_then(|b| b.first().copied());
    let found = format!(
        "protected PCIe {}, feature flag {}",
        ppcie.map_or("absent".into(), |b| format!("{b:#04x}")),
        flag.map_or("absent".into(), |b| b.to_string())
    );
    let problem = match (ppcie, flag) {
        (Some(b), _) if b != NVDEC_DISABLED && b != NVDEC_ENABLED => {
            Some(format!("unknown protected-PCIe status {b:#04x}"))
        }
        (_, Some(f)) if f > 2 => Some(format!("unknown feature flag {f}")),
        (Some(NVDEC_ENABLED), _) | (_, Some(2)) if !allow_ppcie => Some(
            "the GPU runs in protected-PCIe (multi-GPU) mode, which the policy does not accept"
                .into(),
        ),
        _ => None,
    };
    let expected = if allow_ppcie {
        "single-GPU or protected-PCIe CC"
    } else {
        "single-GPU CC (protected PCIe off)"
    };
    v.push(match problem {
        None => Check::pass(&gpu::CC_MODE, expected, found),
        Some(reason) => Check::fail(&gpu::CC_MODE, expected, found, reason),
    });
    if allow_ppcie {
        v.warn("policy accepts protected-PCIe mode: the NVSwitch fabric is not verified by silk");
    }
}

fn check_versions(r: &SpdmReport, rules: Option<&GpuPolicy>, v: &mut Verdict) {
    for (name, what, found, min, hex) in [
        (
            &gpu::DRIVER_VERSION,
            "driver",
            r.driver_version(),
            rules.and_then(|p| p.min_driver_version.clone()),
            false,
        ),
        (
            &gpu::VBIOS_VERSION,
            "VBIOS",
            r.vbios_version(),
            rules.and_then(|p| p.min_vbios_version.clone()),
            true,
        ),
    ] {
        let found_text = found.clone().unwrap_or_else(|| "absent".into());
        let Some(min) = min else {
            v.push(Check::fail(
                name,
                format!("a minimum {what} version"),
                found_text,
                format!("the policy sets no minimum {what} version; write \"0\" to accept any"),
            ));
            continue;
        };
        let ok = match (
            found.as_deref().map(|f| Version::parse(f, hex)),
            Version::parse(&min, hex),
        ) {
            (Some(Ok(have)), Ok(need)) => Ok(have >= need),
            (None, _) => Err(format!("the report carries no {what} version")),
            (Some(Err(e)), _) | (_, Err(e)) => Err(e.to_string()),
        };
        v.push(match ok {
            Ok(true) => Check::pass(name, format!(">= {min}"), found_text),
            Ok(false) => Check::fail(
                name,
                format!(">= {min}"),
                found_text,
                format!("the {what} is older than the policy's minimum"),
            ),
            Err(e) => Check::fail(name, format!(">= {min}"), found_text, e),
        });
    }
}

/// The composite rules on how many GPUs a CVM's evidence covers, for a verifier holding
/// `count` GPU reports: `gpu.required` fails when the policy requires a GPU and there is
/// none; `gpu.count` runs when the policy sets a count and there is GPU evidence.
pub fn check_count(count: usize, policy: &Policy, verdict: &mut Verdict) {
    let rules = policy.gpu.as_ref();
    if count == 0 {
        if rules.is_some_and(|g| g.required) {
            verdict.push(Check::fail(
                &gpu::REQUIRED,
                "GPU evidence",
                "none",
                "the policy requires a GPU and the enclave presented no GPU evidence",
            ));
        }
        return;
    }
    if let Some(want) = rules.and_then(|g| g.count) {
        verdict.push(Check::from_bool(
            &gpu::COUNT,
            count == want,
            format!("{want} GPUs"),
            format!("{count} GPUs"),
            || "the number of attested GPUs differs from the policy's".into(),
        ));
    }
}
