//! Verifying one GPU's evidence, check by check, as NVIDIA's reference verifiers do and
//! stricter where they are lax (noted at each place).

use p384::ecdsa::signature::Verifier as _;
use time::OffsetDateTime;
use x509_cert::Certificate;

use super::check::*;
use super::spdm::{field, SpdmReport};
use super::{certs, revocation, GpuArch, GpuEvidence, Revocation, Rim, RimStore, StoredRim};
use crate::policy::{GpuPolicy, Policy, Version};
use crate::verdict::{Check, Platform, Stage, Verdict};

/// NVIDIA's device chains have exactly five certificates, root included
/// (`MAX_CERT_CHAIN_LENGTH` in the reference verifier).
const DEVICE_CHAIN_LEN: usize = 5;
const NVDEC_ENABLED: u8 = 0xAA;
const NVDEC_DISABLED: u8 = 0x55;
/// The measurement index (0-based) of NVDEC0's firmware, not compared when it is off.
const NVDEC_INDEX: u32 = 35;

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
/// Every check is pushed, named (see [`super::check`]), even after one failed, so a
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
        v.push(Check::fail(
            POLICY,
            Stage::Measurement,
            "a [gpu] section",
            "none",
            "the policy has no [gpu] section, so GPU evidence cannot be accepted",
        ));
    }
    let chain = check_chain(evidence, now, &mut v);
    let report = match SpdmReport::parse(&evidence.report) {
        Ok(r) => {
            v.push(Check::pass(
                REPORT_FORMAT,
                Stage::Signature,
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
                REPORT_FORMAT,
                Stage::Signature,
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
        &RimRole {
            name: DRIVER_RIM,
            what: "driver",
            id: report
                .driver_version()
                .map(|d| evidence.arch.driver_rim_id(&d)),
            version: report.driver_version(),
            chip: &chip,
        },
        &report,
        rims,
        rules,
        now,
        &mut v,
    );
    let vbios_rim = check_rim(
        &RimRole {
            name: VBIOS_RIM,
            what: "VBIOS",
            id: report.vbios_rim_id(),
            version: report.vbios_version(),
            chip: &chip,
        },
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
            NONCE,
            Stage::Binding,
            report.request.nonce == *expected,
            hex::encode(expected),
            found,
            || "the report answers another nonce: it was made for another session or boot".into(),
        )),
        NonceRule::AcceptReplay => {
            v.warn("the report's nonce was not checked: it may be a replay of an old report");
            v.push(Check::pass(
                NONCE,
                Stage::Binding,
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
            return Err(format!(
                "{} certificates, NVIDIA's chains have {DEVICE_CHAIN_LEN}",
                chain.len()
            ));
        }
        let root = certs::device_root()?;
        certs::verify_path(&chain, &root, now).map(|summary| (chain, summary))
    });
    match result {
        Ok((chain, summary)) => {
            v.push(Check::pass(CERT_CHAIN, Stage::Signature, expected, summary));
            Some(chain)
        }
        Err(e) => {
            v.push(Check::fail(CERT_CHAIN, Stage::Signature, expected, "", e));
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
            ARCHITECTURE,
            Stage::Platform,
            expected,
            ev.arch.to_string(),
            "the chain is not trusted",
        ));
        return None;
    };
    match certs::chain_arch(chain) {
        Err(e) => {
            v.push(Check::fail(
                ARCHITECTURE,
                Stage::Platform,
                expected,
                ev.arch.to_string(),
                e,
            ));
            None
        }
        Ok((chip, arch)) => {
            v.fact("chip", chip.clone());
            let found = format!("{arch} ({chip}), evidence says {}", ev.arch);
            let check = if arch != ev.arch {
                Check::fail(
                    ARCHITECTURE,
                    Stage::Platform,
                    expected,
                    found,
                    "the evidence's architecture differs from its certificate's chip",
                )
            } else if !allowed.contains(&arch) {
                Check::fail(
                    ARCHITECTURE,
                    Stage::Platform,
                    expected,
                    found,
                    format!("the policy does not accept {arch} GPUs"),
                )
            } else {
                Check::pass(ARCHITECTURE, Stage::Platform, expected, found)
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
    let result = chain
        .and_then(<[Certificate]>::first)
        .ok_or_else(|| "no trusted device certificate".to_owned())
        .and_then(|leaf| report_signature(&ev.report, r, leaf));
    v.push(match result {
        Ok(()) => Check::pass(REPORT_SIGNATURE, Stage::Signature, expected, "valid"),
        Err(e) => Check::fail(REPORT_SIGNATURE, Stage::Signature, expected, "invalid", e),
    });
}

/// Checks the signature of `raw` (parsed as `report`) with `leaf`'s key: ECDSA P-384 with
/// SHA-384 over every byte before the signature, request included.
pub fn report_signature(raw: &[u8], report: &SpdmReport, leaf: &Certificate) -> Result<(), String> {
    let key = certs::p384_key(leaf)?;
    let sig = p384::ecdsa::Signature::from_slice(&report.signature)
        .map_err(|e| format!("the signature is malformed: {e}"))?;
    let signed = raw
        .get(..report.signed_len)
        .ok_or("the report is shorter than its signed part")?;
    key.verify(signed, &sig).map_err(|_| {
        "the signature does not verify: the report was altered or not made by this GPU".into()
    })
}

/// NVIDIA's verifiers skip this check when the report carries no FWID (firmware before
/// the field existed); so does silk, with a warning.
fn check_fwid(arch: GpuArch, r: &SpdmReport, chain: Option<&[Certificate]>, v: &mut Verdict) {
    let Some(fwid) = r.fwid() else {
        v.warn("the GPU report carries no FWID, so its key is not tied to the measured firmware");
        v.push(Check::pass(
            FWID,
            Stage::Signature,
            "the leaf's DICE FWID",
            "no FWID in the report (older firmware)",
        ));
        return;
    };
    let leaf = chain.and_then(<[Certificate]>::first);
    let check = match leaf.map(|l| certs::leaf_fwid(l, arch)) {
        None => Check::fail(
            FWID,
            Stage::Signature,
            "the leaf's DICE FWID",
            hex::encode(fwid),
            "no trusted device certificate",
        ),
        Some(Err(e)) => Check::fail(
            FWID,
            Stage::Signature,
            "the leaf's DICE FWID",
            hex::encode(fwid),
            e,
        ),
        Some(Ok(cert_fwid)) => Check::from_bool(
            FWID,
            Stage::Signature,
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
        None => Check::pass(CC_MODE, Stage::Platform, expected, found),
        Some(reason) => Check::fail(CC_MODE, Stage::Platform, expected, found, reason),
    });
    if allow_ppcie {
        v.warn("policy accepts protected-PCIe mode: the NVSwitch fabric is not verified by silk");
    }
}

fn check_versions(r: &SpdmReport, rules: Option<&GpuPolicy>, v: &mut Verdict) {
    for (name, what, found, min, hex) in [
        (
            DRIVER_VERSION,
            "driver",
            r.driver_version(),
            rules.and_then(|p| p.min_driver_version.clone()),
            false,
        ),
        (
            VBIOS_VERSION,
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
                Stage::Platform,
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
            (Some(Err(e)), _) | (_, Err(e)) => Err(e),
        };
        v.push(match ok {
            Ok(true) => Check::pass(name, Stage::Platform, format!(">= {min}"), found_text),
            Ok(false) => Check::fail(
                name,
                Stage::Platform,
                format!(">= {min}"),
                found_text,
                format!("the {what} is older than the policy's minimum"),
            ),
            Err(e) => Check::fail(name, Stage::Platform, format!(">= {min}"), found_text, e),
        });
    }
}

/// A RIM that verified and was chosen, with how the report compares with it.
struct UsedRim<'a> {
    source: &'a str,
    rim: &'a Rim,
    comparison: Comparison,
}

/// How a report compares with one RIM's active measurements.
struct Comparison {
    /// Measurements compared (NVDEC0's left out when it is off).
    compared: usize,
    /// How the report differs; empty when it matches.
    problems: Vec<String>,
}

/// The RIM role a check is about.
struct RimRole<'a> {
    /// The check's name.
    name: &'static str,
    /// `driver` or `VBIOS`.
    what: &'static str,
    /// The id NVIDIA's RIM service publishes it under, for messages.
    id: Option<String>,
    /// The version the report says the GPU runs.
    version: Option<String>,
    /// The chip, from the verified chain (empty when the chain did not verify).
    chip: &'a str,
}

/// Finds the RIMs that describe the report's version, verifies each one's signature and
/// chain and that it is for this chip (NVIDIA's SDK refuses a RIM for another version;
/// the older Python verifier only warned), and uses the first that verifies and whose
/// measurements the report matches, else the first that verifies (so that the mismatch
/// is reported). Several NVIDIA-signed RIMs for one version are each NVIDIA's word; any
/// one the report matches is enough.
fn check_rim<'a>(
    role: &RimRole<'_>,
    report: &SpdmReport,
    rims: &'a RimStore,
    rules: Option<&GpuPolicy>,
    now: OffsetDateTime,
    v: &mut Verdict,
) -> Option<UsedRim<'a>> {
    let RimRole {
        name, what, chip, ..
    } = *role;
    let expected = format!("NVIDIA-signed {what} RIM for this {what} version, chip {chip}");
    let (Some(id), Some(version)) = (role.id.clone(), role.version.clone()) else {
        v.push(Check::fail(
            name,
            Stage::Measurement,
            expected,
            "",
            format!("the report lacks the fields that name its {what} RIM"),
        ));
        return None;
    };
    let candidates: Vec<&StoredRim> = rims.for_version(&version).collect();
    if candidates.is_empty() {
        let found = format!(
            "none of the {} RIM(s) supplied describes {what} {version} (NVIDIA publishes it as {id})",
            rims.len()
        );
        if rules.is_some_and(|p| p.allow_missing_rims) {
            v.warn(format!(
                "no {what} RIM ({id}): its measurements were NOT compared (allow_missing_rims)"
            ));
            v.push(Check::pass(
                name,
                Stage::Measurement,
                expected,
                format!("{found}; allowed by policy"),
            ));
        } else {
            v.push(Check::fail(
                name,
                Stage::Measurement,
                expected,
                found,
                format!("no {what} RIM to compare the measurements with"),
            ));
        }
        return None;
    }
    let root = certs::rim_root();
    let mut verified = Vec::new();
    let mut refused = Vec::new();
    for c in &candidates {
        let result = root
            .as_ref()
            .map_err(|e| e.to_string())
            .and_then(|root| c.rim.verify(root, now).map_err(|e| e.to_string()))
            .and_then(|chain| {
                if !chip.is_empty() && !c.rim.product.eq_ignore_ascii_case(chip) {
                    return Err(format!(
                        "the RIM is for chip {}, the GPU is a {chip}",
                        c.rim.product
                    ));
                }
                Ok(chain)
            });
        match result {
            Ok(chain) => verified.push((*c, chain)),
            Err(e) => refused.push(format!("{}: {e}", c.source)),
        }
    }
    if verified.is_empty() {
        let found = candidates
            .iter()
            .map(|c| {
                format!(
                    "{} (version {}, product {})",
                    c.source, c.rim.version, c.rim.product
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        v.push(Check::fail(
            name,
            Stage::Measurement,
            expected,
            found,
            refused.join("; "),
        ));
        return None;
    }
    // An NVDEC0 status other than on or off fails the measurement check before any
    // comparison is read, so "not off" is enough here.
    let skip_nvdec = report.nvdec0_status() == Some(NVDEC_DISABLED);
    let mut compared: Vec<Comparison> = verified
        .iter()
        .map(|(c, _)| compare(what, &c.rim, report, skip_nvdec))
        .collect();
    let chosen = compared
        .iter()
        .position(|c| c.problems.is_empty())
        .unwrap_or(0);
    let (used, chain) = &verified[chosen];
    let mut found = format!(
        "{}: version {}, product {}; signed by {chain}",
        used.source, used.rim.version, used.rim.product
    );
    let others: Vec<String> = verified
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != chosen)
        .map(|(_, (c, _))| format!("{}: measurements differ", c.source))
        .chain(refused)
        .collect();
    if !others.is_empty() {
        found.push_str(&format!("; also tried {}", others.join("; ")));
    }
    v.push(Check::pass(name, Stage::Measurement, expected, found));
    Some(UsedRim {
        source: &used.source,
        rim: &used.rim,
        comparison: compared.swap_remove(chosen),
    })
}

/// Compares the report with one RIM's active measurements, each with the report's block
/// at index + 1, matching if any alternative equals it; `source` names the RIM in
/// problems.
fn compare(source: &str, rim: &Rim, r: &SpdmReport, skip_nvdec: bool) -> Comparison {
    let mut problems = Vec::new();
    let mut compared = 0;
    for g in rim.active() {
        if g.index == NVDEC_INDEX && skip_nvdec {
            continue;
        }
        compared += 1;
        match u8::try_from(g.index + 1).ok().and_then(|i| r.block(i)) {
            None => problems.push(format!(
                "{source} index {} has no block in the report",
                g.index
            )),
            Some(b) if g.alternatives.contains(&b.value) => {}
            Some(b) => problems.push(format!(
                "{source} index {}: report {} is none of the RIM's {} value(s)",
                g.index,
                hex::encode(&b.value),
                g.alternatives.len()
            )),
        }
    }
    Comparison { compared, problems }
}

/// NVIDIA's rules: the active entries of both RIMs together (an index active in both is an
/// error), each compared with the report's block at index + 1, matching if any
/// alternative equals it; index 35 (NVDEC0) is skipped when the report says NVDEC0 is off.
fn check_measurements(
    r: &SpdmReport,
    driver: Option<&UsedRim<'_>>,
    vbios: Option<&UsedRim<'_>>,
    rules: Option<&GpuPolicy>,
    v: &mut Verdict,
) {
    let expected = "every active RIM measurement matches the report";
    let allow_missing = rules.is_some_and(|p| p.allow_missing_rims);
    if driver.is_none() && vbios.is_none() {
        v.push(if allow_missing {
            Check::pass(
                MEASUREMENTS,
                Stage::Measurement,
                expected,
                "not compared: no RIM (allowed by policy)",
            )
        } else {
            Check::fail(
                MEASUREMENTS,
                Stage::Measurement,
                expected,
                "not compared",
                "no driver or VBIOS RIM verified",
            )
        });
        return;
    }
    let skip_nvdec = match r.nvdec0_status() {
        Some(NVDEC_DISABLED) => true,
        Some(NVDEC_ENABLED) => false,
        other => {
            let found = other.map_or("absent".into(), |b| format!("{b:#04x}"));
            v.push(Check::fail(
                MEASUREMENTS,
                Stage::Measurement,
                expected,
                format!("NVDEC0 status {found}"),
                "the NVDEC0 status must be 0xaa or 0x55",
            ));
            return;
        }
    };
    let mut problems = Vec::new();
    for (what, rim) in [("driver", driver), ("VBIOS", vbios)] {
        if rim.is_none() && !allow_missing {
            problems.push(format!(
                "the {what} RIM did not verify, so its measurements are unchecked"
            ));
        }
    }
    let active = |u: Option<&UsedRim<'_>>| -> Vec<u32> {
        u.map(|u| u.rim.active().map(|g| g.index).collect())
            .unwrap_or_default()
    };
    let (driver_active, vbios_active) = (active(driver), active(vbios));
    for i in &driver_active {
        if vbios_active.contains(i) {
            problems.push(format!("index {i} is active in both RIMs"));
        }
    }
    let mut compared = 0;
    let mut used = Vec::new();
    for (what, u) in [("driver", driver), ("VBIOS", vbios)] {
        let Some(u) = u else { continue };
        compared += u.comparison.compared;
        problems.extend(u.comparison.problems.iter().cloned());
        used.push(format!("{what} {}", u.source));
    }
    let found = format!(
        "{compared} compared ({} driver, {} VBIOS active{}; {})",
        driver_active.len(),
        vbios_active.len(),
        if skip_nvdec {
            "; NVDEC0 off, index 35 skipped"
        } else {
            ""
        },
        used.join(", ")
    );
    v.push(if problems.is_empty() {
        Check::pass(MEASUREMENTS, Stage::Measurement, expected, found)
    } else {
        Check::fail(
            MEASUREMENTS,
            Stage::Measurement,
            expected,
            found,
            problems.join("; "),
        )
    });
}

fn check_revocation(
    revocation: &Revocation,
    chain: Option<&[Certificate]>,
    rules: Option<&GpuPolicy>,
    now: OffsetDateTime,
    v: &mut Verdict,
) {
    let expected = "no certificate of the device chain revoked (OCSP)";
    let allow_missing = rules.is_some_and(|p| p.allow_missing_revocation);
    let check = match revocation {
        Revocation::OcspResponses(responses) => {
            v.warn("the RIM signing chains' revocation is not checked, only the device chain's");
            match chain.map(with_root) {
                None => Check::fail(
                    REVOCATION,
                    Stage::Freshness,
                    expected,
                    "OCSP responses supplied",
                    "the device chain did not verify, so its revocation cannot be checked",
                ),
                Some(Err(e)) => Check::fail(REVOCATION, Stage::Freshness, expected, "", e),
                Some(Ok(full)) => match revocation::check(&full, responses, now) {
                    Err(e) => Check::fail(
                        REVOCATION,
                        Stage::Freshness,
                        expected,
                        "OCSP responses supplied",
                        e,
                    ),
                    Ok(cov) if cov.complete() => Check::pass(
                        REVOCATION,
                        Stage::Freshness,
                        expected,
                        format!("good: {}", cov.good.join(", ")),
                    ),
                    Ok(cov) => {
                        let found = format!(
                            "good: [{}]; no OCSP response for [{}]",
                            cov.good.join(", "),
                            cov.missing.join(", ")
                        );
                        if allow_missing {
                            v.warn("revocation was not checked for every device certificate: a revoked one would be accepted");
                            Check::pass(REVOCATION, Stage::Freshness, expected, found)
                        } else {
                            Check::fail(
                                REVOCATION,
                                Stage::Freshness,
                                expected,
                                found,
                                "the policy requires revocation data for every certificate (allow_missing_revocation = false)",
                            )
                        }
                    }
                },
            }
        }
        Revocation::Unavailable if allow_missing => {
            v.warn("revocation was not checked: a revoked GPU or RIM key would be accepted");
            Check::pass(
                REVOCATION,
                Stage::Freshness,
                expected,
                "no revocation data; allowed by policy",
            )
        }
        Revocation::Unavailable => Check::fail(
            REVOCATION,
            Stage::Freshness,
            expected,
            "no revocation data",
            "the policy requires revocation data (allow_missing_revocation = false)",
        ),
    };
    v.push(check);
}

/// The verified device chain ending with the pinned root (it may end one below it).
fn with_root(chain: &[Certificate]) -> Result<Vec<Certificate>, String> {
    let mut full = chain.to_vec();
    if full
        .last()
        .is_some_and(|c| c.tbs_certificate.subject != c.tbs_certificate.issuer)
    {
        full.push(certs::device_root()?);
    }
    Ok(full)
}
