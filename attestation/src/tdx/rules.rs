//! The `[tdx]` rules of a policy, evaluated against a verified TD quote, and the checks
//! TDX and SGX quotes share (TCB status, advisories, REPORT_DATA, collateral age).

use time::OffsetDateTime;

use super::{TcbVerdict, TdReport, TdxCollateral};
use crate::checks::{tdx, CheckId};
use crate::policy::{debug_check, one_of, Age, HexBytes, StatusRule, TdxMeasurement, TdxPolicy};
use crate::verdict::{Check, Verdict};

/// A TD measurement register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Register {
    Mrtd,
    Rtmr(usize),
}

impl std::fmt::Display for Register {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Register::Mrtd => f.write_str("MRTD"),
            Register::Rtmr(i) => write!(f, "RTMR{i}"),
        }
    }
}

/// `Ok` when `report` matches `m`; otherwise the first register that differs.
fn compare(m: &TdxMeasurement, report: &TdReport) -> Result<(), Register> {
    if m.mrtd.0 != report.mr_td {
        return Err(Register::Mrtd);
    }
    for (i, want) in m.rtmrs().iter().enumerate() {
        if want.is_some_and(|w| w.0 != report.rtmr[i]) {
            return Err(Register::Rtmr(i));
        }
    }
    Ok(())
}

impl TdxPolicy {
    /// Checks a verified TD quote against these rules.
    pub fn evaluate(
        &self,
        report: &TdReport,
        tcb: Option<&TcbVerdict>,
        collateral: &TdxCollateral,
        now: OffsetDateTime,
        verdict: &mut Verdict,
    ) {
        // Any TUD bit (debug or its profiling variants) opens the TD to the host.
        let debug = report.td_attributes.under_debug();
        debug_check(&tdx::DEBUG, self.allow_debug, debug, "the TD", verdict);
        tcb_checks(
            &TDX,
            &self.allowed_tcb_statuses,
            self.allowed_advisory_ids.as_deref(),
            tcb,
            verdict,
        );
        if let Some(min) = &self.min_tee_tcb_svn {
            let below: Vec<String> = (0..16)
                .filter(|&i| report.tee_tcb_svn[i] < min.0[i])
                .map(|i| format!("byte {i}: {} < {}", report.tee_tcb_svn[i], min.0[i]))
                .collect();
            verdict.push(Check::from_bool(
                &tdx::TEE_TCB_SVN,
                below.is_empty(),
                format!(">= {min}"),
                hex::encode(report.tee_tcb_svn),
                || format!("TEE_TCB_SVN below minimum ({})", below.join(", ")),
            ));
        }
        if !self.mr_seam.is_empty() {
            verdict.push(Check::from_bool(
                &tdx::MR_SEAM,
                self.mr_seam.iter().any(|m| m.0 == report.mr_seam),
                one_of(&self.mr_seam),
                hex::encode(report.mr_seam),
                || "the TDX module's measurement (MRSEAM) is not allowed".into(),
            ));
        }
        self.measurement_check(report, verdict);
        for (name, want, found) in [
            (&tdx::MR_CONFIG_ID, &self.mr_config_id, &report.mr_config_id),
            (&tdx::MR_OWNER, &self.mr_owner, &report.mr_owner),
            (
                &tdx::MR_OWNER_CONFIG,
                &self.mr_owner_config,
                &report.mr_owner_config,
            ),
        ] {
            if let Some(want) = want {
                verdict.push(exact(name, &want.0, found));
            }
        }
        report_data_check(
            &TDX,
            self.report_data.as_ref(),
            &report.report_data,
            verdict,
        );
        collateral_age_check(&TDX, self.max_collateral_age, collateral, now, verdict);
    }

    fn measurement_check(&self, report: &TdReport, verdict: &mut Verdict) {
        let found = format!(
            "mrtd={} rtmr0={} rtmr1={} rtmr2={} rtmr3={}",
            hex::encode(report.mr_td),
            hex::encode(report.rtmr[0]),
            hex::encode(report.rtmr[1]),
            hex::encode(report.rtmr[2]),
            hex::encode(report.rtmr[3]),
        );
        if self.allow_any_measurement {
            verdict.warn("policy accepts ANY measurement: the TD's code is not checked");
            verdict.push(Check::pass(&tdx::MEASUREMENT, "any (!)", found));
            return;
        }
        let results: Vec<Result<(), Register>> = self
            .measurements
            .iter()
            .map(|m| compare(m, report))
            .collect();
        let matched = results.iter().position(Result::is_ok);
        if let Some(i) = matched {
            if self.measurements[i].rtmrs().iter().any(Option::is_none) {
                verdict.warn("the matching TDX measurement leaves some RTMRs unchecked");
            }
        }
        let reason = || {
            if self.measurements.is_empty() {
                return "the policy allows no measurement (add [[tdx.measurements]])".to_owned();
            }
            // Name the register that differs for the entries whose MRTD matched, since
            // that is what an operator has to look at.
            let partial: Vec<String> = results
                .iter()
                .enumerate()
                .filter_map(|(i, r)| match r {
                    Err(reg) if *reg != Register::Mrtd => {
                        Some(format!("entry {}: {reg} differs", i + 1))
                    }
                    _ => None,
                })
                .collect();
            if partial.is_empty() {
                "MRTD is not in the policy's allowlist".to_owned()
            } else {
                partial.join("; ")
            }
        };
        verdict.push(Check::from_bool(
            &tdx::MEASUREMENT,
            matched.is_some(),
            one_of(&self.measurements),
            found,
            reason,
        ));
    }
}

/// The checks TDX and SGX quotes share, each under its platform's name.
pub(super) struct QuoteChecks {
    pub(super) tcb_status: &'static CheckId,
    pub(super) advisories: &'static CheckId,
    pub(super) report_data: &'static CheckId,
    pub(super) collateral_age: &'static CheckId,
}

const TDX: QuoteChecks = QuoteChecks {
    tcb_status: &tdx::TCB_STATUS,
    advisories: &tdx::ADVISORIES,
    report_data: &tdx::REPORT_DATA,
    collateral_age: &tdx::COLLATERAL_AGE,
};

fn exact(id: &'static CheckId, want: &[u8], found: &[u8]) -> Check {
    Check::from_bool(
        id,
        want == found,
        hex::encode(want),
        hex::encode(found),
        || format!("{} differs from the policy's value", id.name),
    )
}

pub(super) fn tcb_checks(
    names: &QuoteChecks,
    allowed: &[StatusRule],
    advisories: Option<&[String]>,
    tcb: Option<&TcbVerdict>,
    verdict: &mut Verdict,
) {
    let (status_name, advisory_name) = (names.tcb_status, names.advisories);
    let expected = one_of(&allowed.iter().map(|s| s.0.to_string()).collect::<Vec<_>>());
    let Some(tcb) = tcb else {
        verdict.push(Check::fail(
            status_name,
            expected,
            "unknown",
            "the TCB status could not be established because quote verification failed",
        ));
        return;
    };
    let ok = allowed.iter().any(|s| s.0 == tcb.status);
    let found = if tcb.advisory_ids.is_empty() {
        tcb.status.to_string()
    } else {
        format!("{} ({})", tcb.status, tcb.advisory_ids.join(", "))
    };
    verdict.push(Check::from_bool(status_name, ok, expected, found, || {
        format!("TCB status {} is not allowed by the policy", tcb.status)
    }));
    if let Some(list) = advisories {
        let unlisted: Vec<&str> = tcb
            .advisory_ids
            .iter()
            .filter(|a| !list.contains(a))
            .map(String::as_str)
            .collect();
        verdict.push(Check::from_bool(
            advisory_name,
            unlisted.is_empty(),
            one_of(list),
            tcb.advisory_ids.join(", "),
            || {
                format!(
                    "advisories not accepted by the policy: {}",
                    unlisted.join(", ")
                )
            },
        ));
    }
}

pub(super) fn report_data_check(
    names: &QuoteChecks,
    want: Option<&HexBytes<64>>,
    found: &[u8; 64],
    verdict: &mut Verdict,
) {
    let name = names.report_data;
    match want {
        Some(want) => verdict.push(Check::from_bool(
            name,
            &want.0 == found,
            want.to_string(),
            hex::encode(found),
            || "REPORT_DATA differs: the quote is not bound to the expected claims".into(),
        )),
        None => verdict.warn("REPORT_DATA not checked: the quote is not bound to any key or nonce"),
    }
}

pub(super) fn collateral_age_check(
    names: &QuoteChecks,
    max: Option<Age>,
    collateral: &TdxCollateral,
    now: OffsetDateTime,
    verdict: &mut Verdict,
) {
    let Some(max) = max else { return };
    let name = names.collateral_age;
    let issued = collateral.tcb_info_issue_date();
    let age = now - issued;
    let ok = age <= time::Duration::try_from(max.0).unwrap_or(time::Duration::MAX);
    verdict.push(Check::from_bool(
        name,
        ok,
        format!("issued within {max}"),
        format!(
            "issued {} ({}h old)",
            crate::format_time(issued),
            age.whole_hours()
        ),
        || "the collateral is older than the policy allows".into(),
    ));
}
