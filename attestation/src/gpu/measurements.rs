//! The RIM checks (`gpu.driver_rim`, `gpu.vbios_rim`) and the comparison of the report's
//! measurements with the RIMs' golden values (`gpu.measurements`), as NVIDIA's verifiers
//! make them.

use time::OffsetDateTime;

use super::certs::{self, PathError};
use super::spdm::SpdmReport;
use super::verify::{NVDEC_DISABLED, NVDEC_ENABLED};
use super::{GpuArch, Rim, RimError, RimStore, StoredRim};
use crate::checks::{gpu, CheckId};
use crate::policy::GpuPolicy;
use crate::verdict::{Check, Verdict};

/// The measurement index (0-based) of NVDEC0's firmware, not compared when it is off.
const NVDEC_INDEX: u32 = 35;

/// Why a RIM that describes the report's version was not used.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// The pinned RIM root does not load.
    #[error(transparent)]
    Root(PathError),
    /// The RIM's signature or chain is not accepted.
    #[error(transparent)]
    Rim(RimError),
    /// The RIM is for another chip.
    #[error("the RIM is for chip {rim}, the GPU is a {gpu}")]
    OtherChip { rim: String, gpu: String },
}

/// A RIM that verified and was chosen, with how the report compares with it.
pub(super) struct UsedRim<'a> {
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
pub(super) struct RimRole<'a> {
    /// The check (`gpu.driver_rim` or `gpu.vbios_rim`).
    pub(super) id: &'static CheckId,
    /// `driver` or `VBIOS`.
    pub(super) what: &'static str,
    /// The id NVIDIA's RIM service publishes it under, for messages.
    pub(super) rim_id: Option<String>,
    /// The version the report says the GPU runs.
    pub(super) version: Option<String>,
    /// The chip, from the verified chain (empty when the chain did not verify).
    pub(super) chip: &'a str,
}

impl<'a> RimRole<'a> {
    /// The driver RIM for the report's driver version, on this chip.
    pub(super) fn driver(report: &SpdmReport, arch: GpuArch, chip: &'a str) -> Self {
        Self {
            id: &gpu::DRIVER_RIM,
            what: "driver",
            rim_id: report.driver_version().map(|d| arch.driver_rim_id(&d)),
            version: report.driver_version(),
            chip,
        }
    }

    /// The VBIOS RIM for the report's VBIOS version, on this chip.
    pub(super) fn vbios(report: &SpdmReport, chip: &'a str) -> Self {
        Self {
            id: &gpu::VBIOS_RIM,
            what: "VBIOS",
            rim_id: report.vbios_rim_id(),
            version: report.vbios_version(),
            chip,
        }
    }
}

/// Finds the RIMs that describe the report's version, verifies each one's signature and
/// chain and that it is for this chip (NVIDIA's SDK refuses a RIM for another version;
/// the older Python verifier only warned), and uses the first that verifies and whose
/// measurements the report matches, else the first that verifies (so that the mismatch
/// is reported). Several NVIDIA-signed RIMs for one version are each NVIDIA's word; any
/// one the report matches is enough.
pub(super) fn check_rim<'a>(
    role: &RimRole<'_>,
    report: &SpdmReport,
    rims: &'a RimStore,
    rules: Option<&GpuPolicy>,
    now: OffsetDateTime,
    v: &mut Verdict,
) -> Option<UsedRim<'a>> {
    let RimRole {
        id: name,
        what,
        chip,
        ..
    } = *role;
    let expected = format!("NVIDIA-signed {what} RIM for this {what} version, chip {chip}");
    let (Some(id), Some(version)) = (role.rim_id.clone(), role.version.clone()) else {
        v.push(Check::fail(
            name,
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
                expected,
                format!("{found}; allowed by policy"),
            ));
        } else {
            v.push(Check::fail(
                name,
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
            .clone()
            .map_err(Refusal::Root)
            .and_then(|root| c.rim.verify(&root, now).map_err(Refusal::Rim))
            .and_then(|chain| {
                if !chip.is_empty() && !c.rim.product.eq_ignore_ascii_case(chip) {
                    return Err(Refusal::OtherChip {
                        rim: c.rim.product.clone(),
                        gpu: chip.to_owned(),
                    });
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
        v.push(Check::fail(name, expected, found, refused.join("; ")));
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
    v.push(Check::pass(name, expected, found));
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
pub(super) fn check_measurements(
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
                &gpu::MEASUREMENTS,
                expected,
                "not compared: no RIM (allowed by policy)",
            )
        } else {
            Check::fail(
                &gpu::MEASUREMENTS,
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
                &gpu::MEASUREMENTS,
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
        Check::pass(&gpu::MEASUREMENTS, expected, found)
    } else {
        Check::fail(&gpu::MEASUREMENTS, expected, found, problems.join("; "))
    });
}
